package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writePolicy writes files (relative path -> content) into a fresh dir.
func writePolicy(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		write(t, dir, name, body)
	}
	return dir
}

func write(t testing.TB, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// write-then-rename, as editors and deploy tools do: a reader never
	// sees half a file.
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// testTimeout replaces the 50ms default in tests that are not about
// timeouts: on a loaded machine a stall would be (correctly) a deny.
const testTimeout = 10 * time.Second

func mustCompile(t testing.TB, files map[string]string, opts CompileOptions) *Set {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = testTimeout
	}
	set, err := Compile(context.Background(), writePolicy(t, files), opts)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return set
}

// baseInput is a signed-in GET with MFA.
func baseInput() Input {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return Input{
		Request: RequestInput{ID: "req-1", Method: "GET", Host: "files.example.com", Path: "/x",
			Query: map[string][]string{}, Headers: map[string]string{}, RemoteIP: "203.0.113.9"},
		User:    UserInput{Sub: "u1", Email: "ana@example.com", Groups: []string{"finance"}, Roles: []string{"staff"}},
		Session: NewSessionInput(true, []string{"pwd", "otp"}, "", now.Add(-time.Minute), now),
		Route:   RouteInput{Name: "files", Host: "files.example.com", MFA: "optional"},
		Time:    NewTimeInput(now, time.UTC, false),
	}
}

func TestDecideFailsClosed(t *testing.T) {
	loop := `package gatehouse.authz
allow if {
	some i in numbers.range(1, 5000)
	some j in numbers.range(1, 5000)
	i * j == -1
}
`
	tests := []struct {
		name    string
		rego    string
		timeout time.Duration
		reason  string
		err     error
	}{
		{"undefined allow", "package gatehouse.authz\nallow if input.request.method == \"POST\"\n", 0, ReasonUndefined, ErrUndefined},
		{"eval error (divide by zero)", "package gatehouse.authz\nallow if 10 / count(input.risk.flags) > 1\n", 0, ReasonEvalError, ErrEval},
		{"builtin error", "package gatehouse.authz\nallow if to_number(input.request.path) > 1\n", 0, ReasonEvalError, ErrEval},
		{"builtin error hidden in a deny rule", "package gatehouse.authz\nallow := true\ndeny contains \"x\" if to_number(input.request.path) > 1\n", 0, ReasonEvalError, ErrEval},
		{"non-boolean allow", "package gatehouse.authz\nallow := \"yes\"\n", 0, ReasonNotBoolean, ErrNotBoolean},
		{"non-boolean allow (number)", "package gatehouse.authz\nallow := 1\n", 0, ReasonNotBoolean, ErrNotBoolean},
		{"deny not a set", "package gatehouse.authz\nallow := true\ndeny := true\n", 0, ReasonDenyNotSet, ErrNotBoolean},
		{"require_mfa not boolean", "package gatehouse.authz\nallow := true\nrequire_mfa := \"always\"\n", 0, ReasonMFANotBoolean, ErrNotBoolean},
		{"conflict", "package gatehouse.authz\nallow := true if input.request.method == \"GET\"\nallow := false if input.request.path == \"/x\"\n", 0, ReasonConflict, ErrConflict},
		{"timeout", loop, 5 * time.Millisecond, ReasonTimeout, ErrTimeout},
		// A complete deny undefined in part is undefined whole: it must
		// not read as "no reasons" (here risk.blocked would be lost).
		{"complete deny undefined (helper without default)", "package gatehouse.authz\ndefault allow := true\n" +
			"base contains \"risk.blocked\" if input.risk.blocked\nextra := {\"night\"} if input.time.night\ndeny := base | extra\n", 0, ReasonDenyUndefined, ErrDenyUndefined},
		{"complete deny undefined (import of a missing package)", "package gatehouse.authz\nimport data.gatehouse.cookbook.netwrk\ndefault allow := true\n" +
			"base contains \"risk.blocked\" if input.risk.blocked\ndeny := base | netwrk.deny\n", 0, ReasonDenyUndefined, ErrDenyUndefined},
		{"conditional complete deny without a default", "package gatehouse.authz\ndefault allow := true\ndeny := {\"blocked\"} if input.risk.blocked\n", 0, ReasonDenyUndefined, ErrDenyUndefined},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := mustCompile(t, map[string]string{"p.rego": tc.rego}, CompileOptions{Timeout: tc.timeout})
			start := time.Now()
			d, err := set.Decide(context.Background(), baseInput())
			if d.Allowed() || d.Outcome != OutcomeDeny {
				t.Fatalf("outcome %q, want deny", d.Outcome)
			}
			if !slices.Contains(d.Reasons, tc.reason) {
				t.Errorf("reasons %v, want %s", d.Reasons, tc.reason)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("err %v, want %v", err, tc.err)
			}
			if d.Revision == "" || d.Revision != set.Revision() {
				t.Errorf("revision %q, want %q", d.Revision, set.Revision())
			}
			if tc.timeout > 0 && time.Since(start) > 2*time.Second {
				t.Errorf("timeout not enforced: took %s", time.Since(start))
			}
		})
	}
}

// Deny rules that give a value — a partial set with no match, a complete
// rule that is empty — allow; only an undefined deny fails closed.
func TestDenyDefinedAllows(t *testing.T) {
	for name, rego := range map[string]string{
		"no deny rule":                 "package gatehouse.authz\nallow := true\n",
		"partial set, no match":        "package gatehouse.authz\nallow := true\ndeny contains \"x\" if input.risk.blocked\n",
		"complete rule, empty":         "package gatehouse.authz\nallow := true\nbase contains \"x\" if input.risk.blocked\ndeny := base | set()\n",
		"complete rule with a default": "package gatehouse.authz\nallow := true\ndefault deny := set()\ndeny := {\"x\"} if input.risk.blocked\n",
	} {
		t.Run(name, func(t *testing.T) {
			set := mustCompile(t, map[string]string{"p.rego": rego}, CompileOptions{})
			if d, err := set.Decide(context.Background(), baseInput()); !d.Allowed() || err != nil {
				t.Fatalf("outcome %s %v (err %v), want allow", d.Outcome, d.Reasons, err)
			}
		})
	}
}

func TestDecideCanceledContextDenies(t *testing.T) {
	set := mustCompile(t, map[string]string{"p.rego": "package gatehouse.authz\nallow := true\n"}, CompileOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := set.Decide(ctx, baseInput())
	if d.Allowed() || err == nil {
		t.Fatalf("canceled request was %s (err %v)", d.Outcome, err)
	}
}

func TestEngineNotLoadedDenies(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": "package gatehouse.authz\nallow if {\n"})
	e, err := New(context.Background(), Options{Dir: dir, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Ready() == nil {
		t.Fatal("ready with a broken policy")
	}
	if !strings.Contains(e.Ready().Error(), "p.rego:") {
		t.Errorf("ready error lacks file:line: %v", e.Ready())
	}
	d, err := e.Decide(context.Background(), baseInput())
	if d.Allowed() || !errors.Is(err, ErrNotLoaded) || !slices.Equal(d.Reasons, []string{ReasonNotLoaded}) {
		t.Fatalf("got %+v, %v", d, err)
	}
}

// combo lets inputs steer allow, deny and require_mfa independently.
const combo = `package gatehouse.authz

default allow := false

allow if input.request.headers["x-allow"] == "1"

deny contains reason if {
	some reason in input.user.roles
	startswith(reason, "deny:")
}

default require_mfa := false

require_mfa if input.request.headers["x-mfa"] == "1"
`

func TestCombinationRule(t *testing.T) {
	set := mustCompile(t, map[string]string{"p.rego": combo}, CompileOptions{})
	tests := []struct {
		allow, mfaRule, sessionMFA, routeMFA bool
		deny                                 []string
		want                                 Outcome
		reasons                              []string
	}{
		{allow: true, want: OutcomeAllow},
		{allow: false, want: OutcomeDeny, reasons: []string{ReasonNotAllowed}},
		{allow: true, deny: []string{"deny:b", "deny:a"}, want: OutcomeDeny, reasons: []string{"deny:a", "deny:b"}},
		{allow: false, deny: []string{"deny:a"}, want: OutcomeDeny, reasons: []string{"deny:a"}},
		{allow: true, mfaRule: true, sessionMFA: true, want: OutcomeAllow},
		{allow: true, mfaRule: true, sessionMFA: false, want: OutcomeStepUp, reasons: []string{ReasonMFARequired}},
		{allow: false, mfaRule: true, sessionMFA: false, want: OutcomeDeny, reasons: []string{ReasonNotAllowed}},
		{allow: true, mfaRule: true, deny: []string{"deny:a"}, want: OutcomeDeny, reasons: []string{"deny:a"}},
		{allow: true, routeMFA: true, sessionMFA: false, want: OutcomeStepUp, reasons: []string{ReasonMFARequired}},
		{allow: true, routeMFA: true, sessionMFA: true, want: OutcomeAllow},
		{allow: true, sessionMFA: false, want: OutcomeAllow},
	}
	for _, tc := range tests {
		in := baseInput()
		if tc.allow {
			in.Request.Headers["x-allow"] = "1"
		}
		if tc.mfaRule {
			in.Request.Headers["x-mfa"] = "1"
		}
		in.Session.MFA = tc.sessionMFA
		if tc.routeMFA {
			in.Route.MFA = "required"
		}
		in.User.Roles = tc.deny
		d, err := set.Decide(context.Background(), in)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if d.Outcome != tc.want || !slices.Equal(d.Reasons, tc.reasons) {
			t.Errorf("%+v: got %s %v, want %s %v", tc, d.Outcome, d.Reasons, tc.want, tc.reasons)
		}
		if d.Allow != tc.allow || d.RequireMFA != (tc.mfaRule || tc.routeMFA) {
			t.Errorf("%+v: raw allow=%v require_mfa=%v", tc, d.Allow, d.RequireMFA)
		}
		// The same verdict from the document form (replay, policy eval).
		dd, err := set.DecideDocument(context.Background(), in.AuditMap())
		if err != nil || dd.Outcome != d.Outcome || !slices.Equal(dd.Reasons, d.Reasons) {
			t.Errorf("%+v: document form %s %v (%v), want %s %v", tc, dd.Outcome, dd.Reasons, err, d.Outcome, d.Reasons)
		}
	}
}

func TestCombineNeverAllowsWithDeny(t *testing.T) {
	for _, allow := range []bool{false, true} {
		for _, req := range []bool{false, true} {
			for _, mfa := range []bool{false, true} {
				d := Combine(allow, []string{"r"}, req, mfa)
				if d.Allowed() || d.Outcome != OutcomeDeny {
					t.Errorf("Combine(%v, [r], %v, %v) = %s", allow, req, mfa, d.Outcome)
				}
				d = Combine(allow, nil, req, mfa)
				want := allow && (!req || mfa)
				if d.Allowed() != want {
					t.Errorf("Combine(%v, nil, %v, %v) allowed=%v want %v", allow, req, mfa, d.Allowed(), want)
				}
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
		is    error
	}{
		{"parse error has file:line", map[string]string{"a/p.rego": "package gatehouse.authz\n\nallow if {\n"}, "a/p.rego:", nil},
		{"strict: unused var", map[string]string{"p.rego": "package gatehouse.authz\nallow if { x := 1; true }\n"}, "p.rego:2", nil},
		{"no gatehouse.authz", map[string]string{"p.rego": "package other\nallow := true\n"}, "", ErrNoPackage},
		{"empty dir", map[string]string{"README.md": "hi"}, "", ErrNoPackage},
		{"network builtin refused", map[string]string{"p.rego": "package gatehouse.authz\nallow if http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1/\"}).status_code == 200\n"}, "http.send", nil},
		{"failing test refuses the set", map[string]string{
			"p.rego":      "package gatehouse.authz\nallow := true\n",
			"p_test.rego": "package gatehouse.authz_test\nimport data.gatehouse.authz\ntest_denies if not authz.allow\n",
		}, "p_test.rego:3", ErrTestsFailed},
		{"bad data file", map[string]string{"p.rego": "package gatehouse.authz\nallow := true\n", "data.json": "{"}, "data.json", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(context.Background(), writePolicy(t, tc.files), CompileOptions{})
			if err == nil {
				t.Fatal("compiled")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestTestsAreNotServed(t *testing.T) {
	set := mustCompile(t, map[string]string{
		"p.rego":      "package gatehouse.authz\ndefault allow := false\nallow if input.user.sub == \"u1\"\n",
		"p_test.rego": "package gatehouse.authz\ntest_u1 if allow with input as {\"user\": {\"sub\": \"u1\"}}\nallow if input.user.sub == \"u2\"\n",
	}, CompileOptions{})
	in := baseInput()
	in.User.Sub = "u2"
	if d, _ := set.Decide(context.Background(), in); d.Allowed() {
		t.Fatal("a rule from a _test.rego file was served")
	}
}

func TestDataFilesMountedByDirectory(t *testing.T) {
	set := mustCompile(t, map[string]string{
		"p.rego":          "package gatehouse.authz\ndefault allow := false\nallow if input.user.email in data.team.members\n",
		"team/data.yaml":  "members: [ana@example.com]\n",
		"team/other.json": `{"members": ["eve@example.com"]}`, // not data.json: ignored
	}, CompileOptions{})
	if d, _ := set.Decide(context.Background(), baseInput()); !d.Allowed() {
		t.Fatalf("data.yaml not mounted under data.team: %+v", d)
	}
	in := baseInput()
	in.User.Email = "eve@example.com"
	if d, _ := set.Decide(context.Background(), in); d.Allowed() {
		t.Fatal("other.json was loaded")
	}
}

const allowAll = "package gatehouse.authz\nallow := true\n"
const denyAll = "package gatehouse.authz\nallow := false\n"

func TestReloadKeepsLastGood(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": allowAll})
	events := make(chan ReloadEvent, 16)
	e, err := New(context.Background(), Options{Dir: dir, Timeout: testTimeout, Watch: true, Debounce: 20 * time.Millisecond,
		OnReload: func(ev ReloadEvent) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	first := <-events
	if first.Err != nil || !first.Changed || e.Ready() != nil {
		t.Fatalf("start: %+v", first)
	}
	r1 := e.Revision()

	// Broken file while serving: the watcher refuses it, r1 keeps serving.
	write(t, dir, "p.rego", "package gatehouse.authz\nallow := \n")
	ev := waitEvent(t, events)
	if ev.Err == nil || ev.Changed || ev.Revision != r1 {
		t.Fatalf("broken reload: %+v", ev)
	}
	if !strings.Contains(ev.Err.Error(), "p.rego:") {
		t.Errorf("error lacks file:line: %v", ev.Err)
	}
	if e.LastError() == nil {
		t.Error("LastError nil after a refused reload")
	}
	d, err := e.Decide(context.Background(), baseInput())
	if err != nil || !d.Allowed() || d.Revision != r1 {
		t.Fatalf("after broken reload: %+v %v", d, err)
	}
	// A set whose own tests fail is refused too.
	write(t, dir, "p.rego", denyAll)
	write(t, dir, "p_test.rego", "package gatehouse.authz_test\nimport data.gatehouse.authz\ntest_allows if authz.allow\n")
	ev = waitEvent(t, events)
	for ev.Err == nil && !ev.Changed { // the two writes may be seen as two reloads
		ev = waitEvent(t, events)
	}
	if !errors.Is(ev.Err, ErrTestsFailed) || e.Revision() != r1 {
		t.Fatalf("test-failing set: %+v (serving %s)", ev, e.Revision())
	}
	// Fixed: the new revision serves.
	write(t, dir, "p_test.rego", "package gatehouse.authz_test\nimport data.gatehouse.authz\ntest_denies if not authz.allow\n")
	ev = waitEvent(t, events)
	if ev.Err != nil || !ev.Changed || ev.Revision == r1 {
		t.Fatalf("fixed reload: %+v", ev)
	}
	if d, _ := e.Decide(context.Background(), baseInput()); d.Allowed() || d.Revision != ev.Revision {
		t.Fatalf("after fix: %+v", d)
	}
	if e.LastError() != nil {
		t.Errorf("LastError after a good reload: %v", e.LastError())
	}
}

func waitEvent(t *testing.T, ch <-chan ReloadEvent) ReloadEvent {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no reload event")
		return ReloadEvent{}
	}
}

func TestExplicitReload(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": allowAll})
	e, err := New(context.Background(), Options{Dir: dir, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	write(t, dir, "p.rego", denyAll)
	if d, _ := e.Decide(context.Background(), baseInput()); !d.Allowed() {
		t.Fatal("changed without a reload (no watcher configured)")
	}
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Decide(context.Background(), baseInput()); d.Allowed() {
		t.Fatal("explicit reload did not apply")
	}
	write(t, dir, "p.rego", "package gatehouse.authz\nallow if {\n")
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("broken reload returned nil")
	}
	if d, _ := e.Decide(context.Background(), baseInput()); d.Allowed() || d.Outcome != OutcomeDeny || !slices.Equal(d.Reasons, []string{ReasonNotAllowed}) {
		t.Fatalf("last good not serving: %+v", d)
	}
}

// Each request is judged by exactly one revision: while revisions that
// allow and deny alternate, every decision matches its recorded revision.
func TestReloadNeverMixesRevisions(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": allowAll})
	// A generous timeout: on a loaded machine a 50ms stall is a timeout
	// (a deny, correctly), which is not what this test is about.
	e, err := New(context.Background(), Options{Dir: dir, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	allowRev := e.Revision()
	var denyRev atomic.Value
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad, n atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d, err := e.Decide(context.Background(), baseInput())
				n.Add(1)
				if err != nil || (d.Revision == allowRev) != d.Allowed() {
					bad.Add(1)
					t.Logf("decision %+v (err %v), allow revision %s", d, err, allowRev)
				}
			}
		}()
	}
	for i := range 6 {
		body := allowAll
		if i%2 == 0 {
			body = denyAll
		}
		write(t, dir, "p.rego", body)
		if err := e.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			denyRev.Store(e.Revision())
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d decisions did not match their revision", bad.Load(), n.Load())
	}
	if denyRev.Load() == allowRev {
		t.Fatal("revisions did not change")
	}
}

func TestShadowDisagreements(t *testing.T) {
	real := writePolicy(t, map[string]string{"p.rego": combo})
	shadow := writePolicy(t, map[string]string{"p.rego": "package gatehouse.authz\ndefault allow := false\nallow if input.request.method == \"GET\"\n"})
	var got []ShadowDisagreement
	var mu sync.Mutex
	e, err := New(context.Background(), Options{Dir: real, Timeout: testTimeout, ShadowDir: shadow, OnShadowDisagreement: func(s ShadowDisagreement) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, s)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := baseInput()
	in.Request.Headers["x-allow"] = "1"
	d, _ := e.Decide(context.Background(), in) // both allow
	if !d.Allowed() || len(got) != 0 {
		t.Fatalf("agreeing decision reported: %+v %v", d, got)
	}
	in = baseInput() // real denies, shadow allows
	d, _ = e.Decide(context.Background(), in)
	if d.Allowed() {
		t.Fatal("shadow verdict was enforced")
	}
	if len(got) != 1 || got[0].RequestID != "req-1" || got[0].Shadow.Outcome != OutcomeAllow || got[0].Real.Outcome != OutcomeDeny {
		t.Fatalf("disagreement not reported: %+v", got)
	}
	// The decision carries the shadow's verdict for its audit record.
	if d.Shadow == nil || d.Shadow.Outcome != OutcomeAllow || d.Shadow.Revision == "" || d.Shadow.Revision == d.Revision {
		t.Fatalf("decision's shadow verdict = %+v (decision %+v)", d.Shadow, d)
	}
	in = baseInput()
	in.Request.Headers["x-allow"] = "1"
	if d, _ := e.Decide(context.Background(), in); d.Shadow != nil {
		t.Fatalf("an agreeing decision carries a shadow verdict: %+v", d.Shadow)
	}
}

// A change to a data file in a new subdirectory is picked up too (the
// watcher follows new directories).
func TestWatchDataAndNewDirs(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": "package gatehouse.authz\ndefault allow := false\nallow if input.user.email in data.team.members\n"})
	events := make(chan ReloadEvent, 16)
	e, err := New(context.Background(), Options{Dir: dir, Timeout: testTimeout, Watch: true, Debounce: 20 * time.Millisecond,
		OnReload: func(ev ReloadEvent) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-events
	if d, _ := e.Decide(context.Background(), baseInput()); d.Allowed() {
		t.Fatal("allowed before the data existed")
	}
	if err := os.Mkdir(filepath.Join(dir, "team"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the watcher add the new directory
	write(t, dir, "team/data.yaml", "members: [ana@example.com]\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _ := e.Decide(context.Background(), baseInput()); d.Allowed() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("data.yaml in a new directory never loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
