package policy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestAnalyseInputs(t *testing.T) {
	const pkg = "package gatehouse.authz\n\n"
	tests := []struct {
		name  string
		rego  string
		paths []string // wanted dependencies (memo on)
		off   string   // or: why the memo is off
	}{
		{"constant ref", `allow if input.request.path == "/x"`, []string{"input.request.path"}, ""},
		{"variable index", `allow if input.user.groups[_] == "a"`, []string{"input.user.groups"}, ""},
		{"map key var", "allow if {\n\tsome k\n\tinput.request.query[k]\n\tk == \"x\"\n}", []string{"input.request.query"}, ""},
		{"map member", `allow if input.request.headers["x-a"] == "1"`, []string{`input.request.headers["x-a"]`}, ""},
		{"object.get on input", `allow if "a" in object.get(input, ["user", "groups"], [])`, []string{"input.user.groups"}, ""},
		{"object.get constant key", `allow if object.get(input.request.headers, "x-y", "") == "1"`, []string{`input.request.headers["x-y"]`}, ""},
		{"object.get computed key", "k := lower(\"X-Y\")\n\nallow if object.get(input.request.headers, k, \"\") == \"1\"", []string{"input.request.headers"}, ""},
		{"object.get below a map member", `allow if object.get(input.request.query, ["a", "b"], "") == "1"`, []string{"input.request.query.a"}, ""},
		{"rule aliases input", "u := input.user\n\nallow if u.sub == \"a\"", []string{"input.user"}, ""},
		{"local aliases input", "allow if {\n\tu := input.user\n\tu.email == \"a\"\n}", []string{"input.user.email"}, ""},
		{"prefixes collapse", "allow if input.request.path == \"/\"\n\nallow if count(input.request) > 0", []string{"input.request"}, ""},
		{"data refs ignored", "allow if data.gatehouse.authz.x == input.route.name\n\nx := \"files\"", []string{"input.route.name"}, ""},
		{"every and comprehensions", "allow if every g in input.user.roles { g != \"x\" }\n\nn := count([r | some r in input.risk.flags])\n\ndeny contains \"n\" if n > 3", []string{"input.risk.flags", "input.user.roles"}, ""},
		{"whole input", `allow if count(input) > 0`, nil, "whole input"},
		{"input to a function", "f(x) := x.user.sub\n\nallow if f(input) == \"a\"", nil, "whole input"},
		{"input in a walk", "allow if {\n\tsome p, v\n\twalk(input, [p, v])\n\tv == \"a\"\n}", nil, "whole input"},
		{"with input as", "p if input.a\n\nallow if p with input as {\"a\": true}", nil, "with input"},
		{"with input path as", "p if input.user.sub == \"a\"\n\nallow if p with input.user.sub as \"a\"", nil, "with input"},
		{"time.now_ns", `allow if time.now_ns() > 0`, nil, "non-deterministic time.now_ns"},
		{"rand.intn", `allow if rand.intn("x", 10) == 1`, nil, "non-deterministic rand.intn"},
		{"uuid", `allow if uuid.rfc4122("x") != ""`, nil, "non-deterministic uuid.rfc4122"},
		{"no input at all", `allow := true`, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := mustCompile(t, map[string]string{"p.rego": pkg + tc.rego + "\n"}, CompileOptions{MemoSize: 10})
			m := set.Memo()
			if tc.off != "" {
				if m.Enabled || !strings.Contains(m.Off, tc.off) {
					t.Fatalf("memo %+v, want off (%s)", m, tc.off)
				}
				return
			}
			if !m.Enabled || !slices.Equal(m.Paths, tc.paths) {
				t.Fatalf("memo %+v, want on with paths %q", m, tc.paths)
			}
		})
	}
}

func TestAnalyseCookbook(t *testing.T) {
	set, err := Compile(context.Background(), cookbookDir, CompileOptions{Timeout: testTimeout, MemoSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`input.request.headers["x-break-glass-reason"]`, "input.request.path", "input.request.query",
		"input.request.remote_ip", "input.risk.blocked", "input.risk.flags", "input.route.name", "input.route.public",
		"input.time.hour", "input.time.night", "input.time.weekday", "input.user.groups", "input.user.roles", "input.user.sub"}
	if m := set.Memo(); !m.Enabled || !slices.Equal(m.Paths, want) {
		t.Fatalf("cookbook memo %+v,\nwant paths %q", m, want)
	}
}

// schemaLeaves lists the leaf paths of the memo's schema.
func schemaLeaves(n *schemaNode, prefix string, out *[]string) {
	if n.children == nil {
		*out = append(*out, prefix)
		return
	}
	for i := range n.children {
		schemaLeaves(&n.children[i], prefix+"."+n.children[i].name, out)
	}
}

// valueLeaves lists the leaf paths of an input document (an empty object,
// such as query or headers without members, is a leaf).
func valueLeaves(v ast.Value, prefix string, out *[]string) {
	o, ok := v.(ast.Object)
	if !ok || o.Len() == 0 {
		*out = append(*out, prefix)
		return
	}
	o.Foreach(func(k, v *ast.Term) { valueLeaves(v.Value, prefix+"."+string(k.Value.(ast.String)), out) })
}

// The memo reads fields from Input directly: its schema must be exactly
// the document Value builds, or a field could be missed from keys.
func TestMemoSchemaMatchesValue(t *testing.T) {
	var s, v []string
	schemaLeaves(&inputSchema, "input", &s)
	in := baseInput()
	in.Request.Query, in.Request.Headers = nil, nil
	valueLeaves(in.Value(), "input", &v)
	slices.Sort(s)
	slices.Sort(v)
	if !slices.Equal(s, v) {
		t.Fatalf("memo schema %q\n!= input document %q", s, v)
	}
}

// memoPolicies are test policies with a memo, beside the cookbook.
var memoPolicies = map[string]string{
	"headers":    "package gatehouse.authz\n\nallow if object.get(input.request.headers, \"x-a\", \"\") == \"1\"\n\nallow if input.request.headers[\"x-b\"]\n\ndeny contains sprintf(\"q:%v\", [k]) if some k, _ in input.request.query\n",
	"risk":       "package gatehouse.authz\n\ndefault allow := false\n\nallow if input.risk.requests_1h < 3\n\nrequire_mfa if input.time.unix % 2 == 0\n\ndeny contains input.risk.reason if input.risk.blocked\n",
	"groups":     "package gatehouse.authz\n\nallow if {\n\tu := input.user\n\tsome g in u.groups\n\tstartswith(g, \"fin\")\n}\n\nallow if object.get(input, [\"route\", \"public\"], false)\n\nrequire_mfa if input.request.path == \"/admin\"\n",
	"object.get": "package gatehouse.authz\n\nallow if object.get(input.request, [\"headers\", \"x-a\"], \"\") == \"1\"\n\nallow if object.get(input, \"user\", {}).sub == \"u1\"\n\ndeny contains \"dl\" if \"1\" in object.get(input.request.query, \"download\", [])\n\nrequire_mfa if count(object.get(input.request.query, [\"x\", 0], \"\")) > 0\n",
	"errors":     "package gatehouse.authz\n\nallow if input.request.path == \"/\"\n\nallow := \"yes\" if input.request.path == \"/s\"\n",
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// randomInput draws from small pools so that many inputs repeat the
// fields a policy reads (hits) while others vary (id, time, headers).
func randomInput(r *rand.Rand) Input {
	in := cookbookInput()
	in.Request.ID = fmt.Sprintf("req-%d", r.Int())
	in.Request.Path = pick(r, "/", "/s", "/admin", "/admin/x", "/finance/q3.xlsx", "/s/a.pdf", "/x;jsessionid=1", "/FINANCE/")
	in.Request.Query = pick(r, map[string][]string{}, map[string][]string{"download": {"1"}}, map[string][]string{"Download": {"YES"}, "x": {"1"}}, nil)
	in.Request.Headers = pick(r, map[string]string{}, map[string]string{"x-a": "1"}, map[string]string{"x-b": "", "user-agent": fmt.Sprint(r.IntN(3))},
		map[string]string{"x-break-glass-reason": "incident 4242 on call"}, map[string]string{"x-break-glass-reason": "short"})
	in.Request.RemoteIP = pick(r, "10.0.0.7", "203.0.113.9", "")
	in.User.Sub = pick(r, "u1", "")
	in.User.Groups = pick(r, []string{"finance"}, []string{"engineering"}, []string{"Admins"}, []string{"break-glass"}, nil)
	in.User.Roles = pick(r, []string{}, []string{"staff"}, []string{"admin"})
	in.Session.MFA = r.IntN(2) == 0
	in.Route.Name = pick(r, "files", "wiki", "admin", "nope")
	in.Route.Public = r.IntN(5) == 0
	in.Route.MFA = pick(r, "optional", "required")
	in.Time = NewTimeInput(time.Date(2026, 12, pick(r, 1, 5, 6), pick(r, 3, 10), r.IntN(60), r.IntN(60), 0, time.UTC), time.UTC, r.IntN(2) == 0)
	in.Risk.Flags = pick(r, []string{}, []string{"bulk_download"}, nil)
	in.Risk.Requests1h = int64(r.IntN(5))
	in.Risk.Blocked = r.IntN(6) == 0
	in.Risk.StepUp = r.IntN(6) == 0
	in.Risk.Reason = pick(r, "", "night")
	return in
}

// sameDecision compares everything but the duration.
func sameDecision(a, b Decision) bool {
	return a.Outcome == b.Outcome && a.Allow == b.Allow && a.RequireMFA == b.RequireMFA &&
		slices.Equal(a.Deny, b.Deny) && slices.Equal(a.Reasons, b.Reasons) && a.Revision == b.Revision
}

func memoPair(t testing.TB, dir string) (on, off *Set) {
	t.Helper()
	var err error
	// a small memo, so that eviction is exercised too
	if on, err = Compile(context.Background(), dir, CompileOptions{Timeout: testTimeout, MemoSize: 64}); err != nil {
		t.Fatal(err)
	}
	if off, err = Compile(context.Background(), dir, CompileOptions{Timeout: testTimeout}); err != nil {
		t.Fatal(err)
	}
	if !on.Memo().Enabled || off.Memo().Enabled {
		t.Fatalf("memo on %+v, off %+v", on.Memo(), off.Memo())
	}
	return on, off
}

func checkSame(t testing.TB, on, off *Set, in Input) (hit bool) {
	t.Helper()
	hit, err := compareMemo(on, off, in)
	if err != nil {
		t.Fatal(err)
	}
	return hit
}

// compareMemo judges in with the memo and without; an error describes a
// difference.
func compareMemo(on, off *Set, in Input) (hit bool, err error) {
	var v ast.Value
	d1, res, err1 := on.decideTyped(context.Background(), &in, &v)
	d2, err2 := off.Decide(context.Background(), in)
	if !sameDecision(d1, d2) || (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
		return false, fmt.Errorf("memo changed a decision for %+v:\nmemo %+v (%v, %v)\nOPA  %+v (%v)", in, d1, res, err1, d2, err2)
	}
	return res == memoHit, nil
}

// Memo on and memo off judge random inputs identically, over the cookbook
// and the test policies (with enough repeats for hits and evictions).
func TestMemoSameDecisions(t *testing.T) {
	dirs := map[string]string{"cookbook": cookbookDir}
	for name, body := range memoPolicies {
		dirs[name] = writePolicy(t, map[string]string{"p.rego": body})
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			on, off := memoPair(t, dir)
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			hits := 0
			pool := make([]Input, 40)
			for i := range pool {
				pool[i] = randomInput(r)
			}
			// "risk" reads input.time.unix, which changes from decision to
			// decision here: it may hit only when all it reads repeats.
			type riskKey struct {
				n       int64
				unix    int64
				blocked bool
				reason  string
			}
			seen, repeats := map[riskKey]bool{}, 0
			for range 1500 {
				in := randomInput(r)
				if r.IntN(2) == 0 { // a known caller again, at another time
					in = pool[r.IntN(len(pool))]
					in.Request.ID = fmt.Sprint(r.Int())
					in.Time.Unix += int64(r.IntN(1000))
				}
				k := riskKey{in.Risk.Requests1h, in.Time.Unix, in.Risk.Blocked, in.Risk.Reason}
				if seen[k] {
					repeats++
				}
				seen[k] = true
				if checkSame(t, on, off, in) {
					hits++
				}
			}
			switch {
			case name == "risk" && hits > repeats:
				t.Fatalf("%d memo hits in 1500 decisions, but what the policy reads repeated only %d times", hits, repeats)
			case name != "risk" && hits == 0:
				t.Fatal("no memo hit in 1500 decisions")
			}
			t.Logf("%s: %d/1500 hits, %d entries, key %q", name, hits, on.memo.len(), on.Memo().Paths)
		})
	}
}

// FuzzMemoSameDecisions: memo on and off agree for any input drawn from a
// seed (go test -fuzz=FuzzMemoSameDecisions ./policy).
func FuzzMemoSameDecisions(f *testing.F) {
	on, off := memoPair(f, cookbookDir)
	for i := range uint64(8) {
		f.Add(i, i*7+1)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		in := randomInput(r)
		checkSame(t, on, off, in)
		checkSame(t, on, off, in) // now from the memo
	})
}

func TestMemoHitsOnlyUnreadFields(t *testing.T) {
	e, err := New(context.Background(), Options{Dir: cookbookDir, Timeout: testTimeout})
	if err != nil || e.Ready() != nil {
		t.Fatal(err, e.Ready())
	}
	defer e.Close()
	ctx := context.Background()
	first := cookbookInput()
	d0, _ := e.Decide(ctx, first)
	if st := e.MemoStats(); st.Misses != 1 || st.Hits != 0 || st.Entries != 1 {
		t.Fatalf("after the first decision: %+v", st)
	}
	// Fields the cookbook never reads: request id, time.unix, other headers,
	// session details.
	other := cookbookInput()
	other.Request.ID = "req-2"
	other.Time.Unix += 3600
	other.Request.Headers = map[string]string{"user-agent": "curl/8"}
	other.Session.AMR = []string{"pwd"}
	d1, _ := e.Decide(ctx, other)
	if st := e.MemoStats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("unread fields changed: want a hit, got %+v", st)
	}
	if !sameDecision(d0, d1) {
		t.Fatalf("hit %+v != %+v", d1, d0)
	}
	// A field it reads: the path.
	read := cookbookInput()
	read.Request.Path = "/admin"
	d2, _ := e.Decide(ctx, read)
	if st := e.MemoStats(); st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("read field changed: want a miss, got %+v", st)
	}
	if d2.Outcome != OutcomeDeny {
		t.Fatalf("/admin: %+v", d2)
	}
	// The header it reads: present vs absent differ.
	hdr := cookbookInput()
	hdr.Request.Headers = map[string]string{"user-agent": "Mozilla/5.0", "x-break-glass-reason": ""}
	_, _ = e.Decide(ctx, hdr)
	if st := e.MemoStats(); st.Misses != 3 {
		t.Fatalf("x-break-glass-reason added: want a miss, got %+v", st)
	}
	// The session's MFA is applied per request, never memoised.
	noMFA := cookbookInput()
	noMFA.Request.Path = "/admin"
	noMFA.User.Groups = []string{"admins"}
	noMFA.Session.MFA = true
	if d, _ := e.Decide(ctx, noMFA); d.Outcome != OutcomeAllow {
		t.Fatalf("admin with MFA: %+v", d)
	}
	noMFA.Session.MFA = false
	if d, _ := e.Decide(ctx, noMFA); d.Outcome != OutcomeStepUp {
		t.Fatalf("admin without MFA from the memo: %+v", d)
	}
}

func TestMemoOffOption(t *testing.T) {
	e, err := New(context.Background(), Options{Dir: cookbookDir, Timeout: testTimeout, NoDecisionMemo: true})
	if err != nil || e.Ready() != nil {
		t.Fatal(err, e.Ready())
	}
	defer e.Close()
	for range 3 {
		_, _ = e.Decide(context.Background(), cookbookInput())
	}
	if st := e.MemoStats(); st.Hits != 0 || st.Misses != 0 || st.Uncached != 3 {
		t.Fatalf("memo off: %+v", st)
	}
	if m := e.Current().Memo(); m.Enabled || m.Off != "disabled" {
		t.Fatalf("memo off: %+v", m)
	}
}

func TestMemoDroppedOnReload(t *testing.T) {
	dir := copyTree(t, cookbookDir)
	e, err := New(context.Background(), Options{Dir: dir, Timeout: testTimeout})
	if err != nil || e.Ready() != nil {
		t.Fatal(err, e.Ready())
	}
	defer e.Close()
	ctx := context.Background()
	in := cookbookInput()
	if d, _ := e.Decide(ctx, in); !d.Allowed() {
		t.Fatal(d)
	}
	if d, _ := e.Decide(ctx, in); !d.Allowed() || e.MemoStats().Hits != 1 {
		t.Fatal(d, e.MemoStats())
	}
	old := e.Revision()
	// The new revision denies what the memo of the old one allowed.
	p := filepath.Join(dir, "risk", "risk.rego")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "\ndeny contains \"risk.finance_frozen\" if startswith(input.request.path, \"/finance/\")\n"...)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == old || e.MemoStats().Entries != 0 {
		t.Fatalf("after reload: revision %s (was %s), %+v", e.Revision(), old, e.MemoStats())
	}
	d, _ := e.Decide(ctx, in)
	if d.Outcome != OutcomeDeny || !slices.Contains(d.Reasons, "risk.finance_frozen") || d.Revision == old {
		t.Fatalf("after reload the old verdict served: %+v", d)
	}
	if st := e.MemoStats(); st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("after reload: %+v", st)
	}
}

// Failures are never memoised: a timeout is judged again.
func TestMemoSkipsFailures(t *testing.T) {
	set := mustCompile(t, map[string]string{"p.rego": "package gatehouse.authz\n\nallow := \"yes\" if input.request.path == \"/s\"\n"}, CompileOptions{MemoSize: 10})
	in := cookbookInput()
	in.Request.Path = "/s"
	for range 2 {
		var v ast.Value
		d, res, err := set.decideTyped(context.Background(), &in, &v)
		if !errors.Is(err, ErrNotBoolean) || d.Outcome != OutcomeDeny || res != memoMiss {
			t.Fatalf("%+v %v %v", d, res, err)
		}
	}
	if set.memo.len() != 0 {
		t.Fatal("a failure was memoised")
	}
}

// BenchmarkDecideMemo is BenchmarkDecide with the memo, hitting: the
// request id and clock change per request, as in production.
func BenchmarkDecideMemo(b *testing.B) {
	set, err := Compile(context.Background(), cookbookDir, CompileOptions{Timeout: time.Second, MemoSize: DefaultMemoSize})
	if err != nil {
		b.Fatal(err)
	}
	in := cookbookInput()
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := int64(0)
	for b.Loop() {
		i++
		in.Time.Unix = i
		d, _ := set.Decide(ctx, in)
		if !d.Allowed() {
			b.Fatal(d.Reasons)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// Concurrent decisions through one memo (run with -race).
func TestMemoConcurrent(t *testing.T) {
	on, off := memoPair(t, cookbookDir)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 150 {
				if _, err := compareMemo(on, off, randomInput(r)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// A memo hit does no evaluation, so it makes none of an evaluation's
// per-request objects (the timeout's timer and cancel, the input value):
// those are made only on a miss, which still enforces the timeout
// (TestDecideFailsClosed). Nothing on the hit path allocates.
func TestMemoHitAllocatesNothing(t *testing.T) {
	set, err := Compile(context.Background(), cookbookDir, CompileOptions{Timeout: testTimeout, MemoSize: DefaultMemoSize})
	if err != nil {
		t.Fatal(err)
	}
	in := cookbookInput()
	ctx := context.Background()
	var v ast.Value
	if _, res, err := set.decideTyped(ctx, &in, &v); res != memoMiss || err != nil || v == nil {
		t.Fatalf("first decision: %v %v", res, err)
	}
	var hit ast.Value
	allocs := testing.AllocsPerRun(200, func() {
		if d, res, err := set.decideTyped(ctx, &in, &hit); res != memoHit || err != nil || !d.Allowed() {
			t.Fatalf("repeat: %v %v %+v", res, err, d)
		}
	})
	if allocs > 0 && !raceEnabled || hit != nil {
		t.Fatalf("a memo hit allocates %v times (input value built: %v)", allocs, hit != nil)
	}
}
