// Package policy is Gatehouse's authorisation engine: Rego policies,
// evaluated by the embedded OPA library on every request.
//
// # Design
//
// A policy directory is read into memory in one pass (every *.rego, and every
// data.json / data.yaml / data.yml, mounted under data.<sub>.<dir> like
// `opa eval -d DIR`), parsed as Rego v1, compiled in strict mode and prepared
// once for package gatehouse.authz. The result is a [Set]: immutable, named by
// a revision (a SHA-256 over the served files), safe for concurrent use.
// The set's own *_test.rego files are run with OPA's tester before the set is
// accepted; they are never served.
//
// An [Engine] holds the current Set behind an atomic pointer. Each request
// loads the pointer once, so a request is judged by exactly one revision even
// while a reload swaps it. Reloads come from fsnotify (debounced) or an
// explicit [Engine.Reload]; a set that fails to parse, compile or pass its
// tests is refused and the last good set keeps serving. An optional shadow
// set (a draft) is evaluated beside the real one and disagreements are
// reported, never enforced.
//
// # The rule
//
// The package is evaluated once per request and allow, deny and
// require_mfa are read. A request is allowed iff allow is true, deny is
// empty, and require_mfa implies input.session.mfa; when only MFA is
// missing the outcome is a step-up. Anything the engine cannot judge
// (undefined allow, an evaluation or builtin error, a non-boolean allow, a
// deny that is not a set, a timeout, no policy loaded) is a deny carrying a
// reason id (see the Reason* constants), never an allow.
//
// The input document ([Input]) is built as an OPA ast.Value directly, with
// no JSON round trip on the request path; docs/policy.md documents every
// field and docs/policy-input.schema.json is its JSON Schema.
//
// # The decision memo
//
// Evaluating the cookbook costs OPA's interpreter about 0.1ms; most
// requests repeat a verdict already reached (same user, route, path). Each
// revision therefore keeps a bounded memo of verdicts (allow, deny,
// the policy's require_mfa), keyed by exactly what the revision can read.
//
// At compile time deps.go walks the compiled modules (the form OPA
// evaluates: imports resolved, every rule head and body, else branches,
// functions, comprehensions, every and with) and collects every reference
// rooted at input, as its longest constant-string prefix: input.user.groups[i]
// depends on the whole of input.user.groups. The compiler binds some uses
// to generated locals (__local1__ = input; object.get(__local1__, ...)); a
// local stands for its input path wherever it occurs. object.get on an
// object every input has, with a constant key, depends on that member
// only (present or absent). The memo is off for the revision when the
// policy reads input whole (count(input), walk(input), f(input)), uses
// `with input`, or calls a non-deterministic builtin (time.now_ns,
// rand.intn, uuid.rfc4122, io.jwt.decode_verify, ...).
//
// Soundness: OPA's evaluation is a function of the modules, data and input
// (data is fixed per revision: the store is built at compile time and
// never written; non-deterministic builtins are excluded). The only part
// of input that reaches the evaluation is what those references yield, and
// a reference's value is determined by the subtree at its constant prefix.
// The key is a canonical, self-delimiting encoding of the values at those
// paths, read straight from the typed [Input] (a schema mirrors
// [Input.Value]; a test keeps them equal), with map members encoded as
// present-or-absent, so equal keys mean equal values at every path the
// policy can read, hence the same verdict. Keys are compared in full (Go
// map keys), never by hash alone. The request's own MFA facts (the
// session's mfa, the route's mfa, risk.step_up) are applied to the verdict
// per request by [Combine], so they need not be in the key unless the
// policy reads them. Only successful evaluations are kept: errors and
// timeouts are judged again. A field that changes per request and is read
// (input.time.unix, risk counters) makes every key new: correct by
// construction, just no hits.
//
// Each revision has its own memo (DefaultMemoSize entries, random eviction
// when full, keys over 4 KiB are not memoised), dropped with the revision
// on reload. [Options.NoDecisionMemo] turns it off; [Set.Memo] shows the
// paths and why a revision has none. Revision and Duration are fresh on
// every decision, and the proxy still audits every decision with its
// full input.
//
// This package knows nothing of proxy, config, authn, audit or anomaly:
// proxy/wire_policy.go adapts those to [Options] and [Input].
package policy
