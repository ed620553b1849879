package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
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
}

// Set is one compiled, tested revision of a policy directory. It is
// immutable and safe for concurrent use.
type Set struct {
	dir      string
	revision string
	timeout  time.Duration
	pq       rego.PreparedEvalQuery
	files    []string
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
	regoOpts := []func(*rego.Rego){
		rego.Query(query),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Strict(true),
		rego.StrictBuiltinErrors(true),
		rego.Capabilities(Capabilities()),
		rego.Store(newStore(res.Documents)),
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
	return &Set{dir: dir, revision: snap.revision(), timeout: timeout, pq: pq, files: names}, nil
}

// Decide judges one input.
func (s *Set) Decide(ctx context.Context, in Input) (Decision, error) {
	return s.decide(ctx, in.Value(), in.Session.MFA, in.Route.MFA == "required")
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

// docFacts reads input.session.mfa and input.route.mfa from a document.
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

func (s *Set) decide(ctx context.Context, input ast.Value, mfa, routeMFA bool, extra ...rego.EvalOption) (Decision, error) {
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	opts := append(extra, rego.EvalParsedInput(input))
	rs, err := s.pq.Eval(tctx, opts...)
	timedOut := errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	var d Decision
	if err != nil || timedOut || ctx.Err() != nil { // nobody waits for a late verdict
		d, err = evalFailure(ctx, err, timedOut, s.timeout)
	} else {
		d, err = interpret(rs, mfa, routeMFA)
	}
	d.Revision = s.revision
	d.Duration = time.Since(start)
	return d, err
}

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

// interpret turns the query's bindings into a decision, failing closed on
// every shape it does not expect.
func interpret(rs rego.ResultSet, mfa, routeMFA bool) (Decision, error) {
	if len(rs) != 1 {
		return failed(ReasonUndefined), fmt.Errorf("%w: %d results", ErrUndefined, len(rs))
	}
	b := rs[0].Bindings
	allowVals, _ := b["allow"].([]any)
	denyVals, _ := b["deny"].([]any)
	mfaVals, _ := b["require_mfa"].([]any)

	// deny first: a deny reason is worth recording even when allow is broken.
	var deny []string
	if len(denyVals) == 1 {
		members, ok := denyVals[0].([]any) // sets arrive as arrays
		if !ok {
			return failed(ReasonDenyNotSet), fmt.Errorf("%w: deny is %T", ErrNotBoolean, denyVals[0])
		}
		deny = make([]string, 0, len(members))
		for _, m := range members {
			deny = append(deny, reasonString(m))
		}
		deny = sortedCopy(deny)
	}

	switch {
	case len(allowVals) == 0:
		d := failed(ReasonUndefined)
		if len(deny) > 0 {
			d.Reasons = append(append([]string(nil), deny...), ReasonUndefined)
			sort.Strings(d.Reasons)
		}
		d.Deny = deny
		return d, ErrUndefined
	case len(allowVals) > 1 || len(denyVals) > 1 || len(mfaVals) > 1:
		return failed(ReasonConflict), ErrConflict
	}
	allow, ok := allowVals[0].(bool)
	if !ok {
		return failed(ReasonNotBoolean), fmt.Errorf("%w: allow is %T", ErrNotBoolean, allowVals[0])
	}
	requireMFA := false
	if len(mfaVals) == 1 {
		if requireMFA, ok = mfaVals[0].(bool); !ok {
			return failed(ReasonMFANotBoolean), fmt.Errorf("%w: require_mfa is %T", ErrNotBoolean, mfaVals[0])
		}
	}
	return Combine(allow, deny, requireMFA || routeMFA, mfa), nil
}

// reasonString renders one deny member: strings as written, anything else
// (an object with a message, a number) as compact JSON.
func reasonString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimSpace(string(b))
}
