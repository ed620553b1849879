package anomaly

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Revoker ends sessions. The authentication package provides it (through
// the proxy's wiring); the detector only needs these two calls.
type Revoker interface {
	RevokeUser(ctx context.Context, sub, reason string) error
	RevokeSession(ctx context.Context, id, reason string) error
}

// Hooks let the embedding program write down what the detector does
// (audit records, metrics, logs). Every hook is optional and must not
// block for long; they are called on the request's goroutine (OnAnomaly
// with the memory store), the flusher (OnAnomaly with a Batcher store such
// as Redis) or a delivery worker (OnAlert).
type Hooks struct {
	// OnAnomaly is called once per rule firing, after its actions ran.
	OnAnomaly func(ctx context.Context, r Record)
	// OnAlert is called once per sink and alert, when delivery finished or
	// gave up.
	OnAlert func(ctx context.Context, r AlertResult)
	// OnStoreError is called whenever the store could not be used; op names
	// the operation ("assess", "observe", "block", ...).
	OnStoreError func(op string, err error)
}

// Options configure a Detector.
type Options struct {
	Zone  *time.Location // time zone of Night and of baseline hour bands; nil: UTC
	Night string         // "22:00-06:00"; "" disables the night window
	Rules []Rule
	// Store holds the state; nil: a MemoryStore (single instance).
	Store Store
	// FailOpen lets requests through when the store cannot be read (known
	// blocks made by this instance still apply). The default fails closed:
	// Assess reports Blocked with reason store_unavailable.
	FailOpen bool
	// StoreTimeout bounds every call to a store that can block (not the
	// MemoryStore, which never waits but for its own lock); 0: 250ms.
	StoreTimeout time.Duration
	// StoreBackoff: after a store call timed out, requests do not wait on
	// the store again for this long (they take the store-error path at
	// once), so a hung Redis costs one timeout, not one per request; 0: 1s.
	StoreBackoff time.Duration
	BlockFor     time.Duration // default block duration; 0: 1h
	StepUpFor    time.Duration // how long a step-up request stands; 0: 12h
	Alpha        float64       // EWMA weight of the newest hour; 0: 0.25
	Sinks        []AlertSink
	AlertQueue   int           // queued alerts before new ones are dropped; 0: 1024
	AlertTimeout time.Duration // bound on delivering one alert incl. retries; 0: 2m
	Revoker      Revoker       // needed by rules with action revoke
	// RiskWindow is the window of the counters Assess reports in Risk
	// (policy's input.risk.requests_1h, ...); 0: 1h. It is counted even
	// when no rule uses it.
	RiskWindow time.Duration
	// PollInterval is how often live requests are checked against blocks
	// made by other instances, on a shared store that is not a Batcher;
	// 0: 500ms.
	PollInterval time.Duration
	// SyncInterval is how often, on a Batcher store (Redis), the buffered
	// observations are flushed and the marker generation is checked: it
	// bounds how late counters reach the store and how long a block made
	// by another replica takes to be enforced here; 0: 50ms.
	SyncInterval time.Duration
	// ResyncInterval is how often, on a Batcher store, the whole local view
	// (counters, markers, baselines of recent subjects) is re-read, as a
	// safety net behind the marker generation; 0: 1s.
	ResyncInterval time.Duration
	// Clock is the time source for windows, night and baselines; nil:
	// time.Now. `gatehouse demo --at 02:00` shifts it.
	Clock func() time.Time
	Hooks Hooks
}

// Subject is who a request came from.
type Subject struct {
	User     string    // stable user id (OIDC sub); "" for anonymous callers
	Session  string    // session id, if any
	IP       string    // client address: the key of anonymous callers
	AuthTime time.Time // last authentication of the session (clears step-up once newer)
}

// Observation is one finished request.
type Observation struct {
	Time     time.Time // completion time; zero: the clock
	Path     string
	Status   int
	Bytes    int64 // bytes actually sent to the client
	Download bool
}

// Risk is what the detector knows of a subject right now.
type Risk struct {
	Flags   []string
	Night   bool
	Window  time.Duration // Options.RiskWindow
	Counts  Counts        // the user's counters in Window
	Session Counts        // the session's counters in Window (per-session rules only)
	Blocked bool
	StepUp  bool
	Reason  string // why blocked or step-up
	Block   *Block // the block that applies, if any
}

// Record is one firing of a rule: what triggered it and what was done.
type Record struct {
	ID        string         `json:"id"`
	Time      time.Time      `json:"time"`
	Rule      string         `json:"rule"`
	Flags     []string       `json:"flags"`
	Scope     Scope          `json:"per"`
	User      string         `json:"user,omitempty"`
	Session   string         `json:"session,omitempty"`
	IP        string         `json:"ip,omitempty"`
	Night     bool           `json:"night"`
	Window    time.Duration  `json:"window_ns"`
	Counts    Counts         `json:"counts"`
	Threshold float64        `json:"baseline_threshold,omitempty"`
	Actions   []ActionResult `json:"actions"`
}

// ActionResult is the outcome of one action.
type ActionResult struct {
	Action Action    `json:"action"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Until  time.Time `json:"until,omitzero"`
	// Kind and ID name what a block action blocked (a session, or a user
	// or caller address), so that its record says exactly what to restore.
	Kind BlockKind `json:"kind,omitempty"`
	ID   string    `json:"id,omitempty"`
}

// ErrBlocked is the cause of a live request's context cut by a block.
var ErrBlocked = errors.New("anomaly block")

// Detector counts, judges and responds. It is safe for concurrent use.
type Detector struct {
	opts     Options
	night    Night
	hasNight bool
	rules    []Rule
	windows  []time.Duration
	riskWin  time.Duration
	baseline bool // some rule compares with a baseline
	perSess  bool // some rule counts per session
	nightly  bool // some rule counts only night-time requests
	store    Store
	mem      *MemoryStore // the store, when it is a MemoryStore: read in place, no timeout
	clock    func() time.Time

	riskIdx   int        // index of riskWin in windows
	ruleWin   []int      // per rule, index of its window in windows
	ruleFlags [][]string // per rule, the flags it contributes when it fires

	hungUntil atomic.Int64 // unix ns (process clock) until which the store is not waited on

	mu     sync.Mutex
	local  map[string]Block // blocks made here: enforced even when the store is down (fail open)
	nlocal atomic.Int32     // len(local), for the request path's lock-free look (Guard)

	sync    *syncer // nil unless the store is shared and a Batcher
	live    *liveSet
	alerts  *dispatcher
	stop    chan struct{}
	stopped sync.WaitGroup
	closeMu sync.Once
}

// New validates opts and starts the detector's background work (alert
// delivery; on a shared store the flusher, or polling blocks for live
// requests when the store is not a Batcher).
func New(opts Options) (*Detector, error) {
	if opts.Zone == nil {
		opts.Zone = time.UTC
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 250 * time.Millisecond
	}
	if opts.StoreBackoff <= 0 {
		opts.StoreBackoff = time.Second
	}
	if opts.BlockFor <= 0 {
		opts.BlockFor = time.Hour
	}
	if opts.StepUpFor <= 0 {
		opts.StepUpFor = 12 * time.Hour
	}
	if opts.Alpha <= 0 || opts.Alpha > 1 {
		opts.Alpha = 0.25
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 50 * time.Millisecond
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = time.Second
	}
	if opts.AlertQueue <= 0 {
		opts.AlertQueue = 1024
	}
	if opts.RiskWindow <= 0 {
		opts.RiskWindow = time.Hour
	}
	if opts.AlertTimeout <= 0 {
		opts.AlertTimeout = 2 * time.Minute
	}
	d := &Detector{opts: opts, clock: opts.Clock, store: opts.Store, local: map[string]Block{}, stop: make(chan struct{})}
	if opts.Night != "" {
		n, err := ParseNight(opts.Night, opts.Zone)
		if err != nil {
			return nil, fmt.Errorf("anomaly: %w", err)
		}
		d.night, d.hasNight = n, true
	}
	names := map[string]bool{}
	for i := range opts.Rules {
		r := opts.Rules[i]
		r.Actions = slices.Clone(r.Actions)
		if err := r.validate(d.hasNight, opts.Revoker != nil); err != nil {
			return nil, fmt.Errorf("anomaly: %w", err)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("anomaly: rule %q defined twice: %w", r.Name, ErrBadRule)
		}
		names[r.Name] = true
		if r.BlockFor == 0 {
			r.BlockFor = opts.BlockFor
		}
		if !slices.Contains(d.windows, r.Window) {
			d.windows = append(d.windows, r.Window)
		}
		d.baseline = d.baseline || r.AboveBaseline > 0
		d.perSess = d.perSess || r.Per == PerSession
		d.nightly = d.nightly || r.Night
		d.rules = append(d.rules, r)
	}
	d.riskWin = opts.RiskWindow
	if !slices.Contains(d.windows, d.riskWin) {
		d.windows = append(d.windows, d.riskWin)
	}
	sort.Slice(d.windows, func(i, j int) bool { return d.windows[i] < d.windows[j] })
	d.riskIdx = slices.Index(d.windows, d.riskWin)
	for i := range d.rules {
		d.ruleWin = append(d.ruleWin, slices.Index(d.windows, d.rules[i].Window))
		d.ruleFlags = append(d.ruleFlags, d.rules[i].flags())
	}
	if d.store == nil {
		d.store = NewMemoryStore(opts.Clock)
	}
	d.mem, _ = d.store.(*MemoryStore)
	d.live = newLiveSet()
	d.alerts = newDispatcher(opts.Sinks, opts.AlertQueue, opts.AlertTimeout, opts.Hooks.OnAlert)
	if bs, ok := d.store.(Batcher); ok && d.store.Shared() {
		d.sync = newSyncer(d, bs)
		d.stopped.Add(1)
		go d.sync.loop()
	} else if d.store.Shared() {
		d.stopped.Add(1)
		go d.pollBlocks()
	}
	return d, nil
}

// Close stops background work, waiting up to ctx for queued alerts.
func (d *Detector) Close(ctx context.Context) error {
	var err error
	d.closeMu.Do(func() {
		close(d.stop)
		d.stopped.Wait()
		err = d.alerts.close(ctx)
	})
	return err
}

// Now is the detector's clock.
func (d *Detector) Now() time.Time { return d.clock() }

// Night reports whether t is inside the night window.
func (d *Detector) Night(t time.Time) bool { return d.hasNight && d.night.Contains(t) }

// FailOpen reports the store-error behaviour.
func (d *Detector) FailOpen() bool { return d.opts.FailOpen }

// Rules returns the validated rules (defaults filled in).
func (d *Detector) Rules() []Rule { return slices.Clone(d.rules) }

func userKey(s Subject) string {
	if s.User != "" {
		return "u:" + s.User
	}
	return "ip:" + s.IP
}

func sessionKey(s Subject) string {
	if s.Session == "" {
		return ""
	}
	return "s:" + s.Session
}

// nightPrefix marks the counters of night-time requests only: a `when:
// night` rule counts what happened inside the night window, not the
// evening before it.
const nightPrefix = "n|"

// ErrStoreBackoff is returned (wrapping ErrStore) while the store is not
// waited on after a timeout.
var ErrStoreBackoff = fmt.Errorf("%w: timed out recently, not waited on", ErrStore)

// storeHung reports whether the store timed out within StoreBackoff.
func (d *Detector) storeHung() bool {
	u := d.hungUntil.Load()
	return u != 0 && time.Now().UnixNano() < u // no clock read while the store never hung
}

// noteStoreErr starts the backoff when err is a timeout.
func (d *Detector) noteStoreErr(err error) {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		d.hungUntil.Store(time.Now().Add(d.opts.StoreBackoff).UnixNano())
	}
}

func (d *Detector) storeErr(op string, err error) {
	d.noteStoreErr(err)
	d.reportStoreErr(op, err)
}

// reportStoreErr only calls the hook: the flusher's timeouts do not start
// the backoff, which is for requests waiting on the store.
func (d *Detector) reportStoreErr(op string, err error) {
	if d.opts.Hooks.OnStoreError != nil {
		d.opts.Hooks.OnStoreError(op, err)
	}
}

// bounded is ctx bounded by StoreTimeout, for one store call. The
// MemoryStore cannot block: its calls get ctx itself (a timeout would
// cost a timer per call).
func (d *Detector) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.mem != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d.opts.StoreTimeout)
}

type stepUpMark struct {
	At   time.Time `json:"at"`
	Rule string    `json:"rule"`
}

// Assess reports s's risk now. A non-nil error means the store could not
// be read; the returned Risk then already expresses the fail-open/closed
// choice (Blocked with reason store_unavailable when failing closed).
func (d *Detector) Assess(ctx context.Context, s Subject) (Risk, error) {
	now := d.clock()
	risk := Risk{Night: d.Night(now), Window: d.riskWin}
	if risk.Night {
		risk.Flags = append(risk.Flags, FlagNight)
	}
	sk := newSubjectKeys(s)
	ks := d.counterKeys(&sk, risk.Night)
	bu := ""
	if d.baseline {
		bu = sk.user()
	}
	var st state
	st.init(len(d.windows))
	cached := false
	if d.mem != nil {
		d.mem.readSubject(now, &ks, d.windows, &sk.marks, bu, &st)
	} else {
		var err error
		if cached, err = d.load(ctx, now, &ks, &sk.marks, bu, &st); err != nil {
			d.storeErr("assess", err)
			risk.Flags = append(risk.Flags, FlagStoreUnavail)
			b, ok := d.localBlock(&sk, now)
			if !ok && d.sync != nil {
				b, ok = d.sync.knownBlock(&sk.marks, now) // another replica's, seen before the outage
			}
			if ok {
				risk.Blocked, risk.Reason, risk.Block = true, b.Reason, &b
				risk.Flags = append(risk.Flags, FlagBlocked)
				return risk, fmt.Errorf("assess: %w", err)
			}
			if !d.opts.FailOpen {
				risk.Blocked, risk.Reason = true, ReasonStoreUnavail
			}
			return risk, fmt.Errorf("assess: %w", err)
		}
	}
	d.judgeRisk(&risk, s, now, &st, cached)
	return risk, nil
}

func appendNew(dst []string, vals ...string) []string {
	for _, v := range vals {
		if !slices.Contains(dst, v) {
			dst = append(dst, v)
		}
	}
	return dst
}

// Observe counts one finished request of s and runs the actions of every
// rule it makes fire. Counting is best effort: a store error is reported
// (and returned) but changes nothing for the request, which is over.
//
// On a Batcher store (Redis) Observe only buffers the observation: the
// flusher sends it within SyncInterval and judges the rules on the totals
// read back. The error returned then is the store's state (backed off
// after a timeout, or the last flush failed).
func (d *Detector) Observe(ctx context.Context, s Subject, o Observation) error {
	now := o.Time
	if now.IsZero() {
		now = d.clock()
	}
	night := d.Night(now)
	if d.sync != nil {
		if err := d.sync.addState(s, night, now, o); err != nil {
			d.storeErr("observe", err)
			return fmt.Errorf("observe: %w", err)
		}
		return nil
	}
	sk := newSubjectKeys(s)
	ks := d.counterKeys(&sk, night)
	bu := ""
	if d.baseline {
		bu = sk.user()
	}
	var st state
	st.init(len(d.windows))
	if d.mem != nil {
		var kbuf [nSlots]string
		d.mem.addSubject(now, compact(kbuf[:0], ks[:]), d.increment(nil, o, bu, now), &ks, d.windows, bu, &st)
		return d.judge(ctx, s, &sk, now, night, &st)
	}
	inc := d.increment(compact(nil, ks[:]), o, bu, now)
	q := Query{Keys: inc.Keys, Windows: d.windows}
	if bu != "" {
		q.Baselines = []string{bu}
	}
	var snap Snapshot
	err := ErrStoreBackoff
	if !d.storeHung() {
		sctx, cancel := d.bounded(ctx)
		snap, err = d.store.Add(sctx, now, inc, q)
		cancel()
	}
	if err != nil {
		d.storeErr("observe", err)
		return fmt.Errorf("observe: %w", err)
	}
	st.fromSnapshot(snap, &ks, d.windows, nil, bu)
	return d.judge(ctx, s, &sk, now, night, &st)
}

// increment is o counted for keys, and for baseline user bu ("": none).
func (d *Detector) increment(keys []string, o Observation, bu string, now time.Time) Increment {
	inc := Increment{Keys: keys, Windows: d.windows, Bytes: max(o.Bytes, 0), Download: o.Download, Path: o.Path}
	if bu != "" {
		inc.BaselineUser, inc.Period = bu, period(now)
	}
	return inc
}

// judge folds the user's baseline when an hour passed and runs every rule
// whose conditions hold on st's counters of s (counted up to now).
func (d *Detector) judge(ctx context.Context, s Subject, sk *subjectKeys, now time.Time, night bool, st *state) error {
	uk := sk.user()
	cur := period(now)
	b := st.baseline()
	if d.baseline && (b == nil || b.Next < cur) {
		sctx, cancel := d.bounded(ctx)
		nb, err := d.store.FoldBaseline(sctx, uk, func(old *Baseline, periods map[int64]Counts) *Baseline {
			if old == nil {
				return &Baseline{First: now.Unix(), Next: cur}
			}
			if old.Next >= cur {
				return nil // folded meanwhile by another instance
			}
			old.fold(periods, cur, d.opts.Zone, d.opts.Alpha)
			return old
		})
		cancel()
		if err != nil {
			d.storeErr("baseline", err)
		} else {
			b = nb
		}
	}
	var errs []error
	for i := range d.rules {
		r := &d.rules[i]
		if r.Night && !night {
			continue
		}
		slot := ruleSlot(r, s)
		c := st.at(slot, d.ruleWin[i])
		ok, th := r.holds(c, b, now, d.opts.Zone)
		if !ok {
			continue
		}
		flags := slices.Clone(d.ruleFlags[i])
		if night {
			flags = appendNew([]string{FlagNight}, flags...)
		}
		if err := d.fire(ctx, now, r, s, sk, sk.counter[slot], c, flags, th, night); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fire runs r's actions once per subject: the fired marker (SET NX) makes
// every replica agree on who acts.
func (d *Detector) fire(ctx context.Context, now time.Time, r *Rule, s Subject, sk *subjectKeys, key string, c Counts, flags []string, th float64, night bool) error {
	ttl := r.Window
	if r.blocks() {
		ttl = min(ttl, r.BlockFor)
	}
	sctx, cancel := d.bounded(ctx)
	first, err := d.store.SetMarker(sctx, "fired:"+r.Name+":"+key, []byte(now.UTC().Format(time.RFC3339Nano)), ttl, true)
	cancel()
	if err != nil {
		d.storeErr("fire", err)
		if !r.blocks() {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		// A blocking rule still blocks locally: refusing is the safe side.
		first = true
	}
	if !first {
		return nil
	}
	rec := Record{ID: newID(), Time: now, Rule: r.Name, Flags: flags, Scope: r.Per, User: s.User, Session: s.Session, IP: s.IP,
		Night: night, Window: r.Window, Counts: c, Threshold: th}
	alertAt := -1
	for _, a := range r.Actions {
		res := ActionResult{Action: a}
		var aerr error
		switch a {
		case ActionAlert:
			// Queued once the other actions have run, so that the alert
			// says what was done (a block, with its until) too.
			alertAt = len(rec.Actions)
		case ActionStepUp:
			raw, _ := json.Marshal(stepUpMark{At: now, Rule: r.Name})
			// A night rule counts under its own key ("n|u:ana"); the
			// step-up request is the subject's, which Assess reads.
			name := "stepup:" + strings.TrimPrefix(key, nightPrefix)
			d.noteMarker(name, raw)
			sctx, cancel := d.bounded(ctx)
			_, aerr = d.store.SetMarker(sctx, name, raw, d.opts.StepUpFor, false)
			cancel()
		case ActionBlockSession, ActionBlockUser:
			bkey, kind, id := sk.user(), BlockUser, s.User
			if s.User == "" { // an anonymous caller: its address
				kind, id = BlockAddress, s.IP
				if id == "" {
					id = UnknownAddress
				}
			}
			if a == ActionBlockSession && s.Session != "" {
				bkey, kind, id = sk.session(), BlockSession, s.Session
			}
			b := Block{Kind: kind, ID: id, Rule: r.Name, Reason: "anomaly:" + r.Name, User: s.User, Created: now, Until: now.Add(r.BlockFor), Counts: c}
			// A rule never shortens a block in force: an operator's
			// 30-day block stays when the blocked client's refused
			// retries trip a 1-hour rule (the store compares and sets in
			// one step). What it covers is cut all the same.
			res.Until, res.Kind, res.ID = b.Until, kind, id
			var stored bool
			if stored, aerr = d.setBlockLonger(ctx, bkey, b, r.BlockFor); aerr == nil && !stored {
				if cur, ok := d.blockInForce(ctx, bkey, now); ok {
					res.Until = cur.Until
				}
			}
		case ActionRevoke:
			if r.Per == PerSession && s.Session != "" {
				aerr = d.opts.Revoker.RevokeSession(ctx, s.Session, "anomaly:"+r.Name)
			} else if s.User != "" {
				aerr = d.opts.Revoker.RevokeUser(ctx, s.User, "anomaly:"+r.Name)
			} else {
				aerr = errors.New("anonymous caller has no session to revoke")
			}
			if aerr == nil {
				// A night rule counts under "n|u:ana": live requests are
				// the subject's.
				d.live.cut(strings.TrimPrefix(key, nightPrefix))
			}
		}
		res.OK = aerr == nil
		if aerr != nil {
			res.Error = aerr.Error()
		}
		rec.Actions = append(rec.Actions, res)
	}
	if alertAt >= 0 {
		if err := d.alerts.enqueue(rec); err != nil {
			rec.Actions[alertAt].OK, rec.Actions[alertAt].Error = false, err.Error()
		}
	}
	if d.opts.Hooks.OnAnomaly != nil {
		d.opts.Hooks.OnAnomaly(ctx, rec)
	}
	return nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// noteMarker updates the local view (Batcher stores) with a marker this
// instance writes, so that its own next Assess sees it at once.
func (d *Detector) noteMarker(name string, val []byte) {
	if d.sync != nil {
		d.sync.setLocal(name, val)
	}
}

// Ready reports whether the store can be reached.
func (d *Detector) Ready(ctx context.Context) error {
	sctx, cancel := d.bounded(ctx)
	defer cancel()
	if err := d.store.Ping(sctx); err != nil {
		return fmt.Errorf("anomaly store: %w", err)
	}
	return nil
}
