package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/open-policy-agent/opa/v1/ast"
)

// Options configure an [Engine].
type Options struct {
	// Dir is the policy directory (required).
	Dir string
	// ShadowDir is an optional draft evaluated beside Dir; its verdicts are
	// only compared, never enforced.
	ShadowDir string
	// Timeout bounds one evaluation (DefaultTimeout when zero).
	Timeout time.Duration
	// Watch reloads on changes under Dir and ShadowDir (fsnotify).
	Watch bool
	// Debounce is how long the directory must be quiet before a reload
	// (250ms when zero): editors write several events per save.
	Debounce time.Duration
	// Logger receives reload results (slog.Default when nil).
	Logger *slog.Logger
	// OnReload is called after every reload attempt, successful or not.
	OnReload func(ReloadEvent)
	// OnShadowDisagreement is called when the shadow set judges a request
	// differently from the real one.
	OnShadowDisagreement func(ShadowDisagreement)
	// NoDecisionMemo turns the decision memo off: every request is
	// evaluated by OPA. (The memo never changes a decision; see the
	// package doc.)
	NoDecisionMemo bool
	// MemoSize bounds each revision's memo (DefaultMemoSize when zero).
	MemoSize int
}

// ReloadEvent reports one reload attempt.
type ReloadEvent struct {
	Shadow   bool   // the shadow set, not the served one
	Trigger  string // "start", "watch", "explicit"
	Dir      string
	Revision string // the revision serving after the attempt ("" if none)
	Previous string // the revision serving before
	Changed  bool   // a new revision was accepted
	Err      error  // why the new set was refused (file:line from OPA)
	Duration time.Duration
}

// ShadowDisagreement is a request the shadow policy judged differently.
type ShadowDisagreement struct {
	RequestID string
	Real      Decision
	Shadow    Decision
	ShadowErr error
}

// Engine serves the current revision of a policy directory and swaps in a
// new one on reload. Its methods are safe for concurrent use.
type Engine struct {
	opts   Options
	log    *slog.Logger
	cur    atomic.Pointer[Set]
	shadow atomic.Pointer[Set]

	reloadMu sync.Mutex
	lastErr  atomic.Pointer[errBox]

	memo memoCounters

	watcher *fsnotify.Watcher
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  sync.Once
}

type errBox struct{ err error }

// New starts an engine and compiles the policy once. A broken policy at
// start is not an error here: the engine then denies everything with
// ReasonNotLoaded, [Engine.Ready] says why, and a fixed directory is picked
// up by the watcher or the next [Engine.Reload]. New fails only for bad
// options or when the watcher cannot start.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Dir == "" {
		return nil, errors.New("policy engine: no policy dir")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 250 * time.Millisecond
	}
	e := &Engine{opts: opts, log: opts.Logger, stop: make(chan struct{})}
	if e.log == nil {
		e.log = slog.Default()
	}
	_ = e.reload(ctx, "start")
	if opts.Watch {
		if err := e.startWatch(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Ready returns nil once a policy revision is serving, else why not.
func (e *Engine) Ready() error {
	if e.cur.Load() != nil {
		return nil
	}
	if b := e.lastErr.Load(); b != nil && b.err != nil {
		return fmt.Errorf("%w: %w", ErrNotLoaded, b.err)
	}
	return ErrNotLoaded
}

// LastError is the error of the last refused reload of the served set (nil
// when the last attempt succeeded).
func (e *Engine) LastError() error {
	if b := e.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}

// Revision is the revision serving now ("" when none).
func (e *Engine) Revision() string {
	if s := e.cur.Load(); s != nil {
		return s.revision
	}
	return ""
}

// Current is the set serving now (nil when none).
func (e *Engine) Current() *Set { return e.cur.Load() }

// Reload recompiles the policy (and the shadow) now. On error the previous
// revision keeps serving and the error is returned.
func (e *Engine) Reload(ctx context.Context) error { return e.reload(ctx, "explicit") }

func (e *Engine) reload(ctx context.Context, trigger string) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	err := e.reloadOne(ctx, trigger, e.opts.Dir, &e.cur, false)
	if e.opts.ShadowDir != "" {
		_ = e.reloadOne(ctx, trigger, e.opts.ShadowDir, &e.shadow, true)
	}
	return err
}

func (e *Engine) reloadOne(ctx context.Context, trigger, dir string, slot *atomic.Pointer[Set], shadow bool) error {
	start := time.Now()
	prev := slot.Load()
	ev := ReloadEvent{Shadow: shadow, Trigger: trigger, Dir: dir}
	if prev != nil {
		ev.Previous = prev.revision
	}
	memoSize := e.opts.MemoSize
	if memoSize <= 0 {
		memoSize = DefaultMemoSize
	}
	if e.opts.NoDecisionMemo {
		memoSize = 0
	}
	set, err := Compile(ctx, dir, CompileOptions{Timeout: e.opts.Timeout, MemoSize: memoSize})
	switch {
	case err != nil:
		ev.Err = err
		ev.Revision = ev.Previous
		e.log.Error("policy reload refused; last good revision keeps serving",
			"dir", dir, "shadow", shadow, "trigger", trigger, "revision", ev.Previous, "error", err)
	case prev != nil && prev.revision == set.revision:
		ev.Revision = set.revision
		slot.Store(set) // same content; nothing observable changes
	default:
		slot.Store(set)
		ev.Revision, ev.Changed = set.revision, true
		m := set.Memo()
		e.log.Info("policy revision loaded", "dir", dir, "shadow", shadow, "trigger", trigger,
			"revision", set.revision, "previous", ev.Previous, "files", len(set.files),
			"decision_memo", m.Enabled, "memo_paths", len(m.Paths), "memo_off", m.Off)
	}
	ev.Duration = time.Since(start)
	if !shadow {
		e.lastErr.Store(&errBox{err}) // before OnReload: observers see a consistent engine
	}
	if e.opts.OnReload != nil {
		e.opts.OnReload(ev)
	}
	return err
}

// Decide judges one request with the revision serving now. The decision is
// always usable: on any failure it is a deny with a reason id, and the
// error says what went wrong (match with errors.Is: ErrNotLoaded,
// ErrUndefined, ErrDenyUndefined, ErrNotBoolean, ErrConflict, ErrEval,
// ErrTimeout).
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	return e.DecideInput(ctx, &in)
}

// DecideInput is Decide for a caller that keeps its Input in a reusable
// place (Decide's copy costs an allocation per request): in is only read,
// and nothing keeps it, or anything it points to, after the call.
func (e *Engine) DecideInput(ctx context.Context, in *Input) (Decision, error) {
	set := e.cur.Load() // one revision for the whole request
	if set == nil {
		return failed(ReasonNotLoaded), e.Ready()
	}
	var v ast.Value // built once, only if an evaluation needs it
	d, res, err := set.decideTyped(ctx, in, &v)
	e.memo.count(res)
	if sh := e.shadow.Load(); sh != nil && e.opts.OnShadowDisagreement != nil {
		sd, _, serr := sh.decideTyped(ctx, in, &v)
		if sd.Outcome != d.Outcome || !slices.Equal(sd.Reasons, d.Reasons) {
			e.opts.OnShadowDisagreement(ShadowDisagreement{
				RequestID: in.Request.ID, Real: d, Shadow: sd, ShadowErr: serr,
			})
			v := &ShadowVerdict{Outcome: sd.Outcome, Reasons: sd.Reasons, Revision: sd.Revision}
			if serr != nil {
				// The reason id, not the error's text: that can quote
				// the (unredacted) input it failed on.
				v.Error = ReasonEvalError
				if n := len(sd.Reasons); n > 0 {
					v.Error = sd.Reasons[n-1]
				}
			}
			d.Shadow = v
		}
	}
	return d, err
}

// MemoStats counts decisions by how they were reached (memo hit, miss, or
// no memo), since the engine started.
func (e *Engine) MemoStats() MemoStats {
	st := MemoStats{Hits: e.memo.hits.Load(), Misses: e.memo.misses.Load(), Uncached: e.memo.none.Load()}
	if s := e.cur.Load(); s != nil && s.memo != nil {
		st.Entries = s.memo.len()
	}
	return st
}

// Close stops the watcher. Decisions keep working with the last revision.
func (e *Engine) Close() error {
	var err error
	e.closed.Do(func() {
		close(e.stop)
		if e.watcher != nil {
			err = e.watcher.Close()
		}
		e.wg.Wait()
	})
	return err
}

func (e *Engine) startWatch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy dir: %w", err)
	}
	e.watcher = w
	for _, d := range []string{e.opts.Dir, e.opts.ShadowDir} {
		if d == "" {
			continue
		}
		if err := addTree(w, d); err != nil {
			// Not fatal: the engine serves (or denies) as it is; an
			// explicit Reload still works.
			e.log.Warn("cannot watch policy dir; changes need a reload", "dir", d, "error", err)
		}
	}
	e.wg.Add(1)
	go e.watchLoop()
	return nil
}

// addTree watches dir and its (non-hidden) subdirectories: fsnotify is not
// recursive.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}

func (e *Engine) watchLoop() {
	defer e.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-e.stop:
			timer.Stop()
			return
		case ev, ok := <-e.watcher.Events:
			if !ok {
				return
			}
			if ev.Op.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = addTree(e.watcher, ev.Name)
				}
			}
			timer.Reset(e.opts.Debounce)
		case err, ok := <-e.watcher.Errors:
			if !ok {
				return
			}
			e.log.Warn("policy watcher error; reloading to be safe", "error", err)
			timer.Reset(e.opts.Debounce)
		case <-timer.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = e.reload(ctx, "watch")
			cancel()
		}
	}
}
