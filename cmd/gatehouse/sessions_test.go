package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The admin handler itself is tested end to end in proxy/authn_e2e_test.go;
// here the CLI's side: flags, token, body, exit codes.
func TestSessionsRevokeCLI(t *testing.T) {
	const token = "sessions-admin-token-0123456789"
	var got []map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong admin token"})
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/sessions/revoke" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		got = append(got, body)
		if body["user"] == "down" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "revocation failed: store down"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"revoked": body})
	}))
	defer srv.Close()
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", token)
	run1 := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"sessions", "revoke", "--admin", srv.URL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run1("--user", "alice", "--reason", "laptop stolen"); code != 0 || !strings.Contains(out, "revoked user alice") {
		t.Errorf("revoke user: %d %q", code, out)
	}
	if code, out, _ := run1("--session", "s1"); code != 0 || !strings.Contains(out, "revoked session s1") {
		t.Errorf("revoke session: %d %q", code, out)
	}
	if len(got) != 2 || got[0]["user"] != "alice" || got[0]["reason"] != "laptop stolen" || got[1]["session"] != "s1" {
		t.Errorf("bodies sent: %v", got)
	}
	if code, _, _ := run1("--user", "a", "--session", "b"); code != exitUsage {
		t.Errorf("both flags: exit %d", code)
	}
	if code, _, _ := run1(); code != exitUsage {
		t.Errorf("no flag: exit %d", code)
	}
	if code, _, errs := run1("--user", "down"); code != 1 || !strings.Contains(errs, "store down") {
		t.Errorf("server error: %d %q", code, errs)
	}
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", "wrong-token")
	if code, _, errs := run1("--user", "alice"); code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("wrong token: %d %q", code, errs)
	}
}
