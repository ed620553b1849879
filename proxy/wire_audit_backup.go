package proxy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/s3target"
)

// wire_audit_backup.go runs audit.Backup for audit.backup: every
// audit.backup.interval, and once more at shutdown after the log's last
// checkpoint, the log directory is copied to the backup directory.
// A failed backup never stops requests (the local log is the record); it
// is logged, counted, and retried at the next interval.

// DefaultBackupInterval is how often the audit log is copied when
// audit.backup.interval is not set.
const DefaultBackupInterval = 5 * time.Minute

func init() { RegisterChecker("audit backup", checkBackup) }

// checkBackup is `gatehouse check`'s look at an s3:// target's parameters
// (config validates the rest without knowing S3).
func checkBackup(_ context.Context, cfg *config.Config) error {
	if strings.HasPrefix(cfg.Audit.Backup.URL, "s3:") {
		if _, err := s3target.ParseURL(cfg.Audit.Backup.URL); err != nil {
			return fmt.Errorf("audit.backup.url: %w", err)
		}
	}
	return nil
}

// OpenBackupTarget opens a backup URL for the log in logDir as
// audit.backup.url takes it: a directory (file:///dir, apart from logDir)
// or an S3 bucket (s3://bucket/prefix, internal/s3target). `gatehouse
// audit backup` uses it too.
func OpenBackupTarget(raw, logDir string) (audit.BackupTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: not a URL", config.RedactURL(raw))
	}
	if u.Scheme == "s3" {
		return s3target.Open(raw)
	}
	if u.Scheme != "file" || u.Host != "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("%q: want file:///absolute/dir or s3://bucket/prefix", config.RedactURL(raw))
	}
	if config.DirsOverlap(logDir, u.Path) {
		return nil, fmt.Errorf("%q and the log %s overlap: a backup must be apart from the log it copies", raw, logDir)
	}
	if err := os.MkdirAll(u.Path, 0o750); err != nil {
		return nil, err
	}
	t := audit.DirTarget{Dir: filepath.Clean(u.Path)}
	if err := t.Clean(); err != nil {
		return nil, err
	}
	return t, nil
}

type backupMetrics struct {
	runs        *prometheus.CounterVec
	bytes       prometheus.Counter
	lastSuccess prometheus.Gauge
}

// finalBackupTimeout bounds the backup made at shutdown. It has its own
// deadline: the shutdown's may be spent draining requests, and the last
// records and checkpoint must not be skipped for that.
const finalBackupTimeout = 30 * time.Second

// startBackup opens the target and starts the loop. stopLoop ends the
// periodic runs (before the log closes, so that none overlaps its last
// records); final makes the last run (after it closed). Called by
// buildAudit once the log is open.
func startBackup(ctx context.Context, w *Wiring, cfg config.Audit, logger *zap.Logger) (stopLoop, final func(context.Context) error, err error) {
	target, err := OpenBackupTarget(cfg.Backup.URL, cfg.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("audit.backup.url: %w", err)
	}
	m := &backupMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_audit_backup_runs_total", Help: "Copies of the audit log to audit.backup.url, by result (ok, error).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_backup_uploaded_bytes_total", Help: "Bytes uploaded by audit log backups.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_audit_backup_last_success_timestamp_seconds", Help: "When the last audit log backup completed (unix seconds; 0: never).",
		}),
	}
	if reg := w.Metrics; reg != nil {
		for _, c := range []prometheus.Collector{m.runs, m.bytes, m.lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, nil, fmt.Errorf("register backup metrics: %w", err)
			}
		}
	}
	b := audit.NewBackup(cfg.Dir, target)
	log := logger.With(zap.String("backup", redactURL(cfg.Backup.URL)))
	if o, err := s3target.ParseURL(cfg.Backup.URL); err == nil && o.Insecure && !loopbackHost(o.Endpoint) {
		log.Warn("audit backup over plain HTTP to a host that is not loopback (insecure=true): the records travel unencrypted", zap.String("endpoint", o.Endpoint))
	}
	every := cfg.Backup.Interval.D()
	if every <= 0 {
		every = DefaultBackupInterval
	}
	// A stalled store must not hold the next runs up: each run has the
	// interval (at least a minute) to finish.
	runFor := max(every, time.Minute)
	run := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, runFor)
		defer cancel()
		st, err := b.Run(ctx)
		m.bytes.Add(float64(st.UploadedBytes))
		if err != nil {
			m.runs.WithLabelValues("error").Inc()
			log.Error("audit backup failed; retrying at the next interval", zap.Error(err))
			return
		}
		m.runs.WithLabelValues("ok").Inc()
		m.lastSuccess.SetToCurrentTime()
		log.Debug("audit backup done", zap.Int("uploaded", st.Uploaded), zap.Int64("bytes", st.UploadedBytes), zap.Int("keys_deleted", st.Deleted))
	}
	stop, done := make(chan struct{}), make(chan struct{})
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		run(loopCtx)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				run(loopCtx)
			}
		}
	}()
	var once sync.Once
	stopLoop = func(context.Context) error {
		once.Do(func() {
			close(stop)
			cancel()
			<-done
		})
		return nil
	}
	final = func(ctx context.Context) error {
		_ = stopLoop(ctx)
		// The log is closed: its last records and checkpoint go too.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), finalBackupTimeout)
		defer fcancel()
		run(fctx)
		return nil
	}
	return stopLoop, final, nil
}

// redactURL is a backup URL for logs: no credentials, no query.
func redactURL(raw string) string {
	u, err := url.Parse(config.RedactURL(raw))
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = ""
	return strings.TrimSuffix(u.String(), "?")
}

// loopbackHost reports whether host[:port] names this machine.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
