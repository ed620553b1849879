package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DefaultTimeout bounds one evaluation when the options say nothing.
const DefaultTimeout = 50 * time.Millisecond

// query reads the three rules in one evaluation. Each is wrapped in an
// array comprehension so that an undefined rule yields [] instead of
// making the whole query undefined, and so that we can tell which one was.
const query = `allow := [x | x := data.gatehouse.authz.allow]; ` +
	`deny := [x | x := data.gatehouse.authz.deny]; ` +
	`require_mfa := [x | x := data.gatehouse.authz.require_mfa]`

// CompileOptions tune [Compile].
type CompileOptions struct {
	// Timeout bounds each evaluation (DefaultTimeout when zero).
	Timeout time.Duration
	// SkipTests accepts the set without running its *_test.rego files
	// (`policy eval` on a work in progress). The engine never skips them.
	SkipTests bool
	// TestTimeout bounds each Rego test (5s when zero).
	TestTimeout time.Duration
	// MemoSize enables the decision memo with this many entries (0: no
	// memo). It serves typed inputs ([Set.Decide], [Engine.Decide]) when
	// the policy's reads of input can be analysed; see [Set.Memo].
	MemoSize int
}

// Set is one compiled, tested revision of a policy directory. It is
// immutable and safe for concurrent use.
type Set struct {
	dir      string
	revision string
	timeout  time.Duration
	pq       rego.PreparedEvalQuery
	files    []string
	deps     inputDeps // what the revision can read of input
	memo     *memo     // nil: every decision is evaluated
	// denyRules: the policy has rules for deny. Its deny is then never
	// allowed to be undefined (see readVerdict).
	denyRules bool
}

// Revision is the content hash of the set's served files.
func (s *Set) Revision() string { return s.revision }

// Dir is the directory the set was loaded from.
func (s *Set) Dir() string { return s.dir }

// Files lists the set's files (relative slash paths), tests included.
func (s *Set) Files() []string { return s.files }

// Compile reads dir, parses and compiles it (Rego v1, strict), runs its own
// tests and prepares the decision query. Errors carry OPA's file:line
// (relative to dir).
func Compile(ctx context.Context, dir string, opts CompileOptions) (*Set, error) {
	snap, err := readSnapshot(dir)
	if err != nil {
		return nil, err
	}
	set, err := compileSnapshot(ctx, dir, snap, opts)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", dir, err)
	}
	return set, nil
}

func compileSnapshot(ctx context.Context, dir string, snap *snapshot, opts CompileOptions) (*Set, error) {
	res, err := snap.load()
	if err != nil {
		return nil, err
	}
	all := res.ParsedModules()
	var compiler *ast.Compiler
	regoOpts := []func(*rego.Rego){
		rego.Query(query),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Strict(true),
		rego.StrictBuiltinErrors(true),
		rego.Capabilities(Capabilities()),
		rego.Store(newStore(res.Documents)),
		// Keep results as OPA values: no conversion to Go maps per request.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }),
		// The compiler's output is what gets evaluated: its modules (refs
		// resolved, imports applied) are what the memo analysis walks.
		rego.CompilerHook(func(c *ast.Compiler) { compiler = c }),
	}
	found := false
	names := make([]string, 0, len(all))
	for name, m := range all {
		names = append(names, name)
		if isTestFile(name) {
			continue
		}
		if m.Package.Path.String() == "data."+Package {
			found = true
		}
		regoOpts = append(regoOpts, rego.ParsedModule(m))
	}
	sort.Strings(names)
	if !found {
		return nil, ErrNoPackage
	}
	pq, err := rego.New(regoOpts...).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	if !opts.SkipTests && snap.hasTests() {
		tt := opts.TestTimeout
		if tt <= 0 {
			tt = 5 * time.Second
		}
		if err := runSetTests(ctx, all, newStore(res.Documents), tt); err != nil {
			return nil, err
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	set := &Set{dir: dir, revision: snap.revision(), timeout: timeout, pq: pq, files: names}
	if compiler != nil {
		set.denyRules = len(compiler.GetRulesExact(denyRef)) > 0
		set.deps = analyseInputs(compiler.Modules)
	} else {
		set.deps.off = "compiled modules unavailable"
	}
	if opts.MemoSize > 0 && set.deps.off == "" {
		set.memo = newMemo(set.deps.paths, opts.MemoSize)
	}
	return set, nil
}

// Decide judges one input.
func (s *Set) Decide(ctx context.Context, in Input) (Decision, error) {
	var v ast.Value
	d, _, err := s.decideTyped(ctx, &in, &v)
	return d, err
}

// DecideDocument judges an input document given as JSON-like values (an
// input.json file, or an input recorded in the audit log). MFA facts are
// read from the document itself.
func (s *Set) DecideDocument(ctx context.Context, doc map[string]any) (Decision, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		d := failed(ReasonEvalError)
		d.Revision = s.revision
		return d, fmt.Errorf("%w: input document: %w", ErrEval, err)
	}
	mfa, routeMFA := docFacts(v)
	return s.decide(ctx, v, mfa, routeMFA)
}

// docFacts reads input.session.mfa, and whether the route or the risk
// demands MFA (see Input.mfaDemanded), from a document.
func docFacts(v ast.Value) (mfa, routeMFA bool) {
	obj, ok := v.(ast.Object)
	if !ok {
		return false, false
	}
	if t, err := obj.Find(ast.Ref{kSession, kMFA}); err == nil {
		b, isBool := t.(ast.Boolean)
		mfa = isBool && bool(b)
	}
	if t, err := obj.Find(ast.Ref{kRoute, kMFA}); err == nil {
		sv, isStr := t.(ast.String)
		routeMFA = isStr && string(sv) == "required"
	}
	if t, err := obj.Find(ast.Ref{kRoute, kPublic}); err == nil && t.Compare(ast.Boolean(true)) == 0 {
		routeMFA = false
	}
	if t, err := obj.Find(ast.Ref{kRisk, kStepUp}); err == nil && t.Compare(ast.Boolean(true)) == 0 {
		routeMFA = true
	}
	return mfa, routeMFA
}

// Explain evaluates like Decide and writes OPA's trace (with locations) of
// the evaluation to w.
func (s *Set) Explain(ctx context.Context, doc map[string]any, w io.Writer) (Decision, error) {
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return failed(ReasonEvalError), fmt.Errorf("%w: input document: %w", ErrEval, err)
	}
	buf := topdown.NewBufferTracer()
	mfa, routeMFA := docFacts(v)
	d, derr := s.decide(ctx, v, mfa, routeMFA, rego.EvalQueryTracer(buf))
	topdown.PrettyTraceWithLocation(w, *buf)
	return d, derr
}

// noMetrics: per-eval metrics are not collected (they cost allocations).
var noMetrics = metrics.NoOp()

func (s *Set) decide(ctx context.Context, input ast.Value, mfa, routeMFA bool, extra ...rego.EvalOption) (Decision, error) {
	start := time.Now()
	v, d, err := s.eval(ctx, input, extra...)
	if err == nil {
		d = v.decision(mfa, routeMFA)
	}
	d.Revision = s.revision
	d.Duration = time.Since(start)
	return d, err
}

// eval evaluates the prepared query once: the policy's verdict, or the
// fail-closed decision and a non-nil error.
func (s *Set) eval(ctx context.Context, input ast.Value, extra ...rego.EvalOption) (verdict, Decision, error) {
	// A timer cancels the evaluation: cheaper than a context with deadline,
	// which makes OPA start a goroutine per evaluation.
	cancel := topdown.NewCancel()
	timer := time.AfterFunc(s.timeout, cancel.Cancel)
	opts := append(extra, rego.EvalParsedInput(input), rego.EvalMetrics(noMetrics), rego.EvalExternalCancel(cancel))
	var rs rego.ResultSet
	var err error
	if ctx.Err() == nil {
		rs, err = s.pq.Eval(ctx, opts...)
	}
	stopped := timer.Stop()
	timedOut := !stopped && ctx.Err() == nil
	if err != nil || timedOut || ctx.Err() != nil { // nobody waits for a late verdict
		d, err := evalFailure(ctx, err, timedOut, s.timeout)
		return verdict{}, d, err
	}
	return readVerdict(rs, s.denyRules)
}

// denyRef is the deny rule's full name.
var denyRef = ast.MustParseRef("data." + Package + ".deny")

func evalFailure(ctx context.Context, err error, timedOut bool, timeout time.Duration) (Decision, error) {
	switch {
	case timedOut:
		return failed(ReasonTimeout), fmt.Errorf("%w after %s", ErrTimeout, timeout)
	case ctx.Err() != nil:
		return failed(ReasonCanceled), fmt.Errorf("%w: %w", ErrEval, ctx.Err())
	}
	var te *topdown.Error
	if errors.As(err, &te) && te.Code == topdown.ConflictErr {
		return failed(ReasonConflict), fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return failed(ReasonEvalError), fmt.Errorf("%w: %w", ErrEval, err)
}

// verdict is what the policy itself said about one input, before the
// request's own MFA facts are applied: the unit the decision memo stores.
type verdict struct {
	allow      bool
	deny       []string // sorted
	requireMFA bool     // the policy's require_mfa only
}

// decision applies the rule (Combine) with the request's MFA facts.
func (v verdict) decision(mfa, routeMFA bool) Decision {
	return Combine(v.allow, v.deny, v.requireMFA || routeMFA, mfa)
}

// readVerdict reads the policy's answer from the query's bindings; on any
// shape it does not expect it returns the fail-closed decision and a
// non-nil error.
//
// denyRules says the policy has rules for deny: an undefined deny then
// fails closed. `deny contains ...` is never undefined (no match is the
// empty set), but a complete rule such as `deny := a.deny | b.deny` is
// when any part of it is — a helper without a default, an import of a
// package that was renamed — and reading that as "no reasons" would drop
// every reason at once.
func readVerdict(rs rego.ResultSet, denyRules bool) (verdict, Decision, error) {
	fail := func(d Decision, err error) (verdict, Decision, error) { return verdict{}, d, err }
	if len(rs) != 1 {
		return fail(failed(ReasonUndefined), fmt.Errorf("%w: %d results", ErrUndefined, len(rs)))
	}
	b := rs[0].Bindings
	allowVals, ok1 := b["allow"].(*ast.Array)
	denyVals, ok2 := b["deny"].(*ast.Array)
	mfaVals, ok3 := b["require_mfa"].(*ast.Array)
	if !ok1 || !ok2 || !ok3 {
		return fail(failed(ReasonUndefined), fmt.Errorf("%w: unexpected result shape", ErrUndefined))
	}

	// deny first: a deny reason is worth recording even when allow is broken.
	var deny []string
	if denyVals.Len() == 1 {
		switch members := denyVals.Elem(0).Value.(type) {
		case ast.Set:
			deny = make([]string, 0, members.Len())
			members.Foreach(func(t *ast.Term) { deny = append(deny, reasonString(t.Value)) })
		case *ast.Array:
			deny = make([]string, 0, members.Len())
			members.Foreach(func(t *ast.Term) { deny = append(deny, reasonString(t.Value)) })
		default:
			return fail(failed(ReasonDenyNotSet), fmt.Errorf("%w: deny is %s", ErrNotBoolean, ast.ValueName(members)))
		}
		deny = sortedCopy(deny)
	}

	switch {
	case denyRules && denyVals.Len() == 0:
		return fail(failed(ReasonDenyUndefined), fmt.Errorf("%w: it has rules, none gave a value (a complete deny rule needs `default deny := set()`)", ErrDenyUndefined))
	case allowVals.Len() == 0:
		d := failed(ReasonUndefined)
		if len(deny) > 0 {
			d.Reasons = append(append([]string(nil), deny...), ReasonUndefined)
			sort.Strings(d.Reasons)
		}
		d.Deny = deny
		return verdict{}, d, ErrUndefined
	case allowVals.Len() > 1 || denyVals.Len() > 1 || mfaVals.Len() > 1:
		return fail(failed(ReasonConflict), ErrConflict)
	}
	allow, ok := allowVals.Elem(0).Value.(ast.Boolean)
	if !ok {
		return fail(failed(ReasonNotBoolean), fmt.Errorf("%w: allow is %s", ErrNotBoolean, ast.ValueName(allowVals.Elem(0).Value)))
	}
	requireMFA := false
	if mfaVals.Len() == 1 {
		b, ok := mfaVals.Elem(0).Value.(ast.Boolean)
		if !ok {
			return fail(failed(ReasonMFANotBoolean), fmt.Errorf("%w: require_mfa is %s", ErrNotBoolean, ast.ValueName(mfaVals.Elem(0).Value)))
		}
		requireMFA = bool(b)
	}
	return verdict{allow: bool(allow), deny: deny, requireMFA: requireMFA}, Decision{}, nil
}

// reasonString renders one deny member: strings as written, anything else
// (an object with a message, a number) as compact JSON.
func reasonString(v ast.Value) string {
	if s, ok := v.(ast.String); ok {
		return string(s)
	}
	return v.String() // Rego/JSON text of objects, numbers, arrays
}
