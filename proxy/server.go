// Package proxy is Gatehouse's server: the router, the request pipeline and
// its stage seams, the upstream transport, error pages, the admin listener
// (health, readiness, metrics, admin API) and the lifecycle (start, hot
// reload, graceful drain).
//
// A request goes through one stage after another (see pipeline.go and
// docs/architecture.md); each stage is a small interface declared in
// stages.go and filled by a package builder (wire_<pkg>.go) registered with
// RegisterBuilder. A stage that is missing refuses: no authenticator, no
// policy or no audit recorder means no request reaches an upstream.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/config"
)

// CertSource provides the TLS configuration of the public listener and
// wraps the plain-HTTP handler (ACME HTTP-01 challenges). proxy/certs
// implements it.
type CertSource interface {
	TLSConfig() *tls.Config
	HTTPHandler(next http.Handler) http.Handler
}

// CertReloader is optionally implemented by a CertSource that follows
// config reloads (new route hosts).
type CertReloader interface {
	Reload(ctx context.Context, cfg *config.Config) error
}

// Options are the process-wide services a Server uses.
type Options struct {
	Logger *zap.Logger      // nil: a no-op logger
	Clock  func() time.Time // nil: time.Now
	// Zone, when set, replaces anomaly.timezone's location wherever the
	// time of day is judged: the anomaly rules' night window and hour
	// bands, and the policy's input.time. `gatehouse demo --at` passes a
	// zone in which it is HH:MM now, so the night rules show by day while
	// every clock (sessions, tokens, the audit log) stays real.
	Zone  *time.Location
	Certs CertSource // required by Run for the HTTPS listener
	// Version is reported by the gatehouse_build_info metric.
	Version string
	// Builders, when non-nil, run instead of the registered ones (tests,
	// tools that assemble their own pipeline).
	Builders []Builder
}

// state is one config generation: swapped atomically on reload; in-flight
// requests keep the generation they started with.
type state struct {
	cfg        *config.Config
	router     *Router
	headers    *headerPolicy
	adminToken []byte
	generation int64
	// upstreamHeader is timeouts.upstream_response_header (headerWatch).
	upstreamHeader time.Duration
}

// Server is one Gatehouse process.
type Server struct {
	log       *zap.Logger
	accessLog *zap.Logger // log without the caller: one line per request, no stack walk
	clock     func() time.Time
	certs     CertSource
	wiring    *Wiring
	registry  *prometheus.Registry
	metrics   *metrics
	transport *http.Transport
	rp        *httputil.ReverseProxy
	// headerWatch enforces the upstream response header timeout.
	headerWatch headerWatch

	state    atomic.Pointer[state]
	reloadMu sync.Mutex
	built    atomic.Bool
	bound    atomic.Bool
	started  chan struct{}
	addrs    Addrs
	closed   sync.Once
}

// Addrs are the bound listener addresses, known once Started is closed.
type Addrs struct {
	HTTPS, HTTP, Admin string
}

// New validates the config, runs the package builders and returns a Server
// ready to Run. Builder errors are returned wrapped with the builder's name.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("proxy: nil config")
	}
	s := &Server{
		log:      opts.Logger,
		clock:    opts.Clock,
		certs:    opts.Certs,
		registry: prometheus.NewRegistry(),
		started:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.accessLog = s.log.WithOptions(zap.WithCaller(false))
	if s.clock == nil {
		s.clock = time.Now
	}
	st, err := newState(cfg, 1)
	if err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s.registry, opts.Version)
	s.transport = newTransport(cfg.Timeouts)
	s.rp = s.newReverseProxy()
	s.wiring = &Wiring{
		Config: cfg, Logger: s.log, Metrics: s.registry, Clock: s.clock, Zone: opts.Zone,
		mux: http.NewServeMux(), adminMux: http.NewServeMux(),
	}
	s.wiring.adminMux.Handle("POST /api/v1/reload", http.HandlerFunc(s.handleReload))
	s.state.Store(st)

	list := opts.Builders
	names := make([]string, len(list))
	if list == nil {
		for _, b := range builders {
			list, names = append(list, b.build), append(names, b.name)
		}
	}
	for i, b := range list {
		if err := b(ctx, s.wiring); err != nil {
			name := names[i]
			if name == "" {
				name = fmt.Sprintf("builder %d", i)
			}
			cerr := s.runClose(ctx)
			return nil, errors.Join(fmt.Errorf("build %s: %w", name, err), cerr)
		}
	}
	s.built.Store(true)
	return s, nil
}

// newState compiles one config generation.
func newState(cfg *config.Config, gen int64) (*state, error) {
	var errs []error
	router, err := NewRouter(cfg.Routes)
	if err != nil {
		errs = append(errs, err)
	}
	hp, err := newHeaderPolicy(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	tok, err := adminToken(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &state{cfg: cfg, router: router, headers: hp, adminToken: tok, generation: gen,
		upstreamHeader: durOr(cfg.Timeouts.UpstreamHeader.D(), defaultResponseHeader)}, nil
}

// minAdminToken is the shortest admin token accepted.
const minAdminToken = 16

// ErrAdminToken is wrapped by admin token configuration errors.
var ErrAdminToken = errors.New("admin token")

// adminToken returns the admin bearer token (admin_token, else the file
// admin_token_file), or nil when none is configured (the admin API then
// refuses everything).
func adminToken(cfg *config.Config) ([]byte, error) {
	tok := cfg.AdminToken.Reveal()
	if tok == "" && cfg.AdminTokenFile != "" {
		b, err := os.ReadFile(cfg.AdminTokenFile)
		if err != nil {
			return nil, &FieldError{Field: "admin_token_file", Msg: err.Error(), Err: ErrAdminToken}
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, nil
	}
	if len(tok) < minAdminToken {
		field := "admin_token"
		if cfg.AdminTokenFile != "" {
			field = "admin_token_file"
		}
		return nil, &FieldError{Field: field, Err: ErrAdminToken,
			Msg: fmt.Sprintf("the admin token must be at least %d bytes, got %d", minAdminToken, len(tok))}
	}
	return []byte(tok), nil
}

// Config returns the config currently serving.
func (s *Server) Config() *config.Config { return s.state.Load().cfg }

// Registry is the server's own prometheus registry (served on /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Started is closed once every listener of Run is bound.
func (s *Server) Started() <-chan struct{} { return s.started }

// Addrs returns the bound addresses; valid after Started is closed.
func (s *Server) Addrs() Addrs { return s.addrs }

// Run binds the listeners (listen: HTTPS; http_listen: redirect to HTTPS
// and ACME challenges; admin_listen: admin), serves until ctx is done, then
// drains in-flight requests for up to timeouts.shutdown and runs the close
// hooks.
func (s *Server) Run(ctx context.Context) (err error) {
	// Until every listener is bound, a failure returns early: the stages
	// are closed all the same (the audit log writes its pending records,
	// its stop record and a final checkpoint).
	serving := false
	defer func() {
		if !serving {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), durOr(s.Config().Timeouts.Shutdown.D(), defaultShutdown))
			defer cancel()
			err = errors.Join(err, s.runClose(cctx))
		}
	}()
	cfg := s.Config()
	if s.certs == nil {
		return errors.New("proxy: no certificate source: cannot serve HTTPS")
	}
	tlsCfg := s.certs.TLSConfig()
	if tlsCfg == nil {
		return errors.New("proxy: certificate source returned no TLS config")
	}
	tlsCfg = tlsCfg.Clone()
	for _, p := range []string{"h2", "http/1.1"} {
		if !contains(tlsCfg.NextProtos, p) {
			tlsCfg.NextProtos = append(tlsCfg.NextProtos, p)
		}
	}
	if tlsCfg.MinVersion < tls.VersionTLS12 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	readHeader := durOr(cfg.Timeouts.ReadHeader.D(), defaultReadHeader)
	idle := durOr(cfg.Timeouts.Idle.D(), defaultIdle)
	errLog := zap.NewStdLog(s.log.Named("http"))

	var lc net.ListenConfig
	var servers []*http.Server
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	listen := func(addr string) (net.Listener, error) {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		listeners = append(listeners, l)
		return l, nil
	}

	addr := cfg.Listen
	if addr == "" {
		addr = ":8443"
	}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	s.addrs.HTTPS = ln.Addr().String()
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	main := &http.Server{
		Handler: s, TLSConfig: tlsCfg, ReadHeaderTimeout: readHeader, IdleTimeout: idle,
		ErrorLog: errLog, Protocols: protos, MaxHeaderBytes: 64 << 10,
		ConnContext: withConnPeer,
	}
	servers = append(servers, main)
	serve := []func() error{func() error { return main.Serve(tls.NewListener(ln, tlsCfg)) }}

	if cfg.HTTPListen != "" {
		hl, err := listen(cfg.HTTPListen)
		if err != nil {
			return err
		}
		s.addrs.HTTP = hl.Addr().String()
		redirect := s.certs.HTTPHandler(httpsRedirect(s.addrs.HTTPS, s.knownHost))
		hs := &http.Server{Handler: redirect, ReadHeaderTimeout: readHeader, IdleTimeout: idle, ErrorLog: errLog}
		servers = append(servers, hs)
		serve = append(serve, func() error { return hs.Serve(hl) })
	}
	if cfg.AdminListen != "" {
		al, err := listen(cfg.AdminListen)
		if err != nil {
			return err
		}
		s.addrs.Admin = al.Addr().String()
		as := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: readHeader, IdleTimeout: idle, ErrorLog: errLog}
		servers = append(servers, as)
		serve = append(serve, func() error { return as.Serve(al) })
	}
	serving = true
	s.bound.Store(true)
	close(s.started)
	s.log.Info("gatehouse serving", zap.String("https", s.addrs.HTTPS), zap.String("http", s.addrs.HTTP),
		zap.String("admin", s.addrs.Admin), zap.Int("routes", len(cfg.Routes)))

	errc := make(chan error, len(serve))
	for _, f := range serve {
		go func() { errc <- f() }()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("serve: %w", runErr)
	}
	s.bound.Store(false)
	timeout := durOr(s.Config().Timeouts.Shutdown.D(), defaultShutdown)
	s.log.Info("draining", zap.Duration("timeout", timeout))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				errs[i] = fmt.Errorf("shutdown: %w", err)
				_ = srv.Close()
			}
		})
	}
	wg.Wait()
	s.transport.CloseIdleConnections()
	errs = append(errs, runErr, s.runClose(sctx))
	return errors.Join(errs...)
}

// runClose runs the close hooks once, newest first.
func (s *Server) runClose(ctx context.Context) error {
	var errs []error
	s.closed.Do(func() {
		for i := len(s.wiring.onClose) - 1; i >= 0; i-- {
			if err := s.wiring.onClose[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// httpsRedirect sends plain-HTTP requests to the same host and path over
// HTTPS, on the HTTPS listener's port when it is not 443.
func httpsRedirect(httpsAddr string, known func(host string) bool) http.Handler {
	_, port, _ := net.SplitHostPort(httpsAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := canonicalHost(r.Host)
		if host == "" || !known(host) {
			http.Error(w, "unknown host", http.StatusNotFound)
			return
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if port != "" && port != "443" {
			host += ":" + port
		}
		p, err := NormalizePath(r.URL.EscapedPath())
		if err != nil {
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		target := "https://" + host + EscapePath(p)
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
}

// knownHost reports whether host (canonical) is a route host or the host of
// external_url: the names plain HTTP is redirected for.
func (s *Server) knownHost(host string) bool {
	st := s.state.Load()
	if _, ok := st.router.hosts[host]; ok {
		return true
	}
	if u, err := url.Parse(st.cfg.ExternalURL); err == nil && u.Host != "" {
		return canonicalHost(u.Host) == host
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// NewLogger builds the process logger from the log settings: JSON unless
// format is "console"; level info unless set. JSON output goes to stderr
// through a 256 KiB buffer flushed every second (and by Sync, which
// `gatehouse serve` calls on exit), so the access log costs no write system
// call per request; the audit log, not this one, is the durable record.
func NewLogger(l config.Log) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if l.Level != "" {
		var err error
		if lvl, err = zapcore.ParseLevel(l.Level); err != nil {
			return nil, fmt.Errorf("log.level %q: %w", l.Level, err)
		}
	}
	if l.Format == "console" {
		zc := zap.NewDevelopmentConfig()
		zc.Level = zap.NewAtomicLevelAt(lvl)
		lg, err := zc.Build()
		if err != nil {
			return nil, fmt.Errorf("build logger: %w", err)
		}
		return lg, nil
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	out := &zapcore.BufferedWriteSyncer{WS: zapcore.Lock(os.Stderr), Size: 256 << 10, FlushInterval: time.Second}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, zap.NewAtomicLevelAt(lvl))
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}
