package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// End-to-end tests of the policy stage through the real pipeline: the
// registered builder (buildPolicy) from config, a policy directory on disk
// that changes while the server runs, /metrics, /readyz and gatehouse check.

const policyE2E = `package gatehouse.authz

default allow := false

allow if {
	input.user.sub != ""
	input.route.name in {"app", "files"}
}

deny contains "no_secrets" if startswith(lower(input.request.path), "/secret")

require_mfa if startswith(input.request.path, "/admin")
`

const policyE2ETest = `package gatehouse.authz_test

import data.gatehouse.authz

test_secret_denied if "no_secrets" in authz.deny with input as {"request": {"path": "/Secret/x"}}
`

func writePolicyFile(t *testing.T, dir, name, body string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// policyServer runs the pipeline with the real policy builder.
func policyServer(t *testing.T, dir string, auth *fakeAuth, rec *fakeRecorder) (*Server, *httptest.Server, *httptest.Server, *config.Config) {
	t.Helper()
	up, _ := echoUpstream(t, nil)
	cfg := baseConfig(up.URL)
	cfg.Policy = config.Policy{Dir: dir, Timeout: config.Duration(5 * time.Second)}
	cfg.Anomaly.Timezone = "Asia/Hong_Kong"
	s, front := newTestServer(t, cfg, stages{auth: auth, rec: rec, extra: func(w *Wiring) {
		if err := buildPolicy(context.Background(), w); err != nil {
			t.Fatalf("build policy: %v", err)
		}
	}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.runClose(ctx)
	})
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	return s, front, admin, cfg
}

func metricValue(t *testing.T, admin *httptest.Server, name string) float64 {
	t.Helper()
	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_ = json.Unmarshal([]byte(v), &f)
			return f
		}
	}
	return 0
}

// policyReadiness is the "policy" entry of /readyz (the listeners check is
// never ready under httptest, so the overall status says nothing here).
func policyReadiness(t *testing.T, admin *httptest.Server) string {
	t.Helper()
	resp, err := http.Get(admin.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	return ready.Checks["policy"]
}

func lastDecision(t *testing.T, rec *fakeRecorder) Event {
	t.Helper()
	var last Event
	eventually(t, func() bool { return rec.count(EventDecision) > 0 })
	for _, e := range rec.Events() {
		if e.Type == EventDecision {
			last = e
		}
	}
	return last
}

func TestPolicyE2EReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", policyE2E)
	writePolicyFile(t, dir, "authz_test.rego", policyE2ETest)
	rec := &fakeRecorder{}
	_, front, admin, cfg := policyServer(t, dir, &fakeAuth{id: alice}, rec)

	resp, _ := get(t, front, "app.example.com", "/doc", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed request: %d", resp.StatusCode)
	}
	ev := lastDecision(t, rec)
	rev1 := ev.Revision
	if ev.Outcome != OutcomeAllow || rev1 == "" || ev.InputJSON == nil || ev.Input != nil {
		t.Fatalf("decision event %+v", ev)
	}
	if got := decisionInput(t, ev)["request"].(map[string]any)["path"]; got != "/doc" {
		t.Fatalf("recorded input path %v", got)
	}
	resp, body := get(t, front, "app.example.com", "/SECRET/plans", map[string]string{"Accept": "application/json"})
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "no_secrets") {
		t.Fatalf("denied request: %d %s (reasons must not reach the client)", resp.StatusCode, body)
	}
	if ev := lastDecision(t, rec); ev.Outcome != OutcomeDeny || !slices.Contains(ev.Reasons, "no_secrets") {
		t.Fatalf("deny event %+v", ev)
	}

	// Break the policy while serving: the previous revision keeps judging.
	writePolicyFile(t, dir, "authz.rego", "package gatehouse.authz\n\nallow if {\n")
	eventually(t, func() bool {
		return metricValue(t, admin, `gatehouse_policy_reloads_total{result="failure",set="serving"}`) >= 1
	})
	if v := metricValue(t, admin, `gatehouse_policy_reloads_total{result="failure",set="serving"}`); v < 1 {
		t.Fatalf("failed reload not counted (%v)", v)
	}
	if metricValue(t, admin, "gatehouse_policy_last_reload_failed") != 1 {
		t.Error("gatehouse_policy_last_reload_failed is not 1")
	}
	for i := range 5 {
		resp, _ := get(t, front, "app.example.com", "/doc", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d after a broken reload: %d", i, resp.StatusCode)
		}
		if ev := lastDecision(t, rec); ev.Revision != rev1 {
			t.Fatalf("judged by %q, want last good %q", ev.Revision, rev1)
		}
	}
	if resp, _ := get(t, front, "app.example.com", "/secret", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("last good revision no longer denies: %d", resp.StatusCode)
	}
	if c := policyReadiness(t, admin); c != "ok" {
		t.Fatalf("readyz policy check after a refused reload: %q", c)
	}
	// gatehouse check reports OPA's file:line.
	err := Check(context.Background(), cfg)
	var fe *config.FieldError
	if err == nil || !errors.As(err, &fe) || fe.File != filepath.Join(dir, "authz.rego") || fe.Line == 0 ||
		!strings.HasPrefix(err.Error(), filepath.Join(dir, "authz.rego")+":") || !strings.Contains(err.Error(), "rego_") {
		t.Fatalf("check must print dir/file.rego:line: policy: ...; got %v", err)
	}

	// Fixed: a new revision serves and the reload is recorded.
	writePolicyFile(t, dir, "authz.rego", strings.Replace(policyE2E, `"app", "files"`, `"files"`, 1))
	var rev2 string
	eventually(t, func() bool {
		get(t, front, "app.example.com", "/doc", nil)
		rev2 = lastDecision(t, rec).Revision
		return rev2 != rev1
	})
	if rev2 == rev1 {
		t.Fatal("fixed policy never served")
	}
	if ev := lastDecision(t, rec); ev.Outcome != OutcomeDeny {
		t.Fatalf("new revision not applied: %+v", ev)
	}
	var reloads []Event
	for _, e := range rec.Events() {
		if e.Type == EventPolicyReload {
			reloads = append(reloads, e)
		}
	}
	if len(reloads) < 3 || reloads[len(reloads)-1].Fields["result"] != "success" {
		t.Fatalf("reload events %+v", reloads)
	}
}

func TestPolicyE2ENotReadyUntilCompiled(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", "package gatehouse.authz\n\nallow := \n")
	rec := &fakeRecorder{}
	_, front, admin, _ := policyServer(t, dir, &fakeAuth{id: alice}, rec)
	if c := policyReadiness(t, admin); !strings.Contains(c, "authz.rego:") {
		t.Fatalf("readyz policy check: %q", c)
	}
	if resp, _ := get(t, front, "app.example.com", "/doc", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("request without a policy: %d", resp.StatusCode)
	}
	if ev := lastDecision(t, rec); !slices.Contains(ev.Reasons, policy.ReasonNotLoaded) {
		t.Fatalf("reasons %v", ev.Reasons)
	}
	writePolicyFile(t, dir, "authz.rego", policyE2E)
	eventually(t, func() bool { return policyReadiness(t, admin) == "ok" })
	if resp, _ := get(t, front, "app.example.com", "/doc", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the first compile: %d", resp.StatusCode)
	}
}

func TestPolicyE2EStepUp(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", policyE2E)
	auth := &fakeAuth{id: Identity{Subject: "bob-sub", Email: "bob@example.com", SessionID: "s2"}}
	rec := &fakeRecorder{}
	_, front, _, _ := policyServer(t, dir, auth, rec)
	resp, _ := get(t, front, "app.example.com", "/admin/users", nil)
	if resp.StatusCode != http.StatusFound || len(auth.stepUps) != 1 {
		t.Fatalf("step-up: %d %v", resp.StatusCode, auth.stepUps)
	}
	if ev := lastDecision(t, rec); ev.Outcome != OutcomeStepUp {
		t.Fatalf("event %+v", ev)
	}
}

// The input the adapter really builds from an HTTP request matches the
// published schema, and leaves credentials and forgeable headers out.
func TestPolicyInputFromRequestMatchesSchema(t *testing.T) {
	sch, err := jsonschema.NewCompiler().Compile("../docs/policy-input.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig("http://127.0.0.1:1")
	cfg.Anomaly.Timezone = "Asia/Hong_Kong"
	st := &policyStage{}
	if err := st.configure(cfg); err != nil {
		t.Fatal(err)
	}
	hr := httptest.NewRequest("GET", "https://Files.Example.com:8443/s/a.pdf?download=1&token=abc", nil)
	for k, v := range map[string]string{
		"Cookie": "_gatehouse=secret", "Authorization": "Bearer x", "X-Forwarded-For": "6.6.6.6",
		"X-Auth-User": "admin", "X-Identity-Assertion": "forged", "User-Agent": "test-agent", "X-Break-Glass-Reason": "INC-1 outage",
	} {
		hr.Header.Set(k, v)
	}
	at := time.Date(2026, 12, 1, 15, 30, 0, 0, time.UTC) // 23:30 in Hong Kong
	req := &Request{ID: "req-9", Route: RouteInfo{Name: "files", Host: "files.example.com", MFA: "optional"}, Path: "/s/a.pdf",
		ClientIP: netip.MustParseAddr("::ffff:203.0.113.9"), Time: at, HTTP: hr}
	cases := map[string]struct {
		id   Identity
		risk Risk
	}{
		"signed in": {Identity{Subject: "u1", Email: "ana@example.com", Name: "Ana", Groups: []string{"finance"}, Roles: []string{"staff"},
			MFA: true, AMR: []string{"pwd", "otp"}, AuthTime: at.Add(-7 * time.Minute)},
			Risk{Flags: []string{"night"}, Requests: 10, Downloads: 3, Bytes: 1 << 20, Night: true}},
		"anonymous": {Identity{}, Risk{}},
	}
	for name, tc := range cases {
		in := st.input(req, tc.id, tc.risk)
		raw := in.AppendAuditJSON(nil) // what the audit record stores
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in.AuditMap()); err != nil || !bytes.Equal(raw, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Errorf("%s: audit JSON is not encoding/json of AuditMap (%v)\n got %s\nwant %s", name, err, raw, want.Bytes())
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: %v\n%s", name, err, raw)
		}
		h := in.Request.Headers
		for _, bad := range []string{"cookie", "authorization", "x-forwarded-for", "x-auth-user", "x-identity-assertion"} {
			if _, ok := h[bad]; ok {
				t.Errorf("%s: header %s reached the policy", name, bad)
			}
		}
		if h["user-agent"] != "test-agent" || h["x-break-glass-reason"] != "INC-1 outage" {
			t.Errorf("%s: headers %v", name, h)
		}
		if in.Request.Host != "files.example.com" || in.Request.RemoteIP != "203.0.113.9" || in.Time.Hour != 23 || in.Time.Weekday != "Tuesday" {
			t.Errorf("%s: request %+v time %+v", name, in.Request, in.Time)
		}
		if strings.Contains(string(raw), "abc") {
			t.Errorf("%s: token query value reached the audit input: %s", name, raw)
		}
		for _, secret := range []string{"secret", "Bearer", "forged", "admin", "6.6.6.6"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s: %q reached the audit input: %s", name, secret, raw)
			}
		}
	}
	in := st.input(req, cases["signed in"].id, cases["signed in"].risk)
	if in.Session.AuthAgeSeconds != 420 || !in.Time.Night || in.Risk.Downloads1h != 3 {
		t.Errorf("session %+v time %+v risk %+v", in.Session, in.Time, in.Risk)
	}
}

// The decision memo through the real wiring: a repeated request is served
// from the memo (counted in /metrics) with its own audit input, a read
// field misses, a reload drops the memo, and policy.decision_cache: false
// turns it off.
func TestPolicyE2EDecisionMemo(t *testing.T) {
	for _, memo := range []bool{true, false} {
		dir := t.TempDir()
		writePolicyFile(t, dir, "authz.rego", policyE2E)
		rec := &fakeRecorder{}
		up, _ := echoUpstream(t, nil)
		cfg := baseConfig(up.URL)
		cfg.Policy = config.Policy{Dir: dir, Timeout: config.Duration(5 * time.Second), DecisionCache: &memo}
		s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, rec: rec, extra: func(w *Wiring) {
			if err := buildPolicy(context.Background(), w); err != nil {
				t.Fatalf("build policy: %v", err)
			}
		}})
		t.Cleanup(func() { _ = s.runClose(context.Background()) })
		admin := httptest.NewServer(s.AdminHandler())
		t.Cleanup(admin.Close)
		const hit, miss, uncached = `gatehouse_policy_memo_decisions_total{result="hit"}`, `gatehouse_policy_memo_decisions_total{result="miss"}`, `gatehouse_policy_memo_decisions_total{result="uncached"}`

		var ids []string
		for i, path := range []string{"/doc", "/doc", "/SECRET/x", "/doc"} {
			resp, _ := get(t, front, "app.example.com", path, map[string]string{"User-Agent": "agent-" + string(rune('a'+i))})
			wantStatus := http.StatusOK
			if path == "/SECRET/x" {
				wantStatus = http.StatusForbidden
			}
			if resp.StatusCode != wantStatus {
				t.Fatalf("memo %v: %s: %d", memo, path, resp.StatusCode)
			}
			eventually(t, func() bool { return rec.count(EventDecision) == i+1 })
			ev := lastDecision(t, rec)
			in := decisionInput(t, ev)
			if in == nil || in["request"].(map[string]any)["path"] != path {
				t.Fatalf("memo %v: decision %d audited without its own input: %+v", memo, i, in)
			}
			ids = append(ids, in["request"].(map[string]any)["id"].(string))
		}
		if ids[0] == ids[1] || ids[1] == ids[3] {
			t.Fatalf("request ids %v", ids)
		}
		h, m, u := metricValue(t, admin, hit), metricValue(t, admin, miss), metricValue(t, admin, uncached)
		if memo && (h != 2 || m != 2 || u != 0) || !memo && (h != 0 || m != 0 || u != 4) {
			t.Fatalf("memo %v: hits %v misses %v uncached %v", memo, h, m, u)
		}
		if memo && metricValue(t, admin, "gatehouse_policy_memo_entries") != 2 {
			t.Fatalf("memo entries %v", metricValue(t, admin, "gatehouse_policy_memo_entries"))
		}
		if !memo {
			continue
		}
		// A new revision: memo dropped, counters keep counting.
		writePolicyFile(t, dir, "authz.rego", strings.Replace(policyE2E, `"/secret"`, `"/doc"`, 1))
		eventually(t, func() bool { return metricValue(t, admin, "gatehouse_policy_memo_entries") == 0 })
		resp, _ := get(t, front, "app.example.com", "/doc", nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("after reload /doc: %d (a stale memo entry served)", resp.StatusCode)
		}
		if metricValue(t, admin, miss) != 3 || metricValue(t, admin, hit) != 2 {
			t.Fatalf("after reload: hits %v misses %v", metricValue(t, admin, hit), metricValue(t, admin, miss))
		}
	}
}

// BenchmarkPolicyStageDecide is one decision through the adapter: input
// from an HTTP request, the cookbook policy, the audit input map.
func BenchmarkPolicyStageDecide(b *testing.B) {
	cfg := baseConfig("http://127.0.0.1:1")
	cfg.Policy = config.Policy{Dir: "../examples/policies", Timeout: config.Duration(time.Second)}
	w := &Wiring{Config: cfg}
	if err := buildPolicy(context.Background(), w); err != nil {
		b.Fatal(err)
	}
	st := w.Authz.(*policyStage)
	hr := httptest.NewRequest("GET", "https://files.example.com/docs/a.txt", nil)
	hr.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
	hr.Header.Set("Accept", "text/html,application/xhtml+xml")
	hr.Header.Set("Accept-Language", "en-US,en;q=0.9")
	hr.Header.Set("Cookie", "_gatehouse=abc")
	req := &Request{ID: "r1", Route: RouteInfo{Name: "files", Host: "files.example.com", MFA: "optional"}, Path: "/docs/a.txt",
		ClientIP: netip.MustParseAddr("10.0.0.7"), Time: time.Now(), HTTP: hr}
	id := Identity{Subject: "u1", Email: "ana@example.com", Groups: []string{"finance", "staff"}, MFA: true, AMR: []string{"pwd", "otp"}, AuthTime: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		d, _ := st.Decide(context.Background(), req, id, Risk{})
		if !d.Allow {
			b.Fatal(d.Deny)
		}
	}
}

// TestPolicyDecisionsCountedByOutcome: gatehouse_policy_decisions_total
// counts each decision under its outcome (the counters of the known
// outcomes are resolved once, at build).
func TestPolicyDecisionsCountedByOutcome(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", policyE2E)
	auth := &fakeAuth{id: Identity{Subject: "bob-sub", Email: "bob@example.com", SessionID: "s2"}}
	_, front, admin, _ := policyServer(t, dir, auth, &fakeRecorder{})
	for _, p := range []string{"/a", "/b", "/secret/x", "/admin/users"} {
		resp, _ := get(t, front, "app.example.com", p, nil)
		resp.Body.Close()
	}
	for outcome, want := range map[string]float64{"allow": 2, "deny": 1, "step_up": 1} {
		name := `gatehouse_policy_decisions_total{outcome="` + outcome + `"}`
		if got := metricValue(t, admin, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
