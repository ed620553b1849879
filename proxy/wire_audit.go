package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/report"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// wire_audit.go opens the signed audit log (audit.Open) from cfg.Audit and
// makes it the pipeline's Recorder. When the log cannot be opened because
// its tail does not match its last checkpoint, the server still starts but
// every Record fails (requests get 503) and /readyz reports "audit" not
// ready: history is never silently forked. A write failure later has the
// same effect, raises an alert (error log + metric) and stays until restart.

func init() { RegisterBuilder("audit", OrderAudit, buildAudit) }

// auditRecorder adapts *audit.Log to Recorder.
type auditRecorder struct {
	log     *audit.Log
	openErr error // the log refused to open (tail mismatch)
	m       *auditMetrics
}

type auditMetrics struct {
	records *prometheus.CounterVec
	// decisions and completions are records' children for the two types
	// every request writes, looked up once instead of per record.
	decisions, completions prometheus.Counter
	failures               prometheus.Counter
	alerts                 prometheus.Counter
	latency                prometheus.Histogram
}

func buildAudit(ctx context.Context, w *Wiring) error {
	cfg := w.Config.Audit
	logger := w.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	opts, err := auditOptions(cfg)
	if err != nil {
		return err
	}
	rec := &auditRecorder{m: &auditMetrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_audit_records_total", Help: "Audit records appended, by type.",
		}, []string{"type"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_append_failures_total", Help: "Audit appends that failed (the event was not recorded).",
		}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_alerts_total", Help: "Audit alerts raised: write failures, checkpoint publishing failures.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gatehouse_audit_append_seconds", Help: "Time for one audit append to return (includes fsync in always mode).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}),
	}}
	rec.m.decisions = rec.m.records.WithLabelValues(string(audit.TypeDecision))
	rec.m.completions = rec.m.records.WithLabelValues(string(audit.TypeCompletion))
	opts.Clock = w.Clock
	opts.OnAlert = func(err error) {
		rec.m.alerts.Inc()
		logger.Error("AUDIT ALERT", zap.Error(err))
	}
	l, err := audit.Open(ctx, opts)
	switch {
	case errors.Is(err, audit.ErrTailMismatch):
		logger.Error("audit log refused: its tail does not match its last checkpoint; requests are refused until an operator runs `gatehouse audit verify` and repairs it",
			zap.String("dir", cfg.Dir), zap.Error(err))
		rec.openErr = err
		rec.m.alerts.Inc()
	case err != nil:
		return fmt.Errorf("audit: %w", err)
	}
	rec.log = l
	w.Recorder = rec
	w.AddReadiness("audit", rec.ready)
	if reg := w.Metrics; reg != nil {
		size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_audit_log_records", Help: "Records in the audit log (sequenced).",
		}, func() float64 {
			if rec.log == nil {
				return 0
			}
			n, _ := rec.log.Size()
			return float64(n)
		})
		cp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_audit_checkpoint_records", Help: "Records covered by the latest signed checkpoint.",
		}, func() float64 {
			if rec.log == nil {
				return 0
			}
			c, _ := rec.log.LatestCheckpoint()
			return float64(c.Size)
		})
		up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_audit_up", Help: "1 when the audit log accepts records, else 0.",
		}, func() float64 {
			if rec.ready(context.Background()) != nil {
				return 0
			}
			return 1
		})
		for _, c := range []prometheus.Collector{rec.m.records, rec.m.failures, rec.m.alerts, rec.m.latency, size, cp, up} {
			if err := reg.Register(c); err != nil {
				if l != nil {
					l.Close(ctx)
				}
				return fmt.Errorf("register audit metrics: %w", err)
			}
		}
	}
	if l == nil {
		return nil
	}
	if cfg.Retention.D() > 0 && cfg.EncryptionKeyFile != "" {
		stop := make(chan struct{})
		go shredLoop(cfg.Dir, cfg.Retention.D(), w.Clock, stop, logger)
		w.OnClose(func(context.Context) error { close(stop); return nil })
	}
	for i, rc := range cfg.Reports {
		if rc.Every.D() <= 0 || rc.Deliver.Dir == "" {
			continue
		}
		stop := make(chan struct{})
		start := time.Now()
		if w.Clock != nil {
			start = w.Clock()
		}
		go reportLoop(l, cfg.Dir, rc, opts.Key.Verifier, w.Clock, start.UTC(), stop, logger.With(zap.Int("report", i)))
		w.OnClose(func(context.Context) error { close(stop); return nil })
	}
	var stopBackup func(context.Context) error
	if cfg.Backup.URL != "" {
		// Close hooks run last-registered first: the loop stops before the
		// log closes, the final backup copies the closed log.
		var finalBackup func(context.Context) error
		stopBackup, finalBackup, err = startBackup(ctx, w, cfg, logger)
		if err != nil {
			l.Close(ctx)
			return err
		}
		w.OnClose(finalBackup)
	}
	w.OnClose(func(ctx context.Context) error {
		if err := l.Close(ctx); err != nil {
			return fmt.Errorf("close audit log: %w", err)
		}
		return nil
	})
	if stopBackup != nil {
		w.OnClose(stopBackup)
	}
	return nil
}

// auditOptions turns cfg.Audit into audit.Options.
func auditOptions(cfg config.Audit) (audit.Options, error) {
	if cfg.Dir == "" {
		return audit.Options{}, errors.New("audit: audit.dir is not set")
	}
	if cfg.SigningKeyFile == "" {
		return audit.Options{}, errors.New("audit: audit.signing_key_file is not set (gatehouse keys generate)")
	}
	key, err := audit.LoadSigningKey(cfg.SigningKeyFile)
	if err != nil {
		return audit.Options{}, fmt.Errorf("audit: %w", err)
	}
	o := audit.Options{
		Dir: cfg.Dir, Key: key, Durability: audit.Durability(cfg.Durability),
		GroupCommit: cfg.GroupCommit.D(), CheckpointInterval: cfg.CheckpointInterval.D(),
		SegmentSize: int64(cfg.SegmentSize),
	}
	if cfg.EncryptionKeyFile != "" {
		if o.EncryptionKey, err = audit.LoadEncryptionKey(cfg.EncryptionKeyFile); err != nil {
			return audit.Options{}, fmt.Errorf("audit: %w", err)
		}
	}
	if cfg.Publish.File != "" {
		o.Publishers = append(o.Publishers, audit.FilePublisher{Path: cfg.Publish.File})
	}
	if cfg.Publish.Webhook != "" {
		o.Publishers = append(o.Publishers, audit.WebhookPublisher{URL: cfg.Publish.Webhook})
	}
	return o, nil
}

// reportLoop writes a compliance report of the period since the previous one
// (the first: since from, the start) every rc.Every
// into rc.Deliver.Dir (audit-report-<from>--<to>.<format>). Personal fields stay
// sealed in scheduled reports; run `gatehouse audit report --encryption-key`
// by hand when they are needed.
func reportLoop(l *audit.Log, dir string, rc config.AuditReport, vkey string, clock func() time.Time, from time.Time, stop <-chan struct{}, log *zap.Logger) {
	if clock == nil {
		clock = time.Now
	}
	format := rc.Format
	if format == "" {
		format = "html"
	}
	v, err := audit.ParseVerifierKey(vkey)
	if err != nil {
		log.Error("scheduled audit report disabled", zap.Error(err))
		return
	}
	t := time.NewTicker(rc.Every.D())
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := l.Sync(ctx)
		cancel()
		if err != nil {
			log.Error("scheduled audit report: sync", zap.Error(err))
			continue
		}
		end := clock().UTC()
		// Periods follow each other exactly: no record falls between two reports.
		o := report.Options{From: from, To: end, Generated: end}
		rep, err := report.FromLog(dir, []note.Verifier{v}, nil, o, true)
		if err == nil {
			const stamp = "20060102T150405.000Z"
			name := fmt.Sprintf("audit-report-%s--%s.%s", from.Format(stamp), end.Format(stamp), format)
			err = report.WriteFile(filepath.Join(rc.Deliver.Dir, name), rep, format)
		}
		if err != nil {
			log.Error("scheduled audit report failed", zap.Error(err))
			continue
		}
		from = end
		if !rep.Integrity.Verified {
			log.Error("AUDIT ALERT: scheduled report found the audit log does not verify", zap.String("problem", rep.Integrity.Problem))
		}
	}
}

// shredLoop destroys expired data keys at start and then daily.
func shredLoop(dir string, retention time.Duration, clock func() time.Time, stop <-chan struct{}, log *zap.Logger) {
	if clock == nil {
		clock = time.Now
	}
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		if done, err := audit.Shred(dir, clock().Add(-retention)); err != nil {
			log.Error("audit retention: shred failed", zap.Error(err))
		} else if len(done) > 0 {
			log.Info("audit retention: personal fields shredded", zap.Strings("periods", done))
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (r *auditRecorder) ready(context.Context) error {
	if r.openErr != nil {
		return r.openErr
	}
	return r.log.Err()
}

// Record converts ev and appends it; the error means "not recorded".
func (r *auditRecorder) Record(ctx context.Context, ev Event) error {
	if r.openErr != nil {
		r.m.failures.Inc()
		return r.openErr
	}
	// On the stack: Append keeps nothing of the record itself (two of these
	// per request).
	var rec audit.Record
	if err := fillAuditRecord(ev, &rec); err != nil {
		r.m.failures.Inc()
		return err
	}
	t0 := time.Now()
	_, err := r.log.Append(ctx, &rec)
	r.m.latency.Observe(time.Since(t0).Seconds())
	if err != nil {
		r.m.failures.Inc()
		return err
	}
	switch rec.Type {
	case audit.TypeDecision:
		r.m.decisions.Inc()
	case audit.TypeCompletion:
		r.m.completions.Inc()
	default:
		r.m.records.WithLabelValues(string(rec.Type)).Inc()
	}
	return nil
}

// auditRecord maps a pipeline event onto the audit record of its type.
// Well-known Fields become typed record fields; the rest is kept in Detail.
func auditRecord(ev Event) (*audit.Record, error) {
	r := new(audit.Record)
	if err := fillAuditRecord(ev, r); err != nil {
		return nil, err
	}
	return r, nil
}

// fillAuditRecord is auditRecord into a record of the caller's.
func fillAuditRecord(ev Event, r *audit.Record) error {
	*r = audit.Record{
		Type: audit.Type(ev.Type), Time: ev.Time, RequestID: ev.RequestID, Route: ev.Route, Method: ev.Method,
		Host: ev.Host, Path: ev.Path, ClientIP: ev.ClientIP, Subject: ev.Subject, Email: ev.Email,
		SessionID: ev.SessionID, Revision: ev.Revision,
	}
	// Most events (every completion, most decisions) have no Fields: no
	// map then. Values are only ever put back into detail after being
	// taken from it, so a nil map is never written.
	var detail map[string]any
	if len(ev.Fields) > 0 {
		detail = make(map[string]any, len(ev.Fields))
		for k, v := range ev.Fields {
			detail[k] = v
		}
	}
	take := func(k string) (any, bool) {
		v, ok := detail[k]
		delete(detail, k)
		return v, ok
	}
	str := func(k string) string {
		if v, ok := take(k); ok {
			if s, ok := v.(string); ok {
				return s
			}
			detail[k] = v
		}
		return ""
	}
	r.UserAgent = str("user_agent")
	r.Error = str("error")
	if s := str("reason"); s != "" {
		r.Reason = s
	}
	if v, ok := take("amr"); ok {
		if a, ok := v.([]string); ok {
			r.AMR = a
		} else {
			detail["amr"] = v
		}
	}
	if s := str("acr"); s != "" {
		r.ACR = s
	}
	if v, ok := take("mfa"); ok {
		if b, ok := v.(bool); ok {
			r.MFA = &b
		} else {
			detail["mfa"] = v
		}
	}
	switch r.Type {
	case audit.TypeDecision:
		r.Outcome, r.Reasons = ev.Outcome, ev.Reasons
		if len(ev.InputJSON) > 0 { // encoded by policy.Input.AppendAuditJSON, secrets left out
			r.InputJSON = ev.InputJSON
		} else {
			r.Input = scrubInput(ev.Input)
		}
	case audit.TypeCompletion:
		r.Status, r.Bytes, r.DurationNS = ev.Status, ev.Bytes, int64(ev.Duration)
	case audit.TypeConfigReload, audit.TypePolicyReload:
		res := str("result")
		if res == "" {
			res = ev.Outcome
		}
		switch res {
		case "ok", "success":
			r.Result = "ok"
		default:
			r.Result = "failed"
		}
	case audit.TypeAnomaly, audit.TypeAlert:
		for _, reason := range ev.Reasons {
			if rule, ok := strings.CutPrefix(reason, "anomaly:"); ok && r.Rule == "" {
				r.Rule = rule
			} else if r.Reason == "" {
				r.Reason = reason
			}
		}
		if v, ok := take("flags"); ok {
			if f, ok := v.([]string); ok {
				r.Flags = f
			} else {
				detail["flags"] = v
			}
		}
		if r.Type == audit.TypeAnomaly && ev.Outcome != "" {
			r.Actions = strings.Split(ev.Outcome, ",")
		} else {
			r.Result = ev.Outcome
		}
	case audit.TypeStepUp:
		r.Result = ev.Outcome
		if r.MFA == nil && (ev.Outcome == "mfa" || ev.Outcome == "no_mfa") {
			b := ev.Outcome == "mfa"
			r.MFA = &b
		}
	default:
		r.Result = ev.Outcome
		if r.Reason == "" && len(ev.Reasons) > 0 {
			r.Reason = strings.Join(ev.Reasons, "; ")
		}
	}
	if ev.Type != EventDecision {
		in, err := eventInput(ev)
		if err != nil {
			return fmt.Errorf("audit %s event: %w", ev.Type, err)
		}
		if len(in) > 0 {
			if detail == nil {
				detail = map[string]any{}
			}
			detail["input"] = scrubInput(in)
		}
	}
	if len(detail) > 0 {
		r.Detail = detail
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("audit %s event: %w", ev.Type, err)
	}
	return nil
}

// eventInput is the event's input document as a map: Input, or InputJSON
// decoded (numbers kept exact, so they encode as they were).
func eventInput(ev Event) (map[string]any, error) {
	if len(ev.InputJSON) == 0 {
		return ev.Input, nil
	}
	dec := json.NewDecoder(bytes.NewReader(ev.InputJSON))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("input document: %w", err)
	}
	return m, nil
}

// scrubInput returns in without secret request headers (policy.SecretHeader,
// whatever the input builder did; a copy when any is removed, the caller's
// map is never modified).
func scrubInput(in map[string]any) map[string]any {
	req, ok := in["request"].(map[string]any)
	if !ok {
		return in
	}
	hdrs, ok := req["headers"].(map[string]any)
	if !ok {
		return in
	}
	var clean map[string]any
	for k := range hdrs {
		if policy.SecretHeader(k) {
			if clean == nil {
				clean = make(map[string]any, len(hdrs))
				for k2, v2 := range hdrs {
					clean[k2] = v2
				}
			}
			delete(clean, k)
		}
	}
	if clean == nil {
		return in
	}
	req2 := make(map[string]any, len(req))
	for k, v := range req {
		req2[k] = v
	}
	req2["headers"] = clean
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	out["request"] = req2
	return out
}
