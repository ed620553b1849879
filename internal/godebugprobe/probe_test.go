package godebugprobe

import (
	"net/url"
	"strings"
	"testing"
)

// TestProbeFollowsGODEBUG: the answer is probed once per GODEBUG value and
// again when the setting changes.
func TestProbeFollowsGODEBUG(t *testing.T) {
	calls := 0
	p := New(func() bool {
		calls++
		_, err := url.ParseQuery(strings.Repeat("&", 9))
		return err == nil
	})
	t.Setenv("GODEBUG", "")
	for range 3 {
		if !p.OK() {
			t.Fatal("default limit: 10 parameters refused")
		}
	}
	if calls != 1 {
		t.Fatalf("default limit: %d probes for one setting", calls)
	}
	t.Setenv("GODEBUG", "urlmaxqueryparams=5")
	if p.OK() || calls != 2 {
		t.Fatalf("urlmaxqueryparams=5: ok=%v after %d probes", p.OK(), calls)
	}
	t.Setenv("GODEBUG", "")
	if !p.OK() || calls != 3 {
		t.Fatalf("back to the default: %d probes", calls)
	}
}
