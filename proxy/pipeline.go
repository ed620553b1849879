package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The request pipeline, one stage after another (ory/oathkeeper style):
// every stage may refuse, nothing is allowed by default, and each refusal
// carries a stable reason id that ends up in the access log, the metrics and
// (for decisions) the audit log.
//
//	normalise path → /.gatehouse/* → route → upgrade check → authenticate →
//	assess risk → authorise → MFA → record decision → guards → upstream →
//	record completion → observers → access log

// Outcomes of a request (access log "outcome", metric label).
const (
	OutcomeAllow        = "allow"
	OutcomeDeny         = "deny"
	OutcomeStepUp       = "step_up"
	OutcomeAuthenticate = "authenticate" // the authenticator answered (login redirect, 401)
	OutcomeBadRequest   = "bad_request"
	OutcomeNotFound     = "not_found"
	OutcomeGatehouse    = "gatehouse" // served by a /.gatehouse/* handler
	OutcomeUnavailable  = "unavailable"
	OutcomeUpstreamErr  = "upstream_error"
)

// Refusal reason ids.
const (
	ReasonBadMethod          = "bad_method"
	ReasonNoRoute            = "no_route"
	ReasonWebSocketsDisabled = "websockets_disabled"
	ReasonUpgradeRefused     = "upgrade_refused"
	ReasonAuthNotConfigured  = "auth_not_configured"
	ReasonAuthError          = "auth_error"
	ReasonUnauthenticated    = "unauthenticated"
	ReasonRiskBlocked        = "risk_blocked"
	ReasonNoPolicy           = "no_policy"
	ReasonPolicyError        = "policy_error"
	ReasonPolicyDeny         = "policy_deny" // used when the policy gave no reason of its own
	ReasonMFARequired        = "mfa_required"
	ReasonStepUpUnavailable  = "step_up_unavailable"
	ReasonAuditUnavailable   = "audit_unavailable"
	ReasonUpstream           = "upstream_failed"
	ReasonGuardCut           = "guard_cut"
)

// exchange is the bookkeeping of one request through the pipeline. The
// per-request objects (response writer, routed request, upstream flight,
// header values) live inside it so a request costs one allocation for them
// all instead of one each.
type exchange struct {
	start    time.Time
	id       string
	route    *Route
	req      *Request
	ident    Identity
	outcome  string
	reason   string
	upstream time.Duration
	// set by the upstream error handler
	upstreamErr error
	guardCut    bool

	w        responseWriter
	reqv     Request
	fl       flight
	peer     netip.Addr // the connection's peer address (remoteAddr), parsed once
	peerText string     // peer as text, when the connection had it ready
	clientIP string     // req.ClientIP as text, once computed
	ipDone   bool       // clientIP is set
	idHdr    [1]string  // X-Request-Id value (no slice allocated per request)
	upIDHdr  [1]string  // X-Gatehouse-Request-Id value sent upstream
	detached context.Context
	hwait    headerWait // the upstream header timeout's link
	body     bodyWatch  // the upstream request's body, for a request with one
}

// clientIPString returns the client address as text, formatted once.
func (x *exchange) clientIPString() string {
	if !x.ipDone {
		if x.peerText != "" && x.req != nil && x.req.ClientIP == x.peer {
			x.clientIP = x.peerText // the usual case: the client is the peer
		} else {
			x.clientIP = addrString(x.req)
		}
		x.ipDone = true
	}
	return x.clientIP
}

// background returns the client's context without its cancellation (for
// what must be written down even when the client is gone), made once.
func (x *exchange) background(r *http.Request) context.Context {
	if x.detached == nil {
		x.detached = context.WithoutCancel(r.Context())
	}
	return x.detached
}

type flightKey struct{}

// flight is what the upstream hooks need. It is itself the context of the
// upstream request (the guard context, answering Value(flightKey{}) with
// itself), which saves a context.WithValue per request.
type flight struct {
	context.Context // client context under every guard
	x               *exchange
	st              *state
	w               *responseWriter
	client          context.Context // the client's request context
	guard           context.Context // client context under every guard and the header timeout
}

// Value answers flightKey{} with the flight, everything else from the
// guard context.
func (f *flight) Value(key any) any {
	if _, ok := key.(flightKey); ok {
		return f
	}
	return f.Context.Value(key)
}

// ServeHTTP runs the pipeline for one request.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	x := &exchange{start: s.clock(), id: newRequestID()}
	x.w.ResponseWriter = rw
	w := &x.w
	x.idHdr[0] = x.id
	w.Header()["X-Request-Id"] = x.idHdr[:]
	defer s.finish(w, r, x)

	// 1. One normalisation, before anything else looks at the path.
	p, err := NormalizePath(r.URL.EscapedPath())
	if err == nil {
		err = CheckQuery(r.URL.RawQuery)
	}
	if err != nil {
		badPath(w, r, x, err)
		return
	}
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		x.outcome, x.reason = OutcomeBadRequest, ReasonBadMethod
		renderPage(w, r, pageData{Status: http.StatusBadRequest, Detail: "method " + r.Method + " is not supported", RequestID: x.id, Host: r.Host})
		return
	}

	// 2. Gatehouse's own endpoints, on every host.
	if p == "/.gatehouse" || strings.HasPrefix(p, "/.gatehouse/") {
		x.outcome = OutcomeGatehouse
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = p, ""
		h, pattern := s.wiring.mux.Handler(r2)
		if pattern == "" {
			x.outcome, x.reason = OutcomeNotFound, ReasonNoRoute
			renderPage(w, r, pageData{Status: http.StatusNotFound, Detail: "path", RequestID: x.id, Host: r.Host})
			return
		}
		h.ServeHTTP(w, r2)
		return
	}

	// 3. Route: this one decision drives policy and the upstream.
	rt := st.router.Match(r.Host, p)
	if rt == nil {
		x.outcome, x.reason = OutcomeNotFound, ReasonNoRoute
		renderPage(w, r, pageData{Status: http.StatusNotFound, RequestID: x.id, Host: r.Host})
		return
	}
	x.route = rt
	if cs := st.router.PathCharset(r.Host); cs != "" {
		if err := CheckPathCharset(p, cs); err != nil {
			badPath(w, r, x, err)
			return
		}
	}
	x.peer, x.peerText = peerOf(r)
	x.reqv = Request{ID: x.id, Route: rt.Info, Path: p, ClientIP: st.headers.clientIPOf(r, x.peer), Time: x.start, HTTP: r}
	req := &x.reqv
	x.req = req
	req.ClientIPText = x.clientIPString()

	if up := isUpgrade(r); up != "" {
		if !rt.WebSockets {
			s.refuse(w, r, x, http.StatusForbidden, ReasonWebSocketsDisabled, "")
			return
		}
		if !strings.EqualFold(up, "websocket") {
			s.refuse(w, r, x, http.StatusBadRequest, ReasonUpgradeRefused, "only WebSocket upgrades are allowed")
			return
		}
	}

	// 4. Authenticate (public routes: the anonymous identity).
	if !rt.Info.Public {
		if s.wiring.Auth == nil {
			s.refuse(w, r, x, http.StatusServiceUnavailable, ReasonAuthNotConfigured, "authentication not configured")
			return
		}
		id, handled, err := s.wiring.Auth.Authenticate(w, req)
		switch {
		case err != nil:
			s.log.Warn("authentication failed", zap.String("request_id", x.id), zap.Error(err))
			s.refuse(w, r, x, http.StatusServiceUnavailable, ReasonAuthError, "sign-in is unavailable")
			return
		case handled:
			x.outcome = OutcomeAuthenticate
			return
		case !id.Authenticated():
			s.refuse(w, r, x, http.StatusForbidden, ReasonUnauthenticated, "")
			return
		}
		x.ident = id
	}

	if !s.decide(w, r, x) {
		return
	}
	s.forward(w, r, x, st)
}

// decide runs risk, policy and MFA, records the decision, and reports
// whether the request may go upstream. On false it has answered the client.
func (s *Server) decide(w *responseWriter, r *http.Request, x *exchange) bool {
	ctx := r.Context()
	req, id := x.req, x.ident
	var risk Risk
	if s.wiring.Risk != nil {
		var err error
		risk, err = s.wiring.Risk.Assess(ctx, req, id)
		if err != nil {
			// The assessor expresses its fail-open/closed choice in risk.Blocked.
			s.log.Warn("risk assessment failed", zap.String("request_id", x.id), zap.Error(err), zap.Bool("blocked", risk.Blocked))
		}
	}
	ev := s.decisionEvent(x)
	if risk.Blocked {
		reason := ReasonRiskBlocked
		if risk.Reason != "" {
			reason += ":" + risk.Reason
		}
		ev.Outcome, ev.Reasons = OutcomeDeny, []string{reason}
		s.recordDenial(ctx, x, ev)
		s.refuse(w, r, x, http.StatusForbidden, reason, "")
		return false
	}

	var dec Decision
	var reasons []string
	switch {
	case s.wiring.Authz == nil:
		reasons = []string{ReasonNoPolicy}
	default:
		var err error
		dec, err = s.wiring.Authz.Decide(ctx, req, id, risk)
		defer dec.release() // every path below has recorded the decision by then
		switch {
		case err != nil:
			s.log.Warn("policy evaluation failed", zap.String("request_id", x.id), zap.Error(err))
			reasons = []string{ReasonPolicyError}
		case !dec.Allow || len(dec.Deny) > 0:
			reasons = dec.Deny
			if len(reasons) == 0 {
				reasons = []string{ReasonPolicyDeny}
			}
		}
	}
	ev.Revision, ev.Input, ev.InputJSON = dec.Revision, dec.Input, dec.InputJSON
	ev.Fields = shadowFields(dec.Shadow)
	if reasons != nil {
		ev.Outcome, ev.Reasons = OutcomeDeny, reasons
		s.recordDenial(ctx, x, ev)
		s.refuse(w, r, x, http.StatusForbidden, strings.Join(reasons, ","), "")
		return false
	}

	needMFA := dec.RequireMFA || risk.StepUp || x.route.Info.MFA == "required" && !x.route.Info.Public
	// An anomaly step-up asks again even of a session that has MFA: the
	// point is a fresh proof (authn clears it once auth_time is newer).
	if risk.StepUp || (needMFA && !id.MFA) {
		reason := ReasonMFARequired
		if risk.StepUp && risk.Reason != "" {
			reason += ":" + risk.Reason
		}
		ev.Outcome, ev.Reasons = OutcomeStepUp, []string{reason}
		if s.wiring.Auth == nil {
			ev.Outcome, ev.Reasons = OutcomeDeny, []string{ReasonStepUpUnavailable}
			s.recordDenial(ctx, x, ev)
			s.refuse(w, r, x, http.StatusForbidden, ReasonStepUpUnavailable, "")
			return false
		}
		s.recordDenial(ctx, x, ev)
		x.outcome, x.reason = OutcomeStepUp, reason
		s.wiring.Auth.StepUp(w, req, id, reason)
		return false
	}

	// Written down before the request goes anywhere: never served unaudited.
	ev.Outcome = OutcomeAllow
	if err := s.record(ctx, ev); err != nil {
		s.log.Error("decision not recorded: refusing", zap.String("request_id", x.id), zap.Error(err))
		s.refuse(w, r, x, http.StatusServiceUnavailable, ReasonAuditUnavailable, "the audit log cannot be written")
		return false
	}
	x.outcome = OutcomeAllow
	return true
}

// forward sends an allowed request upstream under the guards, then records
// its completion.
func (s *Server) forward(w *responseWriter, r *http.Request, x *exchange, st *state) {
	parent := r.Context()
	// One cancellable context for whatever may stop the request while it
	// is served: the guards (an anomaly block) and the upstream header
	// timeout each get its cancel func and make no context or timer.
	ctx, cut := context.WithCancelCause(parent)
	guards := s.wiring.guardList()
	var releases [2]func() // one guard (anomaly) is usual: no slice on the heap
	rel := releases[:0]
	for _, g := range guards {
		if release := g.Guard(x.req, x.ident, cut); release != nil {
			rel = append(rel, release)
		}
	}
	// One defer, outside any loop, so the compiler open-codes it: a defer
	// per guard made every defer here go through the runtime.
	defer endFlight(cut, rel)
	x.fl = flight{Context: ctx, x: x, st: st, w: w, client: parent, guard: ctx}
	r2 := r.WithContext(&x.fl)
	x.req.HTTP = r2
	t0 := time.Now()
	x.hwait = headerWait{cut: cut, timeout: st.upstreamHeader, hw: &s.headerWatch}
	if r.ContentLength == 0 {
		s.headerWatch.start(&x.hwait, t0)
	} else {
		x.body = bodyWatch{ReadCloser: r.Body, w: &x.hwait}
		r2.Body = &x.body
	}
	aborted := s.serveUpstream(w, r2)
	if r.ContentLength != 0 || x.hwait.mayBeListed() {
		s.headerWatch.done(&x.hwait) // no answer came (or a body may still start the wait)
	}
	x.upstream = time.Since(t0)
	if !aborted && !w.hijacked {
		// The client has its whole answer before the completion is
		// written down (net/http would otherwise hold the last bytes until
		// the handler returns).
		// With a declared Content-Length this is the one write net/http
		// would make at the end anyway, only earlier; unknown-length bodies
		// were flushed on every write by the reverse proxy, so this finds
		// nothing buffered and makes no write at all.
		flushWriter(w.ResponseWriter)
	}
	if ctx.Err() != nil && parent.Err() == nil && !errors.Is(context.Cause(ctx), errUpstreamHeaderTimeout) {
		x.guardCut = true
		if x.reason == "" {
			x.reason = ReasonGuardCut
		}
	}

	ev := s.baseEvent(x, EventCompletion)
	ev.Status, ev.Bytes, ev.Duration = w.status, w.sent(), s.clock().Sub(x.start)
	if x.reason != "" {
		ev.Fields = map[string]any{"reason": x.reason}
	}
	if aborted {
		ev.Fields = map[string]any{"reason": x.reason, "aborted": true}
	}
	if err := s.record(x.background(r), ev); err != nil {
		s.log.Error("completion not recorded", zap.String("request_id", x.id), zap.Error(err))
	}
	if aborted {
		// Cut the client connection, as the reverse proxy meant to.
		panic(http.ErrAbortHandler)
	}
}

// endFlight releases the guards of a request, last first, then cancels
// its context.
func endFlight(cut context.CancelCauseFunc, releases []func()) {
	for i := len(releases) - 1; i >= 0; i-- {
		releases[i]()
	}
	cut(nil)
}

// serveUpstream runs the reverse proxy. When a response body cannot be
// copied to the end, the reverse proxy aborts the handler with
// http.ErrAbortHandler; that is caught here so the completion is still
// recorded, and re-raised by forward afterwards.
func (s *Server) serveUpstream(w *responseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler { //nolint:errorlint // sentinel value identity is the contract
				panic(v)
			}
			aborted = true
		}
	}()
	s.rp.ServeHTTP(w, r)
	return false
}

// refuse answers with an error page and notes the outcome.
func (s *Server) refuse(w *responseWriter, r *http.Request, x *exchange, status int, reason, detail string) {
	if x.outcome == "" || x.outcome == OutcomeAllow {
		switch status {
		case http.StatusServiceUnavailable:
			x.outcome = OutcomeUnavailable
		case http.StatusBadRequest:
			x.outcome = OutcomeBadRequest
		default:
			x.outcome = OutcomeDeny
		}
	}
	x.reason = reason
	if w.wroteHeader {
		return
	}
	renderPage(w, r, pageData{Status: status, Detail: detail, RequestID: x.id, User: displayName(x.ident), Host: r.Host})
}

func (s *Server) baseEvent(x *exchange, typ string) Event {
	r := x.req.HTTP
	return Event{
		Type: typ, Time: s.clock(), RequestID: x.id, Route: x.route.Info.Name,
		Method: r.Method, Host: r.Host, Path: x.req.Path, ClientIP: x.clientIPString(),
		Subject: x.ident.Subject, Email: x.ident.Email, SessionID: x.ident.SessionID,
	}
}

func (s *Server) decisionEvent(x *exchange) Event { return s.baseEvent(x, EventDecision) }

// record writes an event; without a Recorder nothing can be written, which
// is an error (fail closed).
func (s *Server) record(ctx context.Context, ev Event) error {
	if s.wiring.Recorder == nil {
		s.metrics.auditFailures.Inc()
		return errNoRecorder
	}
	if err := s.wiring.Recorder.Record(ctx, ev); err != nil {
		s.metrics.auditFailures.Inc()
		return fmt.Errorf("record %s event: %w", ev.Type, err)
	}
	return nil
}

var errNoRecorder = errors.New("no audit recorder configured")

// recordDenial writes a refusal; failing to write it is logged, and the
// request stays refused.
func (s *Server) recordDenial(ctx context.Context, x *exchange, ev Event) {
	if err := s.record(ctx, ev); err != nil {
		s.log.Error("refusal not recorded", zap.String("request_id", x.id), zap.Error(err))
	}
}

// finish runs after every request: observers, metrics, access log.
func (s *Server) finish(w *responseWriter, r *http.Request, x *exchange) {
	if x.outcome == "" {
		x.outcome = OutcomeUnavailable
	}
	if w.status == 0 {
		w.status = http.StatusOK // nothing written: net/http sends 200
	}
	dur := s.clock().Sub(x.start)
	routeName := ""
	if x.route != nil {
		routeName = x.route.Info.Name
	}
	if x.req != nil && (x.outcome == OutcomeAllow || x.outcome == OutcomeDeny || x.outcome == OutcomeStepUp || x.outcome == OutcomeUpstreamErr) {
		c := Completion{Request: x.req, Identity: x.ident, Status: w.status, Bytes: w.sent(), Duration: dur}
		if x.outcome == OutcomeAllow && w.status < 300 {
			h := w.Header()
			c.Download = x.route.IsDownload(x.req.Path, firstValue(h, "Content-Type"), firstValue(h, "Content-Disposition"))
		}
		for _, o := range s.wiring.Observers {
			o.Observe(x.background(r), c)
		}
	}
	var rm *routeMetrics
	if x.route != nil {
		rm = x.route.metrics(s.metrics)
	} else {
		rm = s.metrics.forRoute("")
	}
	rm.observe(w.status, x.outcome, dur)
	if !s.state.Load().cfg.Log.Access {
		return
	}
	if ce := s.accessLog.Check(zap.InfoLevel, "request"); ce != nil {
		user := x.ident.Email
		if user == "" {
			user = x.ident.Subject
		}
		// The fields live in a pooled array: no 13-field slice allocated
		// per request (zap cores encode or copy them during Write).
		fa := accessFieldPool.Get().(*[13]zap.Field)
		*fa = [13]zap.Field{
			zap.String("request_id", x.id),
			zap.String("route", routeName),
			zap.String("user", user),
			zap.String("method", r.Method),
			zap.String("host", r.Host),
			zap.String("path", r.URL.EscapedPath()),
			zap.Int("status", w.status),
			zap.Int64("bytes", w.sent()),
			zap.Duration("duration", dur),
			zap.Duration("upstream_duration", x.upstream),
			zap.String("outcome", x.outcome),
			zap.String("reason", x.reason),
			zap.String("client_ip", x.clientIPString()),
		}
		ce.Write(fa[:]...)
		*fa = [13]zap.Field{}
		accessFieldPool.Put(fa)
	}
}

var accessFieldPool = sync.Pool{New: func() any { return new([13]zap.Field) }}

// badPath answers a path refused before routing or by its route: 400 with
// the reason in words, nothing audited (no identity, no decision).
func badPath(w *responseWriter, r *http.Request, x *exchange, err error) {
	why := "unknown"
	if pe := (*PathError)(nil); errors.As(err, &pe) {
		why = pe.Reason
	}
	x.outcome, x.reason = OutcomeBadRequest, "bad_path:"+why
	renderPage(w, r, pageData{Status: http.StatusBadRequest, Detail: pathReasonText[why], RequestID: x.id, Host: r.Host})
}

// firstValue is h.Get(key) for a key already in canonical form (no
// folding per request).
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// flushWriter sends what net/http holds buffered for the client.
func flushWriter(w http.ResponseWriter) {
	if f, ok := w.(interface{ FlushError() error }); ok {
		_ = f.FlushError()
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// shadowFields is a decision event's fields for a shadow verdict (nil
// without one): detail.shadow of its audit record.
func shadowFields(sv *ShadowVerdict) map[string]any {
	if sv == nil {
		return nil
	}
	sh := map[string]any{"outcome": sv.Outcome, "reasons": sv.Reasons, "revision": sv.Revision}
	if sv.Error != "" {
		sh["error"] = sv.Error
	}
	return map[string]any{"shadow": sh}
}

func addrString(req *Request) string {
	if req == nil || !req.ClientIP.IsValid() {
		return ""
	}
	return req.ClientIP.String()
}

var pathReasonText = map[string]string{
	PathNotAbsolute:    "the path does not start with /",
	PathBadEscape:      "the path has a malformed percent-escape",
	PathEncodedSlash:   "the path contains an encoded slash (%2F)",
	PathBackslash:      "the path contains a backslash",
	PathControl:        "the path contains a control character",
	PathInvalidUTF8:    "the path is not valid UTF-8",
	PathAboveRoot:      "the path climbs above the root with ..",
	PathParameter:      "the path contains a ; parameter",
	PathDoubleEncoding: "the path is percent-encoded twice",
	PathNotASCII:       "this application accepts only ASCII characters in paths",
	PathCompatChar:     "the path contains a look-alike character (such as a full-width letter) this application refuses",
	QueryAmbiguous:     "the query string is malformed (; separators or bad percent-escapes)",
}

// isUpgrade returns the Upgrade protocol a request asks for, or "".
func isUpgrade(r *http.Request) string {
	// Canonical keys, read directly: net/http's parser stores them so.
	if up := firstValue(r.Header, "Upgrade"); up != "" {
		return up
	}
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return "unknown"
			}
		}
	}
	return ""
}

// newRequestID returns 128 random bits in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// responseWriter counts what is sent to the client and remembers the final
// status. It unwraps for http.ResponseController (flush, hijack, deadlines).
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	// tunnel counts what a hijacked connection (a WebSocket) sent the
	// client: the reverse proxy copies to it from its own goroutines.
	tunnel atomic.Int64
}

// sent is what the client was sent: the response, and a tunnel's bytes.
func (w *responseWriter) sent() int64 { return w.bytes + w.tunnel.Load() }

// tunnelConn is a hijacked connection that counts what is written to it.
type tunnelConn struct {
	net.Conn
	n *atomic.Int64
}

func (c tunnelConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// CloseWrite passes a half-close on (the reverse proxy ends one direction
// of a tunnel with it and keeps the other open).
func (c tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes over the connection (WebSockets).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	w.hijacked = true
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusSwitchingProtocols, true
	}
	// What the upstream sends through the tunnel counts as sent to the
	// client (bytes_over rules, the completion record).
	return tunnelConn{Conn: c, n: &w.tunnel}, brw, nil
}

// Unwrap returns the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
