package proxy

import (
	"context"
	"errors"
	"fmt"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// wire_policy.go plugs the OPA engine into the pipeline as the Authorizer.
// It builds the policy input from the request, identity and risk, turns the
// engine's decision into the proxy's, keeps the input (minus secrets,
// already encoded) for the audit record, reports /readyz "policy" until a
// first revision compiled, reloads on SIGHUP/admin reload, and exposes metrics.

func init() {
	RegisterBuilder("policy", OrderPolicy, buildPolicy)
	RegisterChecker("policy", checkPolicy)
}

// EventPolicyReload is the audit event type of a policy reload attempt.
// (A shadow policy's disagreement is logged, counted, and written into the
// decision's own record as detail.shadow.)
const EventPolicyReload = "policy_reload"

// policyStage adapts *policy.Engine to Authorizer.
type policyStage struct {
	engine atomic.Pointer[policy.Engine]
	cfg    atomic.Pointer[config.Config]
	zone   atomic.Pointer[time.Location]
	// headers filters the input's headers: identityHeaderNames(cfg) out,
	// folded once per config.
	headers atomic.Pointer[policy.HeaderFilter]
	w       *Wiring
	log     *zap.Logger
	m       *policyMetrics

	// memoBase holds the memo counts of engines swapped out by a reload,
	// so that the /metrics counters never go down.
	memoMu   sync.Mutex
	memoBase policy.MemoStats
}

// memoStats are the memo counts since start, over every engine.
func (st *policyStage) memoStats() policy.MemoStats {
	st.memoMu.Lock()
	defer st.memoMu.Unlock()
	s := st.memoBase
	if e := st.engine.Load(); e != nil {
		cur := e.MemoStats()
		s.Hits, s.Misses, s.Uncached, s.Entries = s.Hits+cur.Hits, s.Misses+cur.Misses, s.Uncached+cur.Uncached, cur.Entries
	}
	return s
}

type policyMetrics struct {
	decisions *prometheus.CounterVec
	// byOutcome holds the decisions counter of each known outcome,
	// resolved once: a label lookup hashes and locks on every request.
	byOutcome     map[policy.Outcome]prometheus.Counter
	failures      *prometheus.CounterVec
	duration      prometheus.Histogram
	reloads       *prometheus.CounterVec
	disagreements prometheus.Counter
}

func newPolicyMetrics(reg prometheus.Registerer, st *policyStage) (*policyMetrics, error) {
	m := &policyMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_policy_decisions_total",
			Help: "Policy decisions by outcome (allow, deny, step_up).",
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_policy_eval_failures_total",
			Help: "Evaluations that failed closed, by reason id (policy.timeout, policy.eval_error, ...).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_policy_eval_duration_seconds",
			Help:    "Time to judge one request, input building included.",
			Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_policy_reloads_total",
			Help: "Policy reload attempts by set (serving, shadow) and result (success, failure, unchanged).",
		}, []string{"set", "result"}),
		disagreements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_policy_shadow_disagreements_total",
			Help: "Requests the shadow policy judged differently from the serving one.",
		}),
	}
	loaded := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_policy_loaded",
		Help: "1 when a policy revision is serving, else 0 (every request is denied).",
	}, func() float64 {
		if e := st.engine.Load(); e != nil && e.Ready() == nil {
			return 1
		}
		return 0
	})
	lastFailed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_policy_last_reload_failed",
		Help: "1 when the last reload of the serving policy was refused (the last good revision serves).",
	}, func() float64 {
		if e := st.engine.Load(); e != nil && e.LastError() != nil {
			return 1
		}
		return 0
	})
	m.byOutcome = map[policy.Outcome]prometheus.Counter{}
	for _, o := range []policy.Outcome{policy.OutcomeAllow, policy.OutcomeDeny, policy.OutcomeStepUp} {
		m.byOutcome[o] = m.decisions.WithLabelValues(string(o))
	}
	collectors := []prometheus.Collector{m.decisions, m.failures, m.duration, m.reloads, m.disagreements, loaded, lastFailed}
	for _, r := range []struct {
		result string
		get    func(policy.MemoStats) uint64
	}{
		{"hit", func(s policy.MemoStats) uint64 { return s.Hits }},
		{"miss", func(s policy.MemoStats) uint64 { return s.Misses }},
		{"uncached", func(s policy.MemoStats) uint64 { return s.Uncached }},
	} {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "gatehouse_policy_memo_decisions_total",
			Help:        "Decisions by how they were reached: hit (from the revision's decision memo), miss (evaluated, then memoised), uncached (memo off or not possible for the revision).",
			ConstLabels: prometheus.Labels{"result": r.result},
		}, func() float64 { return float64(r.get(st.memoStats())) }))
	}
	collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_policy_memo_entries",
		Help: "Entries in the serving revision's decision memo.",
	}, func() float64 { return float64(st.memoStats().Entries) }))
	if reg != nil {
		for _, c := range collectors {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register policy metrics: %w", err)
			}
		}
	}
	return m, nil
}

func buildPolicy(ctx context.Context, w *Wiring) error {
	st := &policyStage{w: w, log: w.Logger}
	if st.log == nil {
		st.log = zap.NewNop()
	}
	st.log = st.log.Named("policy")
	var err error
	if st.m, err = newPolicyMetrics(w.Metrics, st); err != nil {
		return err
	}
	if err := st.configure(w.Config); err != nil {
		return err
	}
	e, err := policy.New(ctx, st.options(w.Config))
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if err := e.Ready(); err != nil {
		// Not fatal: every request is denied (policy.not_loaded), /readyz
		// says why, and a fixed directory is picked up by the watcher.
		st.log.Error("no policy revision compiled at start", zap.Error(err))
	}
	st.engine.Store(e)
	w.Authz = st
	w.AddReadiness("policy", st.ready)
	w.OnReload(st.reload)
	w.OnClose(func(context.Context) error {
		if e := st.engine.Load(); e != nil {
			return e.Close()
		}
		return nil
	})
	return nil
}

// configure takes the parts of the config the adapter itself reads.
func (st *policyStage) configure(cfg *config.Config) error {
	apply, err := st.prepareConfigure(cfg)
	if err != nil {
		return err
	}
	apply()
	return nil
}

// prepareConfigure checks what configure needs from cfg and returns the
// step that applies it, so that a reload can refuse before changing
// anything.
func (st *policyStage) prepareConfigure(cfg *config.Config) (func(), error) {
	zone := time.UTC
	if tz := cfg.Anomaly.Timezone; tz != "" {
		z, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fmt.Errorf("policy: anomaly.timezone %q: %w", tz, err)
		}
		zone = z
	}
	if st.w != nil && st.w.Zone != nil {
		zone = st.w.Zone
	}
	hf := policy.NewHeaderFilter(identityHeaderNames(cfg)...)
	return func() {
		st.zone.Store(zone)
		st.headers.Store(hf)
		st.cfg.Store(cfg)
	}, nil
}

func (st *policyStage) options(cfg *config.Config) policy.Options {
	return policy.Options{
		Dir:                  cfg.Policy.Dir,
		ShadowDir:            cfg.Policy.ShadowDir,
		Timeout:              cfg.Policy.Timeout.D(),
		Watch:                true,
		Logger:               slog.New(zapslog.NewHandler(st.log.Core())),
		OnReload:             st.onReload,
		OnShadowDisagreement: st.onShadow,
		NoDecisionMemo:       cfg.Policy.DecisionCache != nil && !*cfg.Policy.DecisionCache,
	}
}

func (st *policyStage) ready(context.Context) error {
	e := st.engine.Load()
	if e == nil {
		return policy.ErrNotLoaded
	}
	return e.Ready()
}

// reload runs on SIGHUP / admin reload with the new config: same policy
// settings → recompile now; changed ones → a new engine, swapped in only
// once it serves. A policy that does not compile refuses the reload (the
// last good revision keeps serving either way).
func (st *policyStage) reload(ctx context.Context, cfg *config.Config) error {
	old := st.cfg.Load()
	// Nothing changes until the new policy serves: a refused reload
	// leaves the settings as they were.
	apply, err := st.prepareConfigure(cfg)
	if err != nil {
		return err
	}
	if reflect.DeepEqual(old.Policy, cfg.Policy) {
		if err := st.engine.Load().Reload(ctx); err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		apply()
		return nil
	}
	e, err := policy.New(ctx, st.options(cfg))
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if err := e.Ready(); err != nil {
		_ = e.Close()
		return fmt.Errorf("policy: %w", err)
	}
	apply()
	st.memoMu.Lock()
	prev := st.engine.Swap(e)
	if prev != nil {
		p := prev.MemoStats()
		st.memoBase.Hits += p.Hits
		st.memoBase.Misses += p.Misses
		st.memoBase.Uncached += p.Uncached
	}
	st.memoMu.Unlock()
	if prev != nil {
		_ = prev.Close()
	}
	return nil
}

func (st *policyStage) onReload(ev policy.ReloadEvent) {
	set, result := "serving", "success"
	if ev.Shadow {
		set = "shadow"
	}
	switch {
	case ev.Err != nil:
		result = "failure"
	case !ev.Changed:
		result = "unchanged"
	}
	st.m.reloads.WithLabelValues(set, result).Inc()
	if st.w.Recorder == nil || result == "unchanged" {
		return
	}
	fields := map[string]any{
		"set": set, "trigger": ev.Trigger, "dir": ev.Dir, "result": result,
		"revision": ev.Revision, "previous": ev.Previous, "duration_ms": ev.Duration.Milliseconds(),
	}
	if ev.Err != nil {
		fields["error"] = ev.Err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.w.Recorder.Record(ctx, Event{Type: EventPolicyReload, Time: time.Now(), Revision: ev.Revision, Fields: fields}); err != nil {
		st.log.Error("policy reload not recorded", zap.Error(err))
	}
}

func (st *policyStage) onShadow(s policy.ShadowDisagreement) {
	st.m.disagreements.Inc()
	st.log.Info("shadow policy disagrees", zap.String("request_id", s.RequestID),
		zap.String("outcome", string(s.Real.Outcome)), zap.String("shadow_outcome", string(s.Shadow.Outcome)),
		zap.Strings("reasons", s.Real.Reasons), zap.Strings("shadow_reasons", s.Shadow.Reasons),
		zap.String("shadow_revision", s.Shadow.Revision), zap.Error(s.ShadowErr))
}

// Decide implements Authorizer. Failures of the policy itself are judged
// denies with a reason id (policy.timeout, policy.eval_error, ...), not
// errors: the reason reaches the audit record.
func (st *policyStage) Decide(ctx context.Context, req *Request, id Identity, risk Risk) (Decision, error) {
	start := time.Now()
	e := st.engine.Load()
	if e == nil {
		return Decision{Deny: []string{policy.ReasonNotLoaded}}, policy.ErrNotLoaded
	}
	in := inputPool.Get().(*policy.Input)
	defer func() {
		*in = policy.Input{} // nothing of this request stays reachable from the pool
		inputPool.Put(in)
	}()
	st.fillInput(in, req, id, risk)
	d, err := e.DecideInput(ctx, in)
	bp, buf := newInputJSON()
	*bp = in.AppendAuditJSON(buf) // the audit input, without building maps
	out := Decision{
		// Allowed only on a positive outcome: any other value (a future
		// one included) denies.
		Allow:      d.Outcome == policy.OutcomeAllow || d.Outcome == policy.OutcomeStepUp,
		RequireMFA: d.RequireMFA,
		Revision:   d.Revision,
		Duration:   d.Duration,
		InputJSON:  *bp,
		inputBuf:   bp,
	}
	if sv := d.Shadow; sv != nil {
		out.Shadow = &ShadowVerdict{Outcome: string(sv.Outcome), Reasons: sv.Reasons, Revision: sv.Revision, Error: sv.Error}
	}
	if d.Outcome == policy.OutcomeDeny {
		out.Deny = d.Reasons
		if len(out.Deny) == 0 { // never an unexplained refusal
			out.Deny = []string{policy.ReasonNotAllowed}
		}
	}
	if c, ok := st.m.byOutcome[d.Outcome]; ok {
		c.Inc()
	} else {
		st.m.decisions.WithLabelValues(string(d.Outcome)).Inc()
	}
	st.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		reason := policy.ReasonEvalError
		if len(d.Reasons) > 0 {
			reason = d.Reasons[len(d.Reasons)-1]
		}
		st.m.failures.WithLabelValues(reason).Inc()
		if !errors.Is(err, policy.ErrUndefined) { // undefined allow is an ordinary deny for many policies
			st.log.Warn("policy evaluation failed closed", zap.String("request_id", req.ID),
				zap.String("reason", reason), zap.String("revision", d.Revision), zap.Error(err))
		}
	}
	return out, nil
}

// input builds the policy input document (docs/policy.md).
// inputPool recycles the policy input documents of the request path
// (Engine.DecideInput keeps none).
var inputPool = sync.Pool{New: func() any { return new(policy.Input) }}

func (st *policyStage) input(req *Request, id Identity, risk Risk) policy.Input {
	var in policy.Input
	st.fillInput(&in, req, id, risk)
	return in
}

// fillInput sets in, which is zero, to the input document of req.
func (st *policyStage) fillInput(in *policy.Input, req *Request, id Identity, risk Risk) {
	in.Request.ID = req.ID
	in.Request.Path = req.Path
	switch {
	case !req.ClientIP.IsValid():
	case req.ClientIPText != "" && !req.ClientIP.Is4In6(): // formatted once by the pipeline
		in.Request.RemoteIP = req.ClientIPText
	default:
		in.Request.RemoteIP = req.ClientIP.Unmap().String()
	}
	if r := req.HTTP; r != nil {
		hf := st.headers.Load()
		if hf == nil {
			hf = policy.NewHeaderFilter(identityHeaderNames(st.cfg.Load())...)
		}
		in.Request.Method = r.Method
		in.Request.Host = canonicalHost(r.Host)
		in.Request.Query = policy.QueryFromURL(r.URL)
		in.Request.Headers = hf.FromHTTP(r.Header)
	} else {
		in.Request.Query = map[string][]string{}
		in.Request.Headers = map[string]string{}
	}
	in.User = policy.UserInput{Sub: id.Subject, Email: id.Email, Name: id.Name, Groups: id.Groups, Roles: id.Roles}
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	in.Session = policy.NewSessionInput(id.MFA, id.AMR, id.ACR, id.AuthTime, now)
	in.Route = policy.RouteInput{Name: req.Route.Name, Host: req.Route.Host, Public: req.Route.Public, MFA: req.Route.MFA}
	in.Time = policy.NewTimeInput(now, st.zone.Load(), risk.Night)
	in.Risk = policy.RiskInput{
		Flags: risk.Flags, Requests1h: risk.Requests, Downloads1h: risk.Downloads, Bytes1h: risk.Bytes,
		Blocked: risk.Blocked, StepUp: risk.StepUp, Reason: risk.Reason,
	}
}

// identityHeaderNames are the headers Gatehouse sets upstream: a client's
// own copies are never shown to the policy.
func identityHeaderNames(cfg *config.Config) []string {
	if cfg == nil {
		return nil
	}
	h := cfg.Identity.Headers
	var out []string
	for _, n := range []string{h.User, h.Email, h.Groups, h.Roles, cfg.Identity.Assertion.Header} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// checkPolicy is `gatehouse check`'s policy step: the policy (and shadow)
// compile and their own tests pass; errors carry OPA's file:line.
func checkPolicy(ctx context.Context, cfg *config.Config) error {
	var errs []error
	for _, d := range []string{cfg.Policy.Dir, cfg.Policy.ShadowDir} {
		if d == "" {
			continue
		}
		if _, err := policy.Compile(ctx, d, policy.CompileOptions{Timeout: cfg.Policy.Timeout.D()}); err != nil {
			if located := regoLocations(d, err); len(located) > 0 {
				errs = append(errs, located...)
			} else {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// regoLocations turns the parse and compile errors OPA reports (file names
// relative to the policy dir) into "dir/file.rego:line: policy: code:
// message" problems, the form `gatehouse check` prints for the config.
func regoLocations(dir string, err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		switch v := e.(type) {
		case nil:
		case *ast.Error:
			if v.Location != nil && v.Location.File != "" {
				out = append(out, &config.FieldError{File: filepath.Join(dir, v.Location.File), Line: v.Location.Row,
					Field: "policy", Msg: v.Code + ": " + v.Message, Err: v})
			}
		case ast.Errors:
			for _, x := range v {
				walk(x)
			}
		case loader.Errors:
			for _, x := range v {
				walk(x)
			}
		case interface{ Unwrap() []error }:
			for _, x := range v.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(v.Unwrap())
		}
	}
	walk(err)
	return out
}
