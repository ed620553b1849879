package proxy

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestInputJSONBufferPerDecision: the encoded input's buffer is pooled and
// given back only after its decision is recorded, so under concurrent
// requests every decision record carries its own request's input (a
// buffer given back early would be filled by another request first).
func TestInputJSONBufferPerDecision(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", "package gatehouse.authz\n\ndefault allow := false\n\nallow if not input.request.query.deny\n")
	rec := &fakeRecorder{}
	_, front, _, _ := policyServer(t, dir, &fakeAuth{id: alice}, rec)
	eventually(t, func() bool { // the policy compiles in the background
		resp, _ := get(t, front, "app.example.com", "/ready", nil)
		return resp.StatusCode == http.StatusOK
	})
	const workers, each = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				q := ""
				if i%3 == 0 {
					q = "?deny=1" // refusals are recorded, and release, on their own path
				}
				get(t, front, "app.example.com", fmt.Sprintf("/w%d/r%d%s", w, i, q), nil)
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, ev := range rec.Events() {
		if ev.Type != EventDecision || ev.Path == "/ready" {
			continue
		}
		n++
		req, _ := decisionInput(t, ev)["request"].(map[string]any)
		if req["id"] != ev.RequestID || req["path"] != ev.Path {
			t.Fatalf("decision %s for %s recorded the input of %v %v", ev.RequestID, ev.Path, req["id"], req["path"])
		}
	}
	if n != workers*each {
		t.Errorf("%d decisions recorded, want %d", n, workers*each)
	}
}
