package proxy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
)

// loadConfig reads and validates a config file; a variable so tests can
// count loads.
var loadConfig = config.Load

// ErrReload wraps every failed reload.
var ErrReload = errors.New("config reload failed")

// Reload re-reads the config file the server was started with. A config
// that does not load, validate or compile, or that an OnReload hook refuses,
// is logged with its file:line errors, counted in
// gatehouse_config_reloads_total{result="failure"} and recorded; the old
// config keeps serving. A good one replaces the routing table, header rules
// and admin token atomically: requests already in flight finish on the
// generation they started with. It returns the generation serving after the
// attempt.
func (s *Server) Reload(ctx context.Context) (int64, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.state.Load()
	path := old.cfg.Path
	if path == "" {
		return old.generation, s.reloadFailed(ctx, old, fmt.Errorf("%w: the config was not loaded from a file", ErrReload))
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return old.generation, s.reloadFailed(ctx, old, fmt.Errorf("%w: %w", ErrReload, err))
	}
	st, err := newState(cfg, old.generation+1)
	if err != nil {
		return old.generation, s.reloadFailed(ctx, old, fmt.Errorf("%w: %w", ErrReload, errors.Join(withLines(cfg, err)...)))
	}
	if c, ok := s.certs.(CertReloader); ok {
		if err := c.Reload(ctx, cfg); err != nil {
			return old.generation, s.reloadFailed(ctx, old, fmt.Errorf("%w: certificates: %w", ErrReload, err))
		}
	}
	// Two-phase stages prepare first; their commits wait until every
	// other hook has accepted the config too.
	var commits []func()
	for _, prepare := range s.wiring.onReloadPrepare {
		commit, err := prepare(ctx, cfg)
		if err != nil {
			return old.generation, s.reloadFailed(ctx, old, fmt.Errorf("%w: %w", ErrReload, err))
		}
		commits = append(commits, commit)
	}
	for _, hook := range s.wiring.onReload {
		if err := hook(ctx, cfg); err != nil {
			return old.generation, s.reloadFailed(ctx, old, fmt.Errorf("%w: %w", ErrReload, err))
		}
	}
	for _, commit := range commits {
		if commit != nil { // a prepare with nothing to put in place
			commit()
		}
	}
	for _, k := range restartOnly(old.cfg, cfg) {
		s.log.Warn("config change needs a restart to take effect", zap.String("key", k))
	}
	s.state.Store(st)
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.metrics.lastReload.SetToCurrentTime()
	s.metrics.generation.Set(float64(st.generation))
	s.log.Info("config reloaded", zap.String("file", path), zap.Int64("generation", st.generation), zap.Int("routes", len(cfg.Routes)))
	s.recordReload(ctx, st, nil)
	return st.generation, nil
}

func (s *Server) reloadFailed(ctx context.Context, old *state, err error) error {
	s.metrics.reloads.WithLabelValues("failure").Inc()
	var lines []string
	for _, e := range leaves(err) {
		if e != ErrReload { //nolint:errorlint // the bare sentinel is the wrapper's own marker
			lines = append(lines, e.Error())
		}
	}
	s.log.Error("config reload failed; the previous config keeps serving",
		zap.Strings("errors", lines), zap.Int64("generation", old.generation))
	s.recordReload(ctx, old, err)
	return err
}

// recordReload writes the reload attempt to the audit log.
func (s *Server) recordReload(ctx context.Context, st *state, rerr error) {
	fields := map[string]any{"file": st.cfg.Path, "generation": st.generation, "result": "success"}
	if rerr != nil {
		fields["result"], fields["error"] = "failure", rerr.Error()
	}
	ev := Event{Type: EventReload, Time: s.clock(), Fields: fields}
	if err := s.record(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("config reload not recorded", zap.Error(err))
	}
}

// restartOnly names the changed keys that a reload cannot apply.
func restartOnly(a, b *config.Config) []string {
	var out []string
	if a.Listen != b.Listen {
		out = append(out, "listen")
	}
	if a.HTTPListen != b.HTTPListen {
		out = append(out, "http_listen")
	}
	if a.AdminListen != b.AdminListen {
		out = append(out, "admin_listen")
	}
	if a.TLS != b.TLS {
		out = append(out, "tls")
	}
	// timeouts.upstream_response_header applies on reload (headerWatch
	// reads each generation's); the others are the listeners' and the
	// transport's, fixed at start.
	ta, tb := a.Timeouts, b.Timeouts
	ta.UpstreamHeader, tb.UpstreamHeader = 0, 0
	if ta != tb {
		out = append(out, "timeouts")
	}
	return out
}

// reloadDebounce gathers the burst of events one editor save makes.
const reloadDebounce = 300 * time.Millisecond

// WatchConfig reloads whenever the config file changes, until ctx is done.
// It watches the file's folder, so editors that save by renaming and
// Kubernetes ConfigMap symlink swaps are seen too; bursts of events are
// debounced into one reload.
func (s *Server) WatchConfig(ctx context.Context) error {
	path := s.Config().Path
	if path == "" {
		return errors.New("watch config: the config was not loaded from a file")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch config %s: %w", path, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config %s: %w", path, err)
	}
	defer w.Close()
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch config folder %s: %w", dir, err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			name := filepath.Base(ev.Name)
			if name == base || name == "..data" { // ..data: Kubernetes ConfigMap swap
				timer.Reset(reloadDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn("config watch error", zap.Error(err))
		case <-timer.C:
			if _, err := s.Reload(ctx); err == nil {
				s.log.Info("config file change applied", zap.String("file", path))
			}
		}
	}
}

// leaves lists the innermost errors of a tree of joined errors, stopping at
// the first error that is not a join (so a *config.FieldError stays whole).
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
