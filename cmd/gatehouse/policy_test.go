package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cookbook = "../../examples/policies"

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPolicyTestCommand(t *testing.T) {
	code, out, errb := runCmd(t, "policy", "test", cookbook)
	if code != 0 || !strings.Contains(out, "test_engineer_cannot_browse_hr: PASS") || !strings.Contains(out, "PASS: ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	code, out, _ = runCmd(t, "policy", "test", "--coverage", "--threshold", "100", cookbook)
	if code != 0 || !strings.Contains(out, "Coverage: 100.00%") {
		t.Fatalf("coverage: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "policy", "test", "--run", "breakglass", "--threshold", "90", cookbook)
	if code != 1 || !strings.Contains(out, "not covered") {
		t.Fatalf("--run with threshold: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd(t, "policy", "test"); code != exitUsage {
		t.Errorf("no dir: exit %d", code)
	}
	if code, _, _ := runCmd(t, "policy", "test", "--threshold", "101", cookbook); code != exitUsage {
		t.Errorf("bad threshold: exit %d", code)
	}
}

func TestPolicyTestCommandFailsOnBrokenExpectation(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("p.rego", "package gatehouse.authz\n\ndefault allow := false\n\nallow if input.user.sub != \"\"\n")
	write("p_test.rego", "package gatehouse.authz_test\n\nimport data.gatehouse.authz\n\ntest_anonymous_denied if not authz.allow with input as {\"user\": {\"sub\": \"\"}}\n")
	if code, out, errb := runCmd(t, "policy", "test", dir); code != 0 {
		t.Fatalf("good set: exit %d\n%s%s", code, out, errb)
	}
	write("p_test.rego", "package gatehouse.authz_test\n\nimport data.gatehouse.authz\n\ntest_anonymous_denied if authz.allow with input as {\"user\": {\"sub\": \"\"}}\n")
	code, out, _ := runCmd(t, "policy", "test", dir)
	if code != 1 || !strings.Contains(out, "test_anonymous_denied: FAIL") {
		t.Fatalf("broken expectation: exit %d\n%s", code, out)
	}
}

func TestPolicyEvalRequest(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--request", "GET https://files.example.com/finance/q3.xlsx", "--user", "ana@example.com", "--groups", "finance", "--route", "files"}, "decision:    allow"},
		{[]string{"--request", "GET https://files.example.com/Finance/q3.xlsx", "--user", "bob@example.com", "--groups", "engineering", "--route", "files"}, "paths.finance_only"},
		{[]string{"--request", "GET https://files.example.com/s/a.PDF", "--user", "ana@example.com", "--groups", "finance", "--route", "files"}, "decision:    step_up"},
		{[]string{"--request", "GET https://files.example.com/x", "--user", "ana@example.com", "--groups", "finance", "--route", "files", "--blocked"}, "risk.blocked"},
	}
	for _, tc := range tests {
		args := append([]string{"policy", "eval", "--timeout", "10s", "--policy", cookbook}, tc.args...)
		code, out, errb := runCmd(t, args...)
		if code != 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, "revision:") {
			t.Errorf("%v: exit %d, want %q\n%s%s", tc.args, code, tc.want, out, errb)
		}
	}
	code, out, _ := runCmd(t, "policy", "eval", "--timeout", "10s", "--policy", cookbook, "--request", "GET https://files.example.com/x", "--route", "files", "--user", "a@example.com", "--groups", "finance", "--explain")
	if code != 0 || !strings.Contains(out, "trace:") || !strings.Contains(out, "Enter data.gatehouse.authz.allow") {
		t.Errorf("--explain: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd(t, "policy", "eval", "--policy", cookbook, "--request", "GET https://files.example.com/a%2Fb", "--route", "files"); code != 1 {
		t.Errorf("ambiguous path: exit %d, want 1", code)
	}
	if code, _, _ := runCmd(t, "policy", "eval", "--policy", cookbook); code != exitUsage {
		t.Errorf("neither --input nor --request: exit %d", code)
	}
}

func TestPolicyEvalInputAndConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ntls:\n  mode: local\n  local_dir: ./ca\npolicy:\n  dir: " + filepath.Join(mustAbs(t, cookbook)) +
		"\nroutes:\n  - name: hr\n    host: hr.example.com\n    upstream: http://127.0.0.1:1\n    public: true\n"
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The route comes from the config: hr is office-only (public here only
	// to keep the config minimal: deny rules still apply).
	code, out, errb := runCmd(t, "policy", "eval", "--timeout", "10s", "--config", cfgPath, "--request", "GET https://hr.example.com/", "--user", "h@example.com",
		"--groups", "hr", "--remote-ip", "203.0.113.9", "--at", "2026-12-01T10:00:00Z", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got["outcome"] != "deny" || !strings.Contains(out, "network.outside_office") {
		t.Fatalf("office rule not applied:\n%s", out)
	}
	// --input: a decision record from the audit log.
	rec := `{"type":"decision","outcome":"allow","input":{"request":{"path":"/x","query":{},"headers":{},"remote_ip":"10.0.0.1"},` +
		`"user":{"sub":"u","groups":["admins"],"roles":[]},"session":{"mfa":true},"route":{"name":"hr","public":false,"mfa":"optional"},` +
		`"time":{"hour":10,"weekday":"Monday","night":false},"risk":{"flags":[],"blocked":false}}}`
	in := filepath.Join(dir, "rec.json")
	if err := os.WriteFile(in, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errb = runCmd(t, "policy", "eval", "--timeout", "10s", "--config", cfgPath, "--input", in)
	if code != 0 || !strings.Contains(out, "decision:    allow") {
		t.Fatalf("--input: exit %d\n%s%s", code, out, errb)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPolicyReplayCommand(t *testing.T) {
	auditDir := t.TempDir()
	input := func(method string) string {
		return `{"request":{"id":"r","method":"` + method + `","path":"/x","query":{},"headers":{},"remote_ip":"10.0.0.1"},` +
			`"user":{"sub":"u","groups":["staff"],"roles":[]},"session":{"mfa":true},"route":{"name":"chat","public":false,"mfa":"optional"},` +
			`"time":{"hour":10,"weekday":"Monday","night":false},"risk":{"flags":[],"blocked":false}}`
	}
	lines := `{"index":0,"type":"decision","request_id":"r1","outcome":"allow","input":` + input("GET") + "}\n" +
		`{"index":1,"type":"decision","request_id":"r2","outcome":"allow","input":` + input("DELETE") + "}\n"
	if err := os.WriteFile(filepath.Join(auditDir, "00000000000000000000.jsonl"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errb := runCmd(t, "policy", "replay", "--timeout", "10s", "--audit", auditDir, "--policy", cookbook)
	if code != 0 || !strings.Contains(out, "replayed 2 decisions") || !strings.Contains(out, "0 changed") {
		t.Fatalf("same policy: exit %d\n%s%s", code, out, errb)
	}
	draft := t.TempDir()
	body := "package gatehouse.authz\n\ndefault allow := false\n\nallow if input.request.method == \"GET\"\n"
	if err := os.WriteFile(filepath.Join(draft, "p.rego"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "policy", "replay", "--timeout", "10s", "--audit", auditDir, "--policy", draft)
	if code != 1 || !strings.Contains(out, "CHANGED") || !strings.Contains(out, "request=r2: allow -> deny") || strings.Contains(out, "request=r1") {
		t.Fatalf("draft: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd(t, "policy", "replay", "--audit", auditDir); code != exitUsage {
		t.Errorf("missing --policy: exit %d", code)
	}
}
