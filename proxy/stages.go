package proxy

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// This file declares the seams of the request pipeline. Each stage is a
// small interface owned by proxy (the consumer); the packages authn, policy,
// audit and anomaly know nothing of these types. Adapters in wire_<pkg>.go
// translate between a package's own types and these.
//
// A missing stage never waves a request through: the pipeline refuses what
// it cannot judge (fail closed).

// RouteInfo is what the stages may know of the route a request matched.
type RouteInfo struct {
	Name     string
	Host     string
	Prefix   string
	Public   bool   // no login needed; policy still judges, still audited
	MFA      string // "required" or "optional"
	Upstream string
}

// Identity is who sent a request and how strongly they proved it. The zero
// value is the anonymous caller.
type Identity struct {
	Subject   string
	Email     string
	Name      string
	Groups    []string
	Roles     []string
	SessionID string
	MFA       bool // amr/acr satisfied mfa settings and auth_time is within max_age
	AMR       []string
	ACR       string
	AuthTime  time.Time
}

// Authenticated reports whether the identity belongs to a signed-in user.
func (id Identity) Authenticated() bool { return id.Subject != "" }

// Request is one routed request, built once when it arrives. Every stage
// reads it; none of them re-parses the URL.
type Request struct {
	ID       string
	Route    RouteInfo
	Path     string // normalised; exactly what policy judges and the upstream receives
	ClientIP netip.Addr
	// ClientIPText is ClientIP as text ("" when unknown), formatted once
	// for the stages that key or record by it.
	ClientIPText string
	Time         time.Time
	HTTP         *http.Request
}

// Authenticator establishes the identity behind a request. When handled is
// true the authenticator has already answered the client (a redirect to the
// IdP, a 401 for an API client) and the pipeline stops. "Not signed in" on a
// public route is not an error: it returns the zero Identity.
type Authenticator interface {
	Authenticate(w http.ResponseWriter, req *Request) (id Identity, handled bool, err error)
	// StepUp answers the client so that it re-authenticates with MFA and
	// comes back to the same URL (redirect for browsers, RFC 9470 401 for
	// API clients).
	StepUp(w http.ResponseWriter, req *Request, id Identity, reason string)
}

// Risk is what the anomaly stage knows of the caller right now.
type Risk struct {
	Flags     []string
	Requests  int64 // in the longest configured window
	Downloads int64
	Bytes     int64
	Blocked   bool   // an active block applies: the request is refused
	StepUp    bool   // an anomaly action asks for MFA again
	Reason    string // why blocked / step-up
	Night     bool
}

// RiskAssessor reports the caller's current risk. An error means the state
// could not be read; the pipeline then follows the assessor's own
// fail-open/closed choice, expressed by the returned Risk (Blocked).
type RiskAssessor interface {
	Assess(ctx context.Context, req *Request, id Identity) (Risk, error)
}

// Decision is the authorisation verdict for one request.
type Decision struct {
	Allow      bool
	Deny       []string // reasons (for audit, not shown to the user)
	RequireMFA bool
	Revision   string        // policy revision (content hash)
	Duration   time.Duration // evaluation time
	// Input is the policy input document the decision was judged on, minus
	// secrets, kept so the decision can be replayed from the audit log.
	Input map[string]any
	// InputJSON is that document already encoded for the audit log
	// (policy.Input.AppendAuditJSON: exactly encoding/json's form of the
	// map, credential headers left out), so the request path builds no
	// map. The policy stage sets it instead of Input; the audit record
	// stores whichever is set. It is valid until the decision has been
	// recorded: the pipeline then reuses the buffer (see Recorder).
	InputJSON []byte
	// Shadow is the shadow policy's verdict when it disagrees (never
	// enforced; written into the decision's audit record as
	// detail.shadow).
	Shadow *ShadowVerdict
	// inputBuf is InputJSON's pooled buffer, given back by release.
	inputBuf *[]byte
}

// inputJSONPool recycles the buffers of decisions' encoded inputs (about
// 1 KB a request, the largest allocation of the policy stage).
var inputJSONPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledInput bounds the buffers kept: a request with huge headers does
// not pin its buffer in the pool.
const maxPooledInput = 16 << 10

// newInputJSON returns a pooled buffer for an encoded input, as the
// handle a Decision keeps and the buffer to append to.
func newInputJSON() (*[]byte, []byte) {
	bp := inputJSONPool.Get().(*[]byte)
	return bp, (*bp)[:0]
}

// release gives InputJSON's buffer back once the decision is recorded;
// d.InputJSON must not be used after it.
func (d *Decision) release() {
	if bp := d.inputBuf; bp != nil {
		d.inputBuf, d.InputJSON = nil, nil
		if cap(*bp) <= maxPooledInput {
			inputJSONPool.Put(bp)
		}
	}
}

// ShadowVerdict is a draft policy's different verdict on a request.
type ShadowVerdict struct {
	Outcome  string
	Reasons  []string
	Revision string
	Error    string // a reason id, never an error's text (it may quote the input)
}

// Authorizer judges a request. Any error denies.
type Authorizer interface {
	Decide(ctx context.Context, req *Request, id Identity, risk Risk) (Decision, error)
}

// Event kinds recorded by the pipeline (the audit package defines the full
// set of record types; these are the ones proxy emits itself).
const (
	EventDecision   = "decision"
	EventCompletion = "completion"
	EventReload     = "config_reload"
)

// Event is one thing that must be written down. Record returns only once the
// event is as durable as the audit settings promise; an error means it was
// not written and the request must not go on (503).
type Event struct {
	Type      string
	Time      time.Time
	RequestID string
	Route     string
	Method    string
	Host      string
	Path      string
	ClientIP  string
	Subject   string
	Email     string
	SessionID string
	// decision
	Outcome  string // allow | deny | step_up
	Reasons  []string
	Revision string
	Input    map[string]any
	// InputJSON is Decision.InputJSON (Input's encoded form; one or the other).
	InputJSON []byte
	// completion
	Status   int
	Bytes    int64
	Duration time.Duration
	// anything else (reload result, error text)
	Fields map[string]any
}

// Recorder writes events to the audit log. Record must not keep
// ev.InputJSON (or a slice of it) after it returns: the pipeline reuses
// that buffer for a later request.
type Recorder interface {
	Record(ctx context.Context, ev Event) error
}

// Completion describes a finished request, for the anomaly stage.
type Completion struct {
	Request  *Request
	Identity Identity
	Status   int
	Bytes    int64 // bytes actually sent to the client
	Download bool  // Content-Disposition: attachment or a route's downloads: patterns
	Duration time.Duration
}

// Observer learns of every finished request (anomaly counting).
type Observer interface {
	Observe(ctx context.Context, c Completion)
}
