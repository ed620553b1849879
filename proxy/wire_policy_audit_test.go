package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// decisionInput is the input document a decision event carries: the policy
// stage gives it encoded (InputJSON), other deciders as a map.
func decisionInput(t *testing.T, ev Event) map[string]any {
	t.Helper()
	if ev.InputJSON == nil {
		return ev.Input
	}
	var m map[string]any
	if err := json.Unmarshal(ev.InputJSON, &m); err != nil {
		t.Fatalf("decision input %s: %v", ev.InputJSON, err)
	}
	return m
}

// The policy stage's encoded input reaches the audit record as it is, a
// map input is scrubbed as before, and a non-decision event keeps its input
// in detail either way.
func TestAuditRecordInputJSON(t *testing.T) {
	in := policy.Input{Request: policy.RequestInput{Path: "/x", Headers: map[string]string{"user-agent": "ua", "cookie": "s=1"}}}
	raw := in.AppendAuditJSON(nil)
	r, err := auditRecord(Event{Type: EventDecision, Outcome: OutcomeAllow, InputJSON: raw})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.InputJSON, raw) || r.Input != nil || bytes.Contains(raw, []byte("s=1")) {
		t.Fatalf("decision record input %s / %v", r.InputJSON, r.Input)
	}
	m := in.AuditMap()
	r, err = auditRecord(Event{Type: EventDecision, Outcome: OutcomeAllow, Input: m})
	if err != nil || r.InputJSON != nil || !reflect.DeepEqual(r.Input, m) {
		t.Fatalf("map input: %+v %v", r, err)
	}
	for _, ev := range []Event{
		{Type: "step_up", Subject: "u", Outcome: "mfa", InputJSON: raw},
		{Type: "step_up", Subject: "u", Outcome: "mfa", Input: m},
	} {
		r, err := auditRecord(ev)
		if err != nil || r.Input != nil || r.InputJSON != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		got, _ := r.Detail["input"].(map[string]any)
		req, _ := got["request"].(map[string]any)
		hdrs, _ := req["headers"].(map[string]any)
		if req["path"] != "/x" || hdrs["user-agent"] != "ua" || hdrs["cookie"] != nil {
			t.Fatalf("detail input %v", r.Detail)
		}
	}
	if _, err := auditRecord(Event{Type: "step_up", Subject: "u", Outcome: "mfa", InputJSON: []byte(`{"a":`)}); err == nil {
		t.Fatal("a broken input document was recorded")
	}
}

// Through the real policy and audit stages: the decision record stores the
// input document the policy judged, its query credentials redacted and no
// credential header anywhere in the log, and it reads back as the map form
// (policy.Input.AuditMap) of that input.
func TestPolicyDecisionAuditedWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", policyE2E)
	up, _ := echoUpstream(t, nil)
	cfg, _ := auditTestConfig(t, up.URL, "always")
	cfg.Policy.Dir = dir
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, extra: func(w *Wiring) {
		if err := buildPolicy(context.Background(), w); err != nil {
			t.Fatalf("build policy: %v", err)
		}
		if err := buildAudit(context.Background(), w); err != nil {
			t.Fatalf("build audit: %v", err)
		}
	}})
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	secrets := map[string]string{
		"Cookie": "_gatehouse=c00kie-secret", "Authorization": "Bearer auth-secret", "Proxy-Authorization": "Basic proxy-secret",
		"X-Api-Key": "api-key-secret", "X-Auth-Token": "auth-token-secret", "Set-Cookie": "set-cookie-secret",
		"X_Api_Key": "underscore-secret", "User-Agent": "agent <&> \u2028",
	}
	code := (&testFront{url: front.URL}).get(t, "app.example.com", "/doc/a?token=query-secret&page=2", secrets)
	if code != 200 {
		t.Fatalf("request: %d", code)
	}
	if err := s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
	var files []string // every file of the log: segments, hashes, checkpoints
	_ = filepath.WalkDir(cfg.Audit.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	var stored int
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range secrets {
			if strings.Contains(v, "secret") && bytes.Contains(b, []byte(v[strings.LastIndexAny(v, " =")+1:])) {
				t.Errorf("%s stores %q", filepath.Base(p), v)
			}
		}
		if bytes.Contains(b, []byte("query-secret")) {
			t.Errorf("%s stores the token query value", filepath.Base(p))
		}
		stored += bytes.Count(b, []byte(`"type":"decision"`))
	}
	if stored != 1 {
		t.Fatalf("%d decision lines in the log", stored)
	}
	var got *audit.Record
	if err := audit.Scan(cfg.Audit.Dir, nil, func(r *audit.Record) error {
		if r.Type == audit.TypeDecision {
			got = r
		}
		return nil
	}); err != nil || got == nil {
		t.Fatalf("scan: %v %v", got, err)
	}
	req := got.Input["request"].(map[string]any)
	hdrs := req["headers"].(map[string]any)
	if hdrs["user-agent"] != "agent <&> \u2028" || req["path"] != "/doc/a" || got.Outcome != audit.OutcomeAllow {
		t.Fatalf("decision input %v", got.Input)
	}
	for h := range hdrs {
		if policy.SecretHeader(h) {
			t.Errorf("header %s audited", h)
		}
	}
	q := req["query"].(map[string]any)
	if q["token"].([]any)[0] != policy.Redacted || q["page"].([]any)[0] != "2" {
		t.Errorf("query %v", q)
	}
}

// TestShadowDisagreementAudited: a draft policy (policy.shadow_dir) that
// would refuse what the serving policy allows is not enforced, and the
// request's decision record says what the draft said (detail.shadow), so
// the change can be reviewed against real traffic from the audit log.
func TestShadowDisagreementAudited(t *testing.T) {
	dir, shadow := t.TempDir(), t.TempDir()
	writePolicyFile(t, dir, "authz.rego", policyE2E)
	writePolicyFile(t, shadow, "authz.rego", policyE2E+"\ndeny contains \"draft_no_docs\" if startswith(input.request.path, \"/doc/\")\n")
	up, _ := echoUpstream(t, nil)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	cfg.Policy.Dir, cfg.Policy.ShadowDir = dir, shadow
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, extra: func(w *Wiring) {
		if err := buildPolicy(context.Background(), w); err != nil {
			t.Fatalf("build policy: %v", err)
		}
		if err := buildAudit(context.Background(), w); err != nil {
			t.Fatalf("build audit: %v", err)
		}
	}})
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	tf := &testFront{url: front.URL}
	for _, p := range []string{"/doc/a", "/other"} {
		if code := tf.get(t, "app.example.com", p, nil); code != 200 {
			t.Fatalf("GET %s: %d (the draft must not be enforced)", p, code)
		}
	}
	if err := s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
	shadows := map[string]any{}
	if err := audit.Scan(cfg.Audit.Dir, nil, func(r *audit.Record) error {
		if r.Type == audit.TypeDecision {
			shadows[r.Path] = r.Detail["shadow"]
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sh, _ := shadows["/doc/a"].(map[string]any)
	reasons, _ := sh["reasons"].([]any)
	if sh["outcome"] != "deny" || len(reasons) != 1 || reasons[0] != "draft_no_docs" || sh["revision"] == "" {
		t.Errorf("/doc/a decision's shadow = %#v", shadows["/doc/a"])
	}
	if v, ok := shadows["/other"]; !ok || v != nil {
		t.Errorf("/other (draft agrees): shadow = %#v, present %v; want no shadow detail", v, ok)
	}
}
