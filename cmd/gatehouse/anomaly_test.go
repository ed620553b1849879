package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAnomalyAdmin stands in for the admin API of a running gatehouse
// (the real handlers are tested end to end in proxy/anomaly_e2e_test.go).
func fakeAnomalyAdmin(t *testing.T, token string) (*httptest.Server, *[]string) {
	t.Helper()
	var mu sync.Mutex
	blocked := map[string]bool{"user:ana": true}
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong admin token"})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		calls = append(calls, r.Method+" "+r.URL.Path+" "+body["user"]+body["session"])
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v1/anomaly/blocks":
			var out []map[string]any
			if blocked["user:ana"] {
				out = append(out, map[string]any{"kind": "user", "id": "ana", "rule": "bulk-download-at-night", "reason": "anomaly:bulk-download-at-night",
					"created": "2026-12-02T18:00:00Z", "until": "2026-12-02T19:00:00Z", "counts": map[string]any{"downloads": 51, "bytes": 5100}})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"blocks": out})
		case "POST /api/v1/anomaly/unblock":
			k := "user:" + body["user"]
			if body["session"] != "" {
				k = "session:" + body["session"]
			}
			if !blocked[k] {
				w.WriteHeader(http.StatusNotFound)
				_ = json.NewEncoder(w).Encode(map[string]any{"unblocked": false})
				return
			}
			delete(blocked, k)
			_ = json.NewEncoder(w).Encode(map[string]any{"unblocked": true})
		case "POST /api/v1/anomaly/block":
			blocked["user:"+body["user"]] = true
			_ = json.NewEncoder(w).Encode(map[string]any{"block": map[string]any{"kind": "user", "id": body["user"], "until": "2026-12-02T19:00:00Z"}})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestAnomalyCLI(t *testing.T) {
	token := "cli-admin-token-0123456789"
	srv, calls := fakeAnomalyAdmin(t, token)
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	common := []string{"--admin", srv.URL, "--token-file", tokFile}
	for _, tc := range []struct {
		args []string
		code int
		out  string // substring of stdout (or stderr when code != 0)
	}{
		{append([]string{"anomaly", "list"}, common...), 0, "bulk-download-at-night"},
		{append([]string{"anomaly", "unblock", "--user", "ana"}, common...), 0, "unblocked user ana"},
		{append([]string{"anomaly", "unblock", "--user", "ana"}, common...), 1, "no active block for user ana"},
		{append([]string{"anomaly", "list"}, common...), 0, "no active blocks"},
		{append([]string{"anomaly", "block", "--user", "bob", "--for", "30m"}, common...), 0, "blocked user bob until 2026-12-02T19:00:00Z"},
		{append([]string{"anomaly", "unblock"}, common...), exitUsage, "exactly one of --user, --session or --address"},
		{append([]string{"anomaly", "unblock", "--user", "a", "--session", "b"}, common...), exitUsage, "exactly one"},
		{[]string{"anomaly", "list", "--admin", srv.URL, "--token-file", filepath.Join(t.TempDir(), "none")}, 1, "read admin token"},
	} {
		code, out, errOut := runCLI(tc.args...)
		text := out
		if tc.code != 0 {
			text = errOut
		}
		if code != tc.code || !strings.Contains(text, tc.out) {
			t.Errorf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out, errOut)
		}
	}
	// A wrong token is reported, not ignored.
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", "wrong-token-wrong-token")
	if code, _, errOut := runCLI("anomaly", "list", "--admin", srv.URL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("wrong token: exit %d, %s", code, errOut)
	}
	if len(*calls) != 5 {
		t.Errorf("admin calls = %v", *calls)
	}
}
