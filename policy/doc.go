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
// This package knows nothing of proxy, config, authn, audit or anomaly:
// proxy/wire_policy.go adapts those to [Options] and [Input].
package policy
