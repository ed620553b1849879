package policy

import (
	"errors"
	"time"
)

// Outcome is what the proxy does with a request.
type Outcome string

// Outcomes of a decision.
const (
	OutcomeAllow  Outcome = "allow"
	OutcomeDeny   Outcome = "deny"
	OutcomeStepUp Outcome = "step_up" // allowed once the user authenticates with MFA
)

// Reason ids the engine itself adds to a refusal (the policy's own deny
// reasons are kept as written).
const (
	ReasonNotLoaded     = "policy.not_loaded"        // no policy compiled yet
	ReasonUndefined     = "policy.allow_undefined"   // allow has no value
	ReasonNotAllowed    = "policy.not_allowed"       // allow is false, no deny reason given
	ReasonNotBoolean    = "policy.allow_not_boolean" // allow is not true/false
	ReasonDenyNotSet    = "policy.deny_not_set"      // deny is not a set
	ReasonDenyUndefined = "policy.deny_undefined"    // deny has rules, none gave a value
	ReasonMFANotBoolean = "policy.require_mfa_not_boolean"
	ReasonConflict      = "policy.conflict"   // several values for one rule
	ReasonEvalError     = "policy.eval_error" // evaluation or builtin error
	ReasonTimeout       = "policy.timeout"    // slower than the configured timeout
	ReasonCanceled      = "policy.canceled"   // the request went away
	ReasonMFARequired   = "mfa.required"      // step-up: require_mfa without MFA
)

// Errors returned alongside a fail-closed decision; match with errors.Is.
var (
	ErrNotLoaded = errors.New("no policy loaded")
	ErrUndefined = errors.New("allow is undefined")
	// ErrDenyUndefined: the policy has rules for deny and none gave a
	// value (write `default deny := set()` under a complete deny rule).
	ErrDenyUndefined = errors.New("deny is undefined")
	ErrNotBoolean    = errors.New("non-boolean result")
	ErrConflict      = errors.New("conflicting results")
	ErrEval          = errors.New("policy evaluation failed")
	ErrTimeout       = errors.New("policy evaluation timed out")
)

// Decision is the verdict on one input.
type Decision struct {
	Outcome Outcome
	// Allow, Deny and RequireMFA are what the policy said (Deny sorted).
	// RequireMFA also holds when the route itself requires MFA or the
	// anomaly detector asks for a step-up (input.risk.step_up).
	Allow      bool
	Deny       []string
	RequireMFA bool
	// Reasons explains a refusal: the policy's deny reasons, or an engine
	// reason id (Reason*). Empty when allowed.
	Reasons  []string
	Revision string
	Duration time.Duration
	// Shadow is the shadow policy's verdict on the same input when it
	// disagrees with this one (policy.shadow_dir); nil otherwise. It is
	// never enforced: it goes into the decision's audit record.
	Shadow *ShadowVerdict
}

// ShadowVerdict is what the shadow policy said about a request.
type ShadowVerdict struct {
	Outcome  Outcome
	Reasons  []string
	Revision string
	Error    string // the reason id of the shadow's evaluation failure (policy.eval_error, policy.timeout, …), if any
}

// Allowed reports whether the request may go upstream now.
func (d Decision) Allowed() bool { return d.Outcome == OutcomeAllow }

// failed is a fail-closed decision.
func failed(reason string) Decision {
	return Decision{Outcome: OutcomeDeny, Reasons: []string{reason}}
}

// Combine applies the rule of DESIGN.md to what a policy said: allowed iff
// allow and no deny and (requireMFA ⇒ mfa); when only MFA is missing the
// outcome is a step-up. deny must already be sorted.
func Combine(allow bool, deny []string, requireMFA, mfa bool) Decision {
	d := Decision{Allow: allow, Deny: deny, RequireMFA: requireMFA}
	switch {
	case len(deny) > 0:
		d.Outcome, d.Reasons = OutcomeDeny, deny
	case !allow:
		d.Outcome, d.Reasons = OutcomeDeny, []string{ReasonNotAllowed}
	case requireMFA && !mfa:
		d.Outcome, d.Reasons = OutcomeStepUp, []string{ReasonMFARequired}
	default:
		d.Outcome = OutcomeAllow
	}
	return d
}
