package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/config"
)

// wire_anomaly.go plugs the anomaly detector into the pipeline: it is the
// RiskAssessor, an Observer of every completion, and a RequestGuard that
// cuts live requests of blocked users and sessions. Its firings are audit
// events ("anomaly", and "alert" per delivery) and metrics; operators list
// and lift blocks through the admin API.

func init() { RegisterBuilder("anomaly", OrderAnomaly, buildAnomaly) }

// EventAnomaly and EventAlert are the audit event types the anomaly stage
// records.
const (
	EventAnomaly = "anomaly"
	EventAlert   = "alert"
)

// anomalyStoreTimeout bounds each Redis operation on the request path.
const anomalyStoreTimeout = 250 * time.Millisecond

// sessionRevoker is what the revoke action needs from the authenticator
// (authn.Authn has exactly these).
type sessionRevoker interface {
	RevokeUser(ctx context.Context, subject, reason string) error
	RevokeSession(ctx context.Context, id, reason string) error
}

// authnRevoker gives the revoke action authn's revocation (every host and
// replica), through the Authn serving now.
type authnRevoker struct{ st *authnStage }

func (r authnRevoker) RevokeUser(ctx context.Context, subject, reason string) error {
	return r.st.a.Load().RevokeUser(ctx, subject, reason)
}

func (r authnRevoker) RevokeSession(ctx context.Context, id, reason string) error {
	return r.st.a.Load().RevokeSession(ctx, id, reason)
}

// anomalyStage adapts *anomaly.Detector to the proxy's stage interfaces.
type anomalyStage struct {
	d       *anomaly.Detector
	w       *Wiring
	log     *zap.Logger
	m       *anomalyMetrics
	redis   redis.UniversalClient // nil with the memory store
	cfg     config.Anomaly
	redisCf config.Redis
	// replay restores blocks from the audit log with the memory store
	// (wire_anomaly_replay.go); replayed is set once it has succeeded.
	replay   *blockReplay
	replayed atomic.Bool
	stop     chan struct{} // ends the snapshot and retry loops
	loops    sync.WaitGroup
	// state keeps the memory store in anomaly.state_file (nil: off).
	state *stateKeeper
}

type anomalyMetrics struct {
	flags       *prometheus.CounterVec
	actions     *prometheus.CounterVec
	alerts      *prometheus.CounterVec
	storeErrors *prometheus.CounterVec
	refused     *prometheus.CounterVec
}

func newAnomalyMetrics(reg prometheus.Registerer, st *anomalyStage) (*anomalyMetrics, error) {
	m := &anomalyMetrics{
		flags: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_anomaly_flags_total",
			Help: "Rule firings by rule and flag (the rule's name, its kind such as bulk_download, night).",
		}, []string{"rule", "flag"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_anomaly_actions_total",
			Help: "Actions taken by rule, action and result (ok, error).",
		}, []string{"rule", "action", "result"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_anomaly_alerts_total",
			Help: "Alert deliveries by sink and result (ok, failed).",
		}, []string{"sink", "result"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_anomaly_store_errors_total",
			Help: "Failures to use the anomaly state store, by operation (assess, observe, block, ...).",
		}, []string{"op"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_anomaly_refused_total",
			Help: "Requests refused by the anomaly stage, by reason (blocked, store_unavailable).",
		}, []string{"reason"}),
	}
	mode := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatehouse_anomaly_store_info",
		Help: "The anomaly store in use and what happens when it fails; always 1.",
	}, []string{"store", "on_store_error"})
	mode.WithLabelValues(st.cfg.Store, st.cfg.OnStoreError).Set(1)
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_anomaly_store_up",
		Help: "1 when the anomaly state store answers a ping, else 0.",
	}, func() float64 {
		if st.d.Ready(context.Background()) != nil {
			return 0
		}
		return 1
	})
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_anomaly_live_requests",
		Help: "Requests being served under the anomaly guard (cut when a block covers them).",
	}, func() float64 { return float64(st.d.Live()) })
	if reg != nil {
		for _, c := range []prometheus.Collector{m.flags, m.actions, m.alerts, m.storeErrors, m.refused, mode, up, live} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register anomaly metrics: %w", err)
			}
		}
	}
	return m, nil
}

func buildAnomaly(ctx context.Context, w *Wiring) error {
	st := &anomalyStage{w: w, log: w.Logger, cfg: w.Config.Anomaly, redisCf: w.Config.Redis}
	if st.log == nil {
		st.log = zap.NewNop()
	}
	st.log = st.log.Named("anomaly")
	opts, err := anomalyOptions(w.Config)
	if err != nil {
		return err
	}
	if w.Zone != nil {
		opts.Zone = w.Zone
	}
	opts.Clock = w.Clock
	switch a := w.Auth.(type) {
	case sessionRevoker:
		opts.Revoker = a
	case *authnStage:
		opts.Revoker = authnRevoker{a}
	}
	if opts.Store == nil && st.cfg.Store == "redis" {
		st.redis = newAnomalyRedis(w.Config.Redis)
		opts.Store = anomaly.NewRedisStore(st.redis, "")
	}
	if opts.Store == nil && st.cfg.StateFile != "" {
		if w.Config.Audit.Dir == "" || w.Recorder == nil {
			// Blocks are not in the state file; without their replay a
			// restored fired-rule marker would keep a rule from blocking
			// again while its counters say it should.
			return errors.New("anomaly.state_file: needs the audit log, which restores the blocks")
		}
		ms := anomaly.NewMemoryStore(w.Clock)
		st.state = &stateKeeper{path: st.cfg.StateFile, ms: ms, log: st.log, onErr: st.onStoreError}
		now := time.Now()
		if w.Clock != nil {
			now = w.Clock()
		}
		if err := st.state.load(now); err != nil {
			return fmt.Errorf("anomaly.state_file: %w", err)
		}
		opts.Store = ms
	}
	opts.Hooks = anomaly.Hooks{OnAnomaly: st.onAnomaly, OnAlert: st.onAlert, OnStoreError: st.onStoreError}
	d, err := anomaly.New(opts)
	if err != nil {
		st.closeRedis()
		return fmt.Errorf("anomaly: %w", err)
	}
	st.d = d
	if st.m, err = newAnomalyMetrics(w.Metrics, st); err != nil {
		_ = d.Close(ctx)
		st.closeRedis()
		return err
	}
	if st.redis != nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := d.Ready(pctx); err != nil {
			// Not fatal: readiness and on_store_error say what happens.
			st.log.Warn("anomaly store unreachable at start", zap.Error(err), zap.String("on_store_error", st.cfg.OnStoreError))
		}
		cancel()
	}

	if st.redis == nil && w.Config.Audit.Dir != "" && w.Recorder != nil {
		st.startReplay(ctx)
	}

	w.Risk = st
	w.Observers = append(w.Observers, st)
	w.AddGuard(st)
	w.HandleAdmin("GET /api/v1/anomaly/blocks", http.HandlerFunc(st.handleBlocks))
	w.HandleAdmin("POST /api/v1/anomaly/unblock", http.HandlerFunc(st.handleUnblock))
	w.HandleAdmin("POST /api/v1/anomaly/block", http.HandlerFunc(st.handleBlock))
	w.AddReadiness("anomaly-store", st.ready)
	w.OnReload(func(_ context.Context, cfg *config.Config) error {
		if !reflect.DeepEqual(cfg.Anomaly, st.cfg) || (st.redis != nil && !reflect.DeepEqual(cfg.Redis, st.redisCf)) {
			return errors.New("anomaly: changed anomaly (or redis) settings take effect on restart")
		}
		return nil
	})
	if st.state != nil {
		st.state.start()
	}
	w.OnClose(func(ctx context.Context) error {
		st.stopLoops(ctx)
		err := d.Close(ctx)
		if st.state != nil {
			err = errors.Join(err, st.state.close(ctx))
		}
		st.closeRedis()
		return err
	})
	return nil
}

// startReplay restores the blocks from the audit log now (or keeps
// retrying in the background, failing as a store error meanwhile) and
// starts the snapshot loop.
func (st *anomalyStage) startReplay(ctx context.Context) {
	st.replay = &blockReplay{dir: st.w.Config.Audit.Dir, d: st.d, log: st.log, err: errBlocksPending}
	st.stop = make(chan struct{})
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.loops.Go(func() {
		<-st.stop
		cancel()
	})
	if err := st.replay.run(ctx); err != nil {
		st.log.Error("block replay failed; retrying", zap.Error(err))
		st.loops.Go(func() {
			if retryEvery(loopCtx, 5*time.Second, st.log, "block replay", st.replay.run) {
				st.replayDone()
			}
		})
	} else {
		st.replayDone()
	}
	st.loops.Go(func() {
		t := time.NewTicker(blockSnapshotEvery)
		defer t.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
				if st.replayed.Load() {
					st.snapshot(loopCtx)
				}
			}
		}
	})
}

// replayDone marks the blocks restored and writes the first snapshot.
func (st *anomalyStage) replayDone() {
	st.replayed.Store(true)
	st.snapshot(context.Background())
}

// snapshot records the active blocks (see wire_anomaly_replay.go).
func (st *anomalyStage) snapshot(ctx context.Context) {
	blocks, err := st.d.Blocks(ctx)
	if err != nil {
		st.log.Error("block snapshot not taken", zap.Error(err))
		return
	}
	st.record(ctx, blockSnapshot(st.d.Now(), blocks))
}

// stopLoops ends the background loops and, once the blocks were restored,
// records a last snapshot.
func (st *anomalyStage) stopLoops(ctx context.Context) {
	if st.stop == nil {
		return
	}
	close(st.stop)
	st.loops.Wait()
	if st.replayed.Load() {
		st.snapshot(ctx)
	}
}

func (st *anomalyStage) closeRedis() {
	if st.redis != nil {
		_ = st.redis.Close()
	}
}

// anomalyOptions translates the config into detector options (store and
// hooks are filled by the builder).
func anomalyOptions(cfg *config.Config) (anomaly.Options, error) {
	a := cfg.Anomaly
	zone := time.UTC
	if a.Timezone != "" {
		z, err := time.LoadLocation(a.Timezone)
		if err != nil {
			return anomaly.Options{}, fmt.Errorf("anomaly.timezone %q: %w", a.Timezone, err)
		}
		zone = z
	}
	opts := anomaly.Options{
		Zone: zone, Night: a.Night, FailOpen: a.OnStoreError == "fail_open",
		StoreTimeout: anomalyStoreTimeout, BlockFor: a.BlockFor.D(), StepUpFor: cfg.Session.Lifetime.D(),
	}
	switch a.OnStoreError {
	case "", "fail_closed", "fail_open":
	default:
		return opts, fmt.Errorf("anomaly.on_store_error %q: must be fail_closed or fail_open", a.OnStoreError)
	}
	for i, r := range a.Rules {
		rule := anomaly.Rule{
			Name: r.Name, Night: r.When == "night", Window: r.Window.D(), Per: anomaly.Scope(r.Per),
			DownloadsOver: r.DownloadsOver, BytesOver: int64(r.BytesOver), RequestsOver: r.RequestsOver,
			DistinctPathsOver: r.DistinctPathsOver, AboveBaseline: r.AboveBaseline, MinHistory: r.MinHistory.D(),
			BlockFor: r.BlockFor.D(),
		}
		if r.When != "" && r.When != "night" {
			return opts, fmt.Errorf("anomaly.rules[%d].when %q: must be empty or night", i, r.When)
		}
		for _, act := range r.Action {
			rule.Actions = append(rule.Actions, anomaly.Action(act))
		}
		opts.Rules = append(opts.Rules, rule)
	}
	for i, s := range a.Alerts {
		if s.Webhook == nil {
			continue
		}
		secret := s.Webhook.Secret.Reveal()
		if secret == "" {
			return opts, fmt.Errorf("anomaly.alerts[%d].webhook: no secret (the body must be signed)", i)
		}
		opts.Sinks = append(opts.Sinks, &anomaly.Webhook{URL: s.Webhook.URL, Secret: []byte(secret)})
	}
	return opts, nil
}

// newAnomalyRedis builds the client from the redis settings: one address,
// a sentinel group or a cluster. Every call is also bounded by the
// detector's context deadline.
func newAnomalyRedis(r config.Redis) redis.UniversalClient {
	timeout := r.Timeout.D()
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	o := &redis.UniversalOptions{
		Addrs: []string{r.Addr}, Password: r.Password.Reveal(), DB: r.DB,
		DialTimeout: min(timeout, time.Second), ReadTimeout: timeout, WriteTimeout: timeout,
		ContextTimeoutEnabled: true, MaxRetries: 1, DialerRetries: 1,
	}
	switch {
	case len(r.SentinelAddrs) > 0:
		o.Addrs, o.MasterName = r.SentinelAddrs, r.MasterName
	case len(r.ClusterAddrs) > 0:
		o.Addrs, o.IsClusterMode = r.ClusterAddrs, true
	}
	if r.TLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewUniversalClient(o)
}

func anomalySubject(req *Request, id Identity) anomaly.Subject {
	s := anomaly.Subject{User: id.Subject, Session: id.SessionID, AuthTime: id.AuthTime}
	switch {
	case req == nil:
	case req.ClientIPText != "":
		s.IP = req.ClientIPText
	case req.ClientIP.IsValid(): // a Request built without the pipeline
		s.IP = req.ClientIP.String()
	}
	return s
}

// Assess implements RiskAssessor.
func (st *anomalyStage) Assess(ctx context.Context, req *Request, id Identity) (Risk, error) {
	if st.replay != nil && !st.replayed.Load() {
		// Blocks unknown until replayed: a store failure.
		if err := st.replay.state(); err != nil && !st.d.FailOpen() {
			st.m.refused.WithLabelValues(anomaly.ReasonStoreUnavail).Inc()
			return Risk{Blocked: true, Reason: anomaly.ReasonStoreUnavail}, err
		}
	}
	r, err := st.d.Assess(ctx, anomalySubject(req, id))
	out := Risk{Flags: r.Flags, Requests: r.Counts.Requests, Downloads: r.Counts.Downloads, Bytes: r.Counts.Bytes,
		Blocked: r.Blocked, StepUp: r.StepUp, Reason: r.Reason, Night: r.Night}
	if r.Blocked {
		reason := "blocked"
		if r.Reason == anomaly.ReasonStoreUnavail {
			reason = anomaly.ReasonStoreUnavail
		}
		st.m.refused.WithLabelValues(reason).Inc()
	}
	return out, err
}

// Observe implements Observer: counting on completion, bytes actually sent.
func (st *anomalyStage) Observe(ctx context.Context, c Completion) {
	if c.Request == nil {
		return
	}
	o := anomaly.Observation{Path: c.Request.Path, Status: c.Status, Bytes: c.Bytes, Download: c.Download}
	if err := st.d.Observe(ctx, anomalySubject(c.Request, c.Identity), o); err != nil {
		st.log.Debug("anomaly observation incomplete", zap.String("request_id", c.Request.ID), zap.Error(err))
	}
}

// Guard implements RequestGuard: a block cuts the request.
func (st *anomalyStage) Guard(req *Request, id Identity, cut context.CancelCauseFunc) func() {
	return st.d.Guard(anomalySubject(req, id), cut)
}

// ready is the "anomaly-store" readiness check: failing closed, an
// unreachable store refuses every request, so the instance is not ready;
// failing open it still serves (the outage shows in the metrics and logs).
func (st *anomalyStage) ready(ctx context.Context) error {
	err := st.d.Ready(ctx)
	if err == nil && st.replay != nil && !st.replayed.Load() {
		err = st.replay.state()
	}
	if err == nil {
		return nil
	}
	if st.d.FailOpen() {
		st.log.Warn("anomaly store unreachable; failing open", zap.Error(err))
		return nil
	}
	return fmt.Errorf("%w (on_store_error: fail_closed, requests are refused)", err)
}

func (st *anomalyStage) onStoreError(op string, err error) {
	st.m.storeErrors.WithLabelValues(op).Inc()
	st.log.Warn("anomaly store error", zap.String("op", op), zap.Error(err))
}

func (st *anomalyStage) record(ctx context.Context, ev Event) {
	if err := st.recordErr(ctx, ev); err != nil {
		st.log.Error("anomaly event not recorded", zap.String("type", ev.Type), zap.Error(err))
	}
}

// recordErr writes ev, not cancelled by a client that goes away.
func (st *anomalyStage) recordErr(ctx context.Context, ev Event) error {
	if st.w.Recorder == nil {
		return errNoRecorder
	}
	return st.w.Recorder.Record(context.WithoutCancel(ctx), ev)
}

// onAnomaly writes one audit record per firing, with the counters that
// triggered it and every action's outcome, and counts flags and actions.
func (st *anomalyStage) onAnomaly(ctx context.Context, r anomaly.Record) {
	actions := make([]map[string]any, 0, len(r.Actions))
	names := make([]string, 0, len(r.Actions))
	for _, a := range r.Actions {
		res := "ok"
		if !a.OK {
			res = "error"
		}
		st.m.actions.WithLabelValues(r.Rule, string(a.Action), res).Inc()
		m := map[string]any{"action": string(a.Action), "ok": a.OK}
		if a.Error != "" {
			m["error"] = a.Error
		}
		if !a.Until.IsZero() {
			m["until"] = a.Until.UTC().Format(time.RFC3339)
		}
		if a.Kind != "" {
			// What was blocked, so that a restart can restore it.
			m["kind"], m["id"] = string(a.Kind), a.ID
		}
		actions = append(actions, m)
		names = append(names, string(a.Action))
	}
	for _, f := range r.Flags {
		st.m.flags.WithLabelValues(r.Rule, f).Inc()
	}
	st.log.Warn("anomaly", zap.String("id", r.ID), zap.String("rule", r.Rule), zap.String("user", r.User),
		zap.String("session", r.Session), zap.Strings("flags", r.Flags), zap.Strings("actions", names),
		zap.Int64("requests", r.Counts.Requests), zap.Int64("downloads", r.Counts.Downloads), zap.Int64("bytes", r.Counts.Bytes))
	fields := map[string]any{
		"anomaly_id": r.ID, "rule": r.Rule, "flags": r.Flags, "per": string(r.Scope), "night": r.Night,
		"window": r.Window.String(), "actions": actions,
		"counters": map[string]any{"requests": r.Counts.Requests, "bytes": r.Counts.Bytes, "downloads": r.Counts.Downloads, "distinct_paths": r.Counts.Paths},
	}
	if r.Threshold > 0 {
		fields["baseline_threshold"] = r.Threshold
	}
	st.record(ctx, Event{Type: EventAnomaly, Time: r.Time, Subject: r.User, SessionID: r.Session, ClientIP: r.IP,
		Outcome: strings.Join(names, ","), Reasons: []string{"anomaly:" + r.Rule}, Fields: fields})
}

// onAlert records each delivery (or failure to deliver) of an alert.
func (st *anomalyStage) onAlert(ctx context.Context, a anomaly.AlertResult) {
	res := "ok"
	fields := map[string]any{"anomaly_id": a.Record.ID, "rule": a.Record.Rule, "sink": a.Sink, "attempts": a.Attempts, "delivered": a.Err == nil}
	if a.Err != nil {
		res = "failed"
		fields["error"] = a.Err.Error()
		st.log.Error("anomaly alert not delivered", zap.String("rule", a.Record.Rule), zap.String("sink", a.Sink), zap.Int("attempts", a.Attempts), zap.Error(a.Err))
	}
	st.m.alerts.WithLabelValues(a.Sink, res).Inc()
	st.record(ctx, Event{Type: EventAlert, Time: st.d.Now(), Subject: a.Record.User, SessionID: a.Record.Session,
		Outcome: res, Reasons: []string{"anomaly:" + a.Record.Rule}, Fields: fields})
}

// blockRequest is the body of POST /api/v1/anomaly/{block,unblock}.
type blockRequest struct {
	User    string `json:"user"`
	Session string `json:"session"`
	Address string `json:"address"` // an anonymous caller's
	For     string `json:"for"`     // block only: a Go duration, default anomaly.block_for
	Reason  string `json:"reason"`
}

func (b blockRequest) target() (anomaly.BlockKind, string, error) {
	n := 0
	for _, v := range []string{b.User, b.Session, b.Address} {
		if v != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", "", errors.New("give one of user, session or address")
	case b.User != "":
		return anomaly.BlockUser, b.User, nil
	case b.Session != "":
		return anomaly.BlockSession, b.Session, nil
	case b.Address == anomaly.UnknownAddress:
		return anomaly.BlockAddress, b.Address, nil
	case b.Address != "":
		a, err := netip.ParseAddr(b.Address)
		if err != nil {
			return "", "", fmt.Errorf("address: %w", err)
		}
		return anomaly.BlockAddress, a.Unmap().String(), nil
	}
	return "", "", errors.New("user, session or address is required")
}

// setTarget names a block's target in its audit record.
func setTarget(ev *Event, kind anomaly.BlockKind, id string) {
	switch kind {
	case anomaly.BlockUser:
		ev.Subject = id
	case anomaly.BlockSession:
		ev.SessionID = id
	case anomaly.BlockAddress:
		ev.ClientIP = id
	}
}

func decodeBlockRequest(w http.ResponseWriter, r *http.Request) (blockRequest, error) {
	var b blockRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, fmt.Errorf("body: %w", err)
	}
	return b, nil
}

func (st *anomalyStage) handleBlocks(w http.ResponseWriter, r *http.Request) {
	blocks, err := st.d.Blocks(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"blocks": blocks})
}

func (st *anomalyStage) handleUnblock(w http.ResponseWriter, r *http.Request) {
	b, err := decodeBlockRequest(w, r)
	kind, id, terr := b.target()
	if err != nil || terr != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": errors.Join(err, terr).Error()})
		return
	}
	// Written down first: an unblock the audit log does not hold would be
	// undone by the next restart's replay, and is not the operator's to
	// make unrecorded.
	ev := Event{Type: EventAnomaly, Time: st.d.Now(), Outcome: "unblock", Reasons: []string{"operator"},
		Fields: map[string]any{"action": "unblock", "kind": string(kind), "id": id, "by": "admin_api", "address_kind": true}}
	setTarget(&ev, kind, id)
	if err := st.recordErr(r.Context(), ev); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "unblock not recorded in the audit log, nothing changed: " + err.Error()})
		return
	}
	ok, err := st.d.Unblock(r.Context(), kind, id)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
		return
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusNotFound
	}
	writeJSON(w, status, map[string]any{"unblocked": ok, "kind": kind, "id": id})
}

func (st *anomalyStage) handleBlock(w http.ResponseWriter, r *http.Request) {
	b, err := decodeBlockRequest(w, r)
	kind, id, terr := b.target()
	var dur time.Duration
	if err == nil && terr == nil && b.For != "" {
		dur, err = time.ParseDuration(b.For)
		if err == nil && dur <= 0 {
			err = errors.New("for must be positive")
		}
	}
	if err != nil || terr != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": errors.Join(err, terr).Error()})
		return
	}
	reason := "operator"
	if b.Reason != "" {
		reason = "operator:" + b.Reason
	}
	blk, err := st.d.PlanBlock(kind, id, dur, reason)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	ev := Event{Type: EventAnomaly, Time: blk.Created, Outcome: "block", Reasons: []string{reason},
		Fields: map[string]any{"action": "block", "kind": string(kind), "id": id, "until": blk.Until.UTC().Format(time.RFC3339), "by": "admin_api", "ok": true, "address_kind": true}}
	setTarget(&ev, kind, id)
	// Written down first: unrecorded, a block would vanish at the next
	// restart and nobody could tell who made it. Refused, nothing changes
	// (undoing an applied block would lift the one it replaced).
	if rerr := st.recordErr(r.Context(), ev); rerr != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "block not recorded in the audit log, not applied: " + rerr.Error()})
		return
	}
	// A store error leaves the block enforced here (and restored from the
	// record at a restart), not yet on the other replicas: say so.
	if err := st.d.ApplyBlock(r.Context(), blk); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error(), "block": blk})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"block": blk})
}
