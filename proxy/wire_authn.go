package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/config"
)

// wire_authn.go plugs authn into the pipeline: the Authenticator (sessions,
// login redirects, step-up), the /.gatehouse/* handlers on every host, the
// identity headers and signed assertion upstream, the session revocation
// admin API, /readyz "authn" (IdP discovery, Redis), and audit events for
// logins, logouts, step-ups and revocations.

func init() {
	RegisterBuilder("authn", OrderAuthn, buildAuthn)
	RegisterChecker("authn", checkAuthn)
}

// authnStage adapts *authn.Authn to Authenticator and UpstreamHeaderer. The
// Authn is swapped whole on reload; the store (revocations) is kept.
type authnStage struct {
	a     atomic.Pointer[authn.Authn]
	w     *Wiring
	log   *zap.Logger
	store authn.Store
	rdb   redis.UniversalClient
	// replay is set in memory-store mode with an audit log: revocations
	// replayed from it at start.
	replay *revocationReplay
	// storeKey says which settings built store; a reload changing them is refused.
	storeKey string
	events   *prometheus.CounterVec
}

func buildAuthn(ctx context.Context, w *Wiring) error {
	cfg := w.Config
	if cfg.OIDC.Issuer == "" {
		// No login configured: non-public routes are refused by the pipeline.
		return nil
	}
	st := &authnStage{w: w, log: w.Logger}
	if st.log == nil {
		st.log = zap.NewNop()
	}
	st.log = st.log.Named("authn")
	st.storeKey = authnStoreKey(cfg)
	st.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_authn_events_total",
		Help: "Authentication events by type (login, login_failure, logout, step_up, session_revoked) and outcome.",
	}, []string{"type", "outcome"})
	if w.Metrics != nil {
		if err := w.Metrics.Register(st.events); err != nil {
			return fmt.Errorf("register authn metrics: %w", err)
		}
	}
	if redisNeeded(cfg) {
		st.rdb = newAnomalyRedis(cfg.Redis)
		st.store = authn.NewRedisStore(st.rdb, "")
	} else {
		clock := w.Clock
		if clock == nil {
			clock = time.Now
		}
		ms := authn.NewMemoryStoreClock(clock) // the clock authn and the replay use
		st.store = ms
		if cfg.Audit.Dir != "" {
			// Single instance: revocations survive a restart by replay
			// from the audit log (wire_authn_replay.go).
			st.replay = newRevocationReplay(ms, cfg.Audit.Dir, cfg.Session.Lifetime.D(), clock, st.log)
			st.store = st.replay
		} else {
			st.log.Warn("no audit.dir: session revocations (logout, sessions revoke) are lost at restart")
		}
	}
	a, err := st.build(cfg)
	if err != nil {
		if st.rdb != nil {
			_ = st.rdb.Close()
		}
		return err
	}
	st.a.Store(a)
	w.Auth = st
	w.AddUpstreamHeaderer(st)
	for pattern := range a.Routes() {
		w.Handle(pattern, st.handler(pattern))
	}
	w.HandleAdmin("POST /api/v1/sessions/revoke", http.HandlerFunc(st.handleRevoke))
	w.AddReadiness("authn", func(ctx context.Context) error {
		if st.replay != nil {
			if err := st.replay.ready(ctx); err != nil {
				return err
			}
		}
		return st.a.Load().Ready(ctx)
	})
	w.OnReloadPrepare(st.prepareReload)
	stopWatch := func() {}
	if st.replay != nil {
		// Before the server serves: no request is judged without the
		// revocations of the last lifetime. A failure is retried.
		if err := st.replay.run(ctx); err != nil {
			st.log.Error("revocation replay failed; requests needing a session are refused until it succeeds", zap.Error(err))
			rctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				retryEvery(rctx, 5*time.Second, st.log, "revocation replay", st.replay.run)
			}()
			stopWatch = func() { cancel(); <-done }
		}
	}
	if rs, ok := st.store.(*authn.RedisStore); ok {
		// Revocation checks answered from a local view kept current in the
		// background (per request again whenever it falls behind).
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); rs.Watch(wctx, authn.WatchOptions{}) }()
		stopWatch = func() { cancel(); <-done }
		if w.Metrics != nil {
			if err := registerRevocationViewMetrics(w.Metrics, rs); err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
	w.OnClose(func(context.Context) error {
		stopWatch()
		if st.rdb != nil {
			return st.rdb.Close()
		}
		return nil
	})
	return nil
}

// registerRevocationViewMetrics exports the state of the local revocation
// view: when it is not fresh, every request asks Redis again.
func registerRevocationViewMetrics(reg prometheus.Registerer, rs *authn.RedisStore) error {
	fresh := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_authn_revocation_view_fresh",
		Help: "1 while revocation checks are answered from the local view kept current from Redis; 0 while each request asks Redis.",
	}, func() float64 {
		if rs.ViewStats().Fresh {
			return 1
		}
		return 0
	})
	pollErrs := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatehouse_authn_revocation_poll_errors_total",
		Help: "Failed polls of the Redis revocation generation.",
	}, func() float64 { return float64(rs.ViewStats().PollErrors) })
	fallbacks := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatehouse_authn_revocation_redis_checks_total",
		Help: "Revocation checks sent to Redis because the local view was not fresh.",
	}, func() float64 { return float64(rs.ViewStats().Fallbacks) })
	for _, c := range []prometheus.Collector{fresh, pollErrs, fallbacks} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register authn revocation metrics: %w", err)
		}
	}
	return nil
}

// redisNeeded: sessions in Redis, or Redis configured at all (then the
// revocation list is shared by replicas in cookie mode too).
func redisNeeded(cfg *config.Config) bool {
	r := cfg.Redis
	return cfg.Session.Store == "redis" || r.Addr != "" || len(r.SentinelAddrs) > 0 || len(r.ClusterAddrs) > 0
}

func authnStoreKey(cfg *config.Config) string {
	if !redisNeeded(cfg) {
		return "memory"
	}
	r := cfg.Redis
	return fmt.Sprint("redis", r.Addr, r.SentinelAddrs, r.MasterName, r.ClusterAddrs, r.DB, r.TLS, cfg.Session.Store)
}

func (st *authnStage) build(cfg *config.Config) (*authn.Authn, error) {
	o, err := authnOptions(cfg)
	if err != nil {
		return nil, err
	}
	o.Store = st.store
	o.ServerSide = cfg.Session.Store == "redis"
	o.Clock = st.w.Clock
	o.Logger = slog.New(zapslog.NewHandler(st.log.Core()))
	o.Events = st.record
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	// The compiled routes tell forward-auth's observations which paths
	// are downloads.
	router, err := NewRouter(cfg.Routes)
	if err != nil {
		return nil, err
	}
	o.Authorize = func(ctx context.Context, r *http.Request, route authn.Route, aid authn.Identity) (authn.Verdict, error) {
		return st.authorize(ctx, r, route, aid, trusted, router)
	}
	hp, err := newHeaderPolicy(cfg)
	if err != nil {
		return nil, err
	}
	o.ClientIP = func(r *http.Request) string {
		if a := hp.clientIP(r); a.IsValid() {
			return a.String()
		}
		return ""
	}
	o.ForwardAuthTrusted = func(r *http.Request) bool {
		a := remoteAddr(r)
		if !a.IsValid() {
			return false
		}
		if a.IsLoopback() {
			return true
		}
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	routes := cfg.Routes
	// Forward-auth judges the path the upstream will resolve, refused
	// when ambiguous, as the pipeline does.
	o.NormalizePath = NormalizePath
	o.RouteFor = func(host, path string) (authn.Route, bool) {
		rt, ok := matchConfigRoute(routes, host, path)
		if !ok {
			return authn.Route{}, false
		}
		return authnRoute(routeInfoOf(rt)), true
	}
	a, err := authn.New(o)
	if err != nil {
		return nil, fmt.Errorf("authn: %w", err)
	}
	return a, nil
}

// authnOptions maps the config onto authn.Options (secrets read from files).
func authnOptions(cfg *config.Config) (authn.Options, error) {
	o := authn.Options{
		Issuer:       cfg.OIDC.Issuer,
		ClientID:     cfg.OIDC.ClientID,
		ClientSecret: cfg.OIDC.ClientSecret.Reveal(),
		Scopes:       cfg.OIDC.Scopes,
		AllowedAlgs:  cfg.OIDC.AllowedAlgs,
		ExternalURL:  cfg.ExternalURL,
		Claims: authn.ClaimNames{
			Groups: cfg.OIDC.Claims["groups"], Roles: cfg.OIDC.Claims["roles"],
			Email: cfg.OIDC.Claims["email"], Name: cfg.OIDC.Claims["name"],
		},
		MFA: authn.MFAOptions{
			AMRAny: cfg.MFA.AMRAny, ACRAny: cfg.MFA.ACRAny, StepUpACR: cfg.MFA.StepUpACR, MaxAge: cfg.MFA.MaxAge.D(),
		},
		Session: authn.SessionOptions{
			Cookie: cfg.Session.Cookie, Lifetime: cfg.Session.Lifetime.D(), IdleTimeout: cfg.Session.IdleTimeout.D(),
		},
		Headers: authn.HeaderNames{
			User: cfg.Identity.Headers.User, Email: cfg.Identity.Headers.Email,
			Groups: cfg.Identity.Headers.Groups, Roles: cfg.Identity.Headers.Roles,
		},
		Assertion: authn.AssertionOptions{Header: cfg.Identity.Assertion.Header, TTL: cfg.Identity.Assertion.TTL.D()},
	}
	// Route hosts are written without a port; clients reach them on the
	// public port of external_url (e.g. :8443 in the demo), so both forms
	// are served return targets.
	var port string
	if u, err := url.Parse(cfg.ExternalURL); err == nil {
		port = u.Port()
	}
	for _, r := range cfg.Routes {
		h := strings.ToLower(r.Host)
		o.Hosts = append(o.Hosts, h)
		if port != "" {
			o.Hosts = append(o.Hosts, net.JoinHostPort(h, port))
		}
	}
	for i, f := range cfg.Session.SecretFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, &FieldError{Field: fmt.Sprintf("session.secret_files[%d]", i), Msg: err.Error(), Err: err}
		}
		k := []byte(strings.TrimSpace(string(b)))
		if len(k) < 32 {
			return o, &FieldError{Field: fmt.Sprintf("session.secret_files[%d]", i),
				Msg: fmt.Sprintf("%s holds %d bytes, want at least 32 (gatehouse keys generate)", f, len(k)), Err: authn.ErrConfig}
		}
		o.Session.Keys = append(o.Session.Keys, k)
	}
	if f := cfg.Identity.Assertion.KeyFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, &FieldError{Field: "identity.assertion.key_file", Msg: err.Error(), Err: err}
		}
		if o.Assertion.Key, err = authn.ParseAssertionKey(b); err != nil {
			return o, &FieldError{Field: "identity.assertion.key_file", Msg: err.Error(), Err: err}
		}
	}
	client := &http.Client{Timeout: 15 * time.Second}
	if ca := cfg.OIDC.CARoot; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return o, &FieldError{Field: "oidc.ca_root", Msg: err.Error(), Err: err}
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return o, &FieldError{Field: "oidc.ca_root", Msg: "no PEM certificate in " + ca, Err: authn.ErrConfig}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.Transport = tr
	}
	o.HTTPClient = client
	return o, nil
}

// checkAuthn validates what only authn can judge (keys, assertion key,
// options) without contacting the IdP.
func checkAuthn(_ context.Context, cfg *config.Config) error {
	if cfg.OIDC.Issuer == "" {
		return nil
	}
	o, err := authnOptions(cfg)
	if err != nil {
		return err
	}
	_, err = authn.New(o)
	return err
}

func (st *authnStage) prepareReload(_ context.Context, cfg *config.Config) (func(), error) {
	if cfg.OIDC.Issuer == "" {
		return nil, fmt.Errorf("authn: oidc.issuer removed; restart to turn login off")
	}
	if authnStoreKey(cfg) != st.storeKey {
		return nil, fmt.Errorf("authn: session store or redis settings changed; restart to apply")
	}
	if st.a.Load() == nil {
		return nil, errors.New("authn: not built")
	}
	a, err := st.build(cfg)
	if err != nil {
		return nil, err
	}
	return func() { st.a.Store(a) }, nil
}

func (st *authnStage) handler(pattern string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := st.a.Load().Routes()[pattern]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func authnRoute(ri RouteInfo) authn.Route {
	return authn.Route{Name: ri.Name, Host: ri.Host, Public: ri.Public, MFARequired: ri.MFA == "required", DeferStepUp: true}
}

func routeInfoOf(r config.Route) RouteInfo {
	return RouteInfo{Name: r.Name, Host: strings.ToLower(r.Host), Prefix: r.PathPrefix, Public: r.Public, MFA: r.MFA, Upstream: r.Upstream}
}

// forwardAuthClientIP is the client a forward-auth request is about. The
// caller (nginx) is trusted, so X-Forwarded-For is walked from the right
// past trusted proxies (and loopback), as the pipeline does: with nginx's
// $proxy_add_x_forwarded_for the last hop is the client nginx saw, whatever
// the client wrote before it. X-Real-IP is not believed: nginx passes a
// client's own copy on unless its config overwrites it.
func forwardAuthClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	isTrusted := func(a netip.Addr) bool {
		if a.IsLoopback() {
			return true
		}
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	// No chain, or an unreadable one: the client is unknown (the caller's
	// own address would stand for every client).
	return chainClient(forwardedFor(r.Header), isTrusted)
}

// matchConfigRoute finds the route for host and path: same host, longest
// matching path prefix.
func matchConfigRoute(routes []config.Route, host, path string) (config.Route, bool) {
	var best config.Route
	found := false
	bare := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		bare = h
	}
	for _, r := range routes {
		if !strings.EqualFold(r.Host, host) && !strings.EqualFold(r.Host, bare) {
			continue
		}
		p := r.PathPrefix
		if p != "" && p != "/" && path != p && !strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			continue
		}
		if !found || len(p) > len(best.PathPrefix) {
			best, found = r, true
		}
	}
	return best, found
}

func toAuthnIdentity(id Identity) authn.Identity {
	return authn.Identity{Subject: id.Subject, Email: id.Email, Name: id.Name, Groups: id.Groups, Roles: id.Roles,
		SessionID: id.SessionID, MFA: id.MFA, AMR: id.AMR, ACR: id.ACR, AuthTime: id.AuthTime}
}

func fromAuthnIdentity(id authn.Identity) Identity {
	return Identity{Subject: id.Subject, Email: id.Email, Name: id.Name, Groups: id.Groups, Roles: id.Roles,
		SessionID: id.SessionID, MFA: id.MFA, AMR: id.AMR, ACR: id.ACR, AuthTime: id.AuthTime}
}

// Authenticate implements Authenticator.
func (st *authnStage) Authenticate(w http.ResponseWriter, req *Request) (Identity, bool, error) {
	id, handled, err := st.a.Load().Authenticate(w, req.HTTP, authnRoute(req.Route))
	if err != nil {
		return Identity{}, false, err
	}
	return fromAuthnIdentity(id), handled, nil
}

// StepUp implements Authenticator.
func (st *authnStage) StepUp(w http.ResponseWriter, req *Request, id Identity, reason string) {
	st.a.Load().StepUp(w, req.HTTP, authnRoute(req.Route), toAuthnIdentity(id), reason)
}

// UpstreamHeaders implements UpstreamHeaderer: identity headers, the
// signed assertion (audience: the route name), and no Gatehouse cookies.
func (st *authnStage) UpstreamHeaders(req *Request, id Identity, h http.Header) {
	a := st.a.Load()
	a.StripCookies(h)
	if err := a.UpstreamHeaders(req.Route.Name, toAuthnIdentity(id), h); err != nil {
		st.log.Error("upstream identity headers", zap.String("request_id", req.ID), zap.Error(err))
	}
}

// record sends an authn event to the audit log.
func (st *authnStage) record(ctx context.Context, ev authn.Event) error {
	st.events.WithLabelValues(ev.Type, ev.Outcome).Inc()
	if st.w.Recorder == nil {
		return nil
	}
	fields := map[string]any{}
	for k, v := range ev.Fields {
		fields[k] = v
	}
	if ev.Reason != "" {
		fields["reason"] = ev.Reason
	}
	pe := Event{Type: ev.Type, Time: ev.Time, Host: ev.Host, ClientIP: ev.ClientIP, Subject: ev.Subject,
		Email: ev.Email, SessionID: ev.SessionID, Outcome: ev.Outcome, Fields: fields}
	if ev.Reason != "" {
		pe.Reasons = []string{ev.Reason}
	}
	return st.w.Recorder.Record(ctx, pe)
}

// authorize judges a forward-auth request with the pipeline's risk and
// policy stages, and records the decision.
func (st *authnStage) authorize(ctx context.Context, r *http.Request, _ authn.Route, aid authn.Identity, trusted []netip.Prefix, router *Router) (authn.Verdict, error) {
	w := st.w
	p, err := NormalizePath(r.URL.EscapedPath())
	if err != nil {
		return authn.Verdict{Reason: "bad_path"}, nil
	}
	// The routes of the config this Authn was built from (a reload builds
	// a new one), not the config at start.
	rt := router.Match(r.Host, p)
	if rt == nil {
		// Fail closed: a path no route serves is not judged.
		return authn.Verdict{Reason: ReasonNoRoute}, nil
	}
	ri := rt.Info
	// The host's path_charset holds behind nginx too.
	if err := CheckPathCharset(p, router.PathCharset(r.Host)); err != nil {
		return authn.Verdict{Reason: "bad_path"}, nil
	}
	ip := forwardAuthClientIP(r, trusted)
	req := &Request{ID: newRequestID(), Route: ri, Path: p, ClientIP: ip, Time: w.Clock(), HTTP: r}
	id := fromAuthnIdentity(aid)
	var risk Risk
	if w.Risk != nil {
		risk, _ = w.Risk.Assess(ctx, req, id)
	}
	ev := Event{Type: EventDecision, Time: req.Time, RequestID: req.ID, Route: ri.Name, Method: r.Method, Host: ri.Host,
		Path: p, ClientIP: addrString(req), Subject: id.Subject, Email: id.Email, SessionID: id.SessionID,
		Fields: map[string]any{"via": "forward_auth"}}
	v := authn.Verdict{}
	switch {
	case risk.Blocked:
		ev.Outcome, ev.Reasons = OutcomeDeny, []string{ReasonRiskBlocked}
	case w.Authz == nil:
		ev.Outcome, ev.Reasons = OutcomeDeny, []string{ReasonNoPolicy}
	default:
		dec, err := w.Authz.Decide(ctx, req, id, risk)
		defer dec.release() // after the decision is recorded below
		ev.Revision, ev.Input, ev.InputJSON = dec.Revision, dec.Input, dec.InputJSON
		for k, v := range shadowFields(dec.Shadow) {
			ev.Fields[k] = v
		}
		switch {
		case err != nil:
			ev.Outcome, ev.Reasons = OutcomeDeny, []string{ReasonPolicyError}
		case !dec.Allow || len(dec.Deny) > 0:
			ev.Outcome, ev.Reasons = OutcomeDeny, dec.Deny
			if len(ev.Reasons) == 0 {
				ev.Reasons = []string{ReasonPolicyDeny}
			}
		case risk.StepUp:
			// As in the pipeline: an anomaly's step-up asks for a fresh
			// proof even from a session that has MFA.
			reason := ReasonMFARequired
			if risk.Reason != "" {
				reason += ":" + risk.Reason
			}
			ev.Outcome, ev.Reasons = OutcomeStepUp, []string{reason}
			v.StepUp = true
		case (dec.RequireMFA || ri.MFA == "required") && !id.MFA:
			ev.Outcome, ev.Reasons = OutcomeStepUp, []string{ReasonMFARequired}
			v.RequireMFA = true
		default:
			ev.Outcome = OutcomeAllow
			v.Allow = true
		}
	}
	if w.Recorder != nil {
		if err := w.Recorder.Record(ctx, ev); err != nil {
			return authn.Verdict{}, fmt.Errorf("record forward-auth decision: %w", err)
		}
	}
	if len(ev.Reasons) > 0 {
		v.Reason = ev.Reasons[0]
	}
	if v.Allow {
		observeForwarded(ctx, w.Observers, router, req, id)
	}
	return v, nil
}

// observeForwarded counts an allowed forward-auth request for the
// observers (anomaly detection). Gatehouse never sees the response behind
// nginx, so it counts when it judges: the request, and a download when the
// path matches the route's downloads.paths; bytes and downloads known only
// from response headers stay invisible there.
func observeForwarded(ctx context.Context, obs []Observer, router *Router, req *Request, id Identity) {
	if len(obs) == 0 {
		return
	}
	c := Completion{Request: req, Identity: id, Status: http.StatusOK}
	if rt := router.Match(req.Route.Host, req.Path); rt != nil {
		c.Download = rt.IsDownload(req.Path, "", "")
	}
	for _, o := range obs {
		o.Observe(ctx, c)
	}
}

// handleRevoke is POST /api/v1/sessions/revoke {"user": U} | {"session": ID}.
func (st *authnStage) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User    string `json:"user"`
		Session string `json:"session"`
		Reason  string `json:"reason"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil || (body.User == "") == (body.Session == "") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": `give exactly one of "user" or "session"`})
		return
	}
	reason := body.Reason
	if reason == "" {
		reason = "admin API"
	}
	a := st.a.Load()
	var err error
	if body.User != "" {
		err = a.RevokeUser(r.Context(), body.User, reason)
	} else {
		err = a.RevokeSession(r.Context(), body.Session, reason)
	}
	if err != nil {
		st.log.Error("revocation failed", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "revocation failed: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": map[string]string{"user": body.User, "session": body.Session}})
}
