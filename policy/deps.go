package policy

import (
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// deps.go finds, at compile time, exactly which parts of the input document
// a policy revision can read: the decision memo (memo.go) is keyed by the
// values at those paths.

// inputDeps is what a compiled revision can read of its input.
type inputDeps struct {
	// paths are the input paths read (constant string prefixes, minimal:
	// no path is a prefix of another), sorted.
	paths [][]string
	// off says why no memo is possible for this revision ("" when one is).
	off string
}

// timeDependent are builtins whose result depends on the clock although
// OPA does not mark them non-deterministic (they verify against now).
var timeDependent = map[string]bool{
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
	"io.jwt.decode_verify":                                   true,
	"time.now_ns":                                            true,
}

// nondeterministic reports whether a builtin's result can differ between
// two calls with equal arguments.
func nondeterministic(name string) bool {
	if timeDependent[name] {
		return true
	}
	b, ok := ast.BuiltinMap[name]
	return ok && b.Nondeterministic
}

// analyseInputs walks compiled modules (every rule head, body, else branch,
// with modifier, comprehension and function) and collects the references
// rooted at input. A reference contributes its longest constant-string
// prefix: input.user.groups[i] depends on all of input.user.groups. The
// compiler binds some uses of input to generated locals first
// (__local1__ = input; object.get(__local1__, ...)); such a local stands
// for its input path wherever it occurs. The whole input, a with modifier
// on input, or a non-deterministic builtin make the revision unmemoisable.
func analyseInputs(mods map[string]*ast.Module) inputDeps {
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	slices.Sort(names)
	a := &analysis{}
	for _, n := range names {
		a.module(mods[n])
	}
	if a.off != "" {
		return inputDeps{off: a.off}
	}
	for i, p := range a.paths {
		a.paths[i] = inputSchema.clip(p)
	}
	return inputDeps{paths: minimise(a.paths)}
}

type analysis struct {
	paths [][]string
	off   string
	// per module: generated locals bound to an input path, their uses,
	// and the expressions that bind them
	alias map[ast.Var][]string
	uses  map[ast.Var]int
	defs  map[*ast.Expr]bool
}

func (a *analysis) disable(why string) {
	if a.off == "" {
		a.off = why
	}
}

func (a *analysis) read(path []string) {
	if len(path) == 0 {
		a.disable("reads the whole input document")
		return
	}
	a.paths = append(a.paths, path)
}

func (a *analysis) module(m *ast.Module) {
	a.alias, a.uses, a.defs = map[ast.Var][]string{}, map[ast.Var]int{}, map[*ast.Expr]bool{}
	ast.NewGenericVisitor(func(x any) bool {
		if e, ok := x.(*ast.Expr); ok {
			a.aliasDef(e)
		}
		return false
	}).Walk(m)
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool { return a.visit(vis, x) })
	vis.Walk(m)
	// A binding never used still requires its path to be defined.
	for v, p := range a.alias {
		if a.uses[v] == 0 {
			a.read(p)
		}
	}
}

// aliasDef records `__localN__ = input.a.b` (constant path) bindings.
func (a *analysis) aliasDef(e *ast.Expr) {
	if !e.IsEquality() || e.Negated || len(e.With) > 0 {
		return
	}
	l, r := e.Operand(0), e.Operand(1)
	for range 2 {
		v, vok := l.Value.(ast.Var)
		ref, rok := r.Value.(ast.Ref)
		if vok && rok && v.IsGenerated() && ref[0].Equal(ast.InputRootDocument) {
			path := constPrefix(ref[1:])
			if len(path) == len(ref)-1 {
				if prev, seen := a.alias[v]; seen && !slices.Equal(prev, path) {
					a.disable("local " + string(v) + " bound to two input paths")
				}
				a.alias[v] = path
				a.defs[e] = true
				return
			}
		}
		l, r = r, l
	}
}

// base is the input path a term stands for when it is a constant input ref,
// an alias local, or a constant ref rooted at one.
func (a *analysis) base(t *ast.Term) ([]string, bool) {
	switch x := t.Value.(type) {
	case ast.Var:
		p, ok := a.alias[x]
		if ok {
			a.uses[x]++
		}
		return p, ok
	case ast.Ref:
		var root []string
		switch h := x[0].Value.(type) {
		case ast.Var:
			if h.Equal(ast.InputRootDocument.Value) {
				break
			}
			p, ok := a.alias[h]
			if !ok {
				return nil, false
			}
			a.uses[h]++
			root = p
		default:
			return nil, false
		}
		tail := constPrefix(x[1:])
		if len(tail) != len(x)-1 {
			return nil, false
		}
		return append(slices.Clip(root), tail...), true
	}
	return nil, false
}

// visit handles one node; true means its children were handled here.
func (a *analysis) visit(vis *ast.GenericVisitor, x any) bool {
	if a.off != "" {
		return true
	}
	switch x := x.(type) {
	case *ast.Import, *ast.Annotations, *ast.Comment:
		// Imports are resolved into the rules by the compiler: the
		// rules' refs are what is evaluated.
		return true
	case *ast.Expr:
		if a.defs[x] {
			return true // accounted for at the alias's uses
		}
		for _, w := range x.With {
			if isInputRef(w.Target) {
				a.disable("with input: " + w.String())
				return true
			}
		}
		if x.IsCall() {
			terms := x.Terms.([]*ast.Term)
			return a.call(vis, terms[0], terms[1:], x.With)
		}
	case ast.Call:
		return a.call(vis, x[0], x[1:], nil)
	case ast.Ref:
		if name := x.String(); nondeterministic(name) {
			a.disable("calls non-deterministic " + name)
			return true
		}
		h, ok := x[0].Value.(ast.Var)
		if !ok {
			return false
		}
		var root []string
		switch {
		case h.Equal(ast.InputRootDocument.Value):
		case a.isAlias(h):
			root = a.alias[h]
			a.uses[h]++
		default:
			return false
		}
		a.read(append(slices.Clip(root), constPrefix(x[1:])...))
		for _, t := range x[1:] {
			vis.Walk(t)
		}
		return true
	case ast.Var:
		if x.Equal(ast.InputRootDocument.Value) {
			a.disable("uses input as a whole")
			return true
		}
		if a.isAlias(x) {
			a.uses[x]++
			a.read(a.alias[x])
			return true
		}
	}
	return false
}

func (a *analysis) isAlias(v ast.Var) bool {
	_, ok := a.alias[v]
	return ok
}

// call handles a builtin or function call. object.get on an input path
// that every input has (an object of the document) with a constant key
// reads only the value under that key, present or not.
func (a *analysis) call(vis *ast.GenericVisitor, op *ast.Term, args []*ast.Term, with []*ast.With) bool {
	name := op.String()
	if nondeterministic(name) {
		a.disable("calls non-deterministic " + name)
		return true
	}
	if name != "object.get" || len(args) < 2 {
		return false
	}
	var key []string
	switch k := args[1].Value.(type) {
	case ast.String:
		key = []string{string(k)}
	case *ast.Array:
		key = constPrefix(termsOf(k))
	default:
		return false // a computed key: the whole object is a dependency
	}
	uses := maps.Clone(a.uses)
	base, ok := a.base(args[0])
	if !ok || !inputSchema.alwaysDefined(base) {
		a.uses = uses // base counted nothing: the normal walk will
		return false
	}
	a.read(append(slices.Clip(base), key...))
	for _, t := range args[1:] {
		vis.Walk(t)
	}
	for _, w := range with {
		vis.Walk(w)
	}
	return true
}

func termsOf(a *ast.Array) []*ast.Term {
	out := make([]*ast.Term, 0, a.Len())
	a.Foreach(func(t *ast.Term) { out = append(out, t) })
	return out
}

// constPrefix is the longest run of constant strings at the start of ts.
func constPrefix(ts []*ast.Term) []string {
	var out []string
	for _, t := range ts {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		out = append(out, string(s))
	}
	return out
}

func isInputRef(t *ast.Term) bool {
	r, ok := t.Value.(ast.Ref)
	return ok && r[0].Equal(ast.InputRootDocument)
}

// minimise sorts paths and drops duplicates and paths under another one
// (input.user covers input.user.groups).
func minimise(paths [][]string) [][]string {
	slices.SortFunc(paths, func(a, b []string) int { return slices.Compare(a, b) })
	var out [][]string
	for _, p := range paths {
		if len(out) > 0 && hasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func hasPrefix(p, prefix []string) bool {
	return len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}

// pathString renders a path like input.request.headers["x-y"].
func pathString(p []string) string {
	r := ast.Ref{ast.InputRootDocument}
	for _, s := range p {
		r = append(r, ast.StringTerm(s))
	}
	return r.String()
}
