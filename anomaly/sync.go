package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// sync.go keeps a shared store (Redis) off the request path.
//
//   - Observe adds the observation to a local buffer (one entry per
//     subject, night flag and hour); a flusher goroutine sends the whole
//     buffer every SyncInterval in one pipelined round trip (AddBatch),
//     reading back the new totals, and then judges the rules on them, so
//     rules still fire on the sums every replica wrote.
//   - Assess answers from a local view of the counters, markers (blocks,
//     step-up) and baselines of the subjects seen recently. A subject not
//     in the view is read from the store once (the old round trip) and
//     added to it. The flusher reads MarkerGeneration on every tick; when
//     it changed (a replica set or lifted a block or step-up) it re-reads
//     every marker of the view at once, and it re-reads the whole view
//     every ResyncInterval anyway (windows slide, other replicas count).
//   - The view is used only while the flusher's last round trip succeeded
//     and is younger than staleAfter. Otherwise Assess goes to the store
//     itself, and fails closed (or open) as it always did.

// staleAfter is how old the view may be before Assess stops trusting it.
const staleAfter = time.Second

// viewIdle is how long an entry of the view is kept without being used.
const viewIdle = time.Minute

// maxPending bounds the buffer; observations beyond it are dropped (and
// reported), counting being best effort.
const maxPending = 1 << 16

type pendKey struct {
	user, session, ip string
	night             bool
	period            int64
}

type pending struct {
	s     Subject
	night bool
	last  time.Time
	c     Counts
	paths map[string]struct{}
}

// Every entry of the view remembers when the read that produced it
// started (or when this instance wrote it): an older read finishing later
// does not overwrite it.
type viewCounts struct {
	byW    map[time.Duration]Counts
	used   time.Time
	readAt time.Time
}

type viewMarker struct {
	val    []byte // nil: absent
	used   time.Time
	readAt time.Time
}

type viewBaseline struct {
	b      *Baseline
	used   time.Time
	readAt time.Time
}

type syncer struct {
	d  *Detector
	bs Batcher

	mu        sync.Mutex
	pend      map[pendKey]*pending
	dropped   int
	counts    map[string]*viewCounts
	markers   map[string]*viewMarker
	baselines map[string]*viewBaseline
	okAt      time.Time // process time of the last successful round trip
	lastErr   error     // of the last round trip; nil when it succeeded
	lastFull  time.Time
	gen       string
	haveGen   bool
}

func newSyncer(d *Detector, bs Batcher) *syncer {
	return &syncer{d: d, bs: bs, pend: map[pendKey]*pending{}, counts: map[string]*viewCounts{},
		markers: map[string]*viewMarker{}, baselines: map[string]*viewBaseline{}}
}

// viewState answers Assess from the local view: it copies the view's
// counters of keys (by slot, "" skipped) in windows, marks (by index, ""
// skipped) and user's baseline ("": none) into st. It reports false (st
// then half filled) when some part is not in the view or the view is not
// current.
func (y *syncer) viewState(keys *[nSlots]string, windows []time.Duration, marks *[nMarks]string, user string, st *state) bool {
	now := time.Now()
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.lastErr != nil || y.okAt.IsZero() || now.Sub(y.okAt) > staleAfter {
		return false
	}
	for slot, k := range keys {
		if k == "" {
			continue
		}
		vc := y.counts[k]
		if vc == nil {
			return false
		}
		vc.used = now
		row := st.row(slot)
		for wi, w := range windows {
			row[wi] = vc.byW[w]
		}
	}
	for i, n := range marks {
		if n == "" {
			continue
		}
		vm := y.markers[n]
		if vm == nil {
			return false
		}
		vm.used = now
		st.marks[i], st.has[i] = vm.val, vm.val != nil
	}
	if user != "" {
		vb := y.baselines[user]
		if vb == nil {
			return false
		}
		vb.used = now
		st.ext = vb.b
	}
	return true
}

// fill stores what a read of q, started at started, returned (q's parts
// absent from snap are stored as absent), except where the view holds
// something newer.
func (y *syncer) fill(q Query, snap Snapshot, started time.Time) {
	now := time.Now()
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.okAt.IsZero() && y.lastErr == nil {
		// Before the flusher's first round trip, the reads made on the
		// request path are all the view holds, and they are current.
		y.okAt = started
	}
	for k, byW := range snap.Counts {
		vc := y.counts[k]
		if vc == nil {
			vc = &viewCounts{used: now}
			y.counts[k] = vc
		}
		if !started.Before(vc.readAt) {
			vc.byW, vc.readAt = byW, started
		}
	}
	for _, n := range q.Markers {
		if n == MarkerGeneration {
			continue
		}
		vm := y.markers[n]
		if vm == nil {
			vm = &viewMarker{used: now}
			y.markers[n] = vm
		}
		if !started.Before(vm.readAt) {
			vm.val, vm.readAt = snap.Markers[n], started
		}
	}
	for _, u := range q.Baselines {
		vb := y.baselines[u]
		if vb == nil {
			vb = &viewBaseline{used: now}
			y.baselines[u] = vb
		}
		if !started.Before(vb.readAt) {
			vb.b, vb.readAt = snap.Baselines[u], started
		}
	}
}

// knownBlock is a block marker of marks the view holds, however old: when
// the store cannot be read, a block another replica made and this one has
// seen still applies (failing open lets the unknown through, not the
// known). Blocks that have ended by their until are skipped.
func (y *syncer) knownBlock(marks *[nMarks]string, now time.Time) (Block, bool) {
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, i := range [...]int{markBlockSession, markBlockUser} {
		vm := y.markers[marks[i]]
		if marks[i] == "" || vm == nil || vm.val == nil {
			continue
		}
		var b Block
		if json.Unmarshal(vm.val, &b) != nil || b.Reason == "" {
			b = Block{Reason: "anomaly_block"}
		}
		if b.Until.IsZero() || now.Before(b.Until) {
			return b, true
		}
	}
	return Block{}, false
}

// failed records that a read on the request path failed: the view is not
// trusted until the flusher's next round trip succeeds.
func (y *syncer) failed(err error) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.lastErr = err
}

// setLocal records a marker this instance wrote (val nil: deleted).
func (y *syncer) setLocal(name string, val []byte) {
	now := time.Now()
	y.mu.Lock()
	defer y.mu.Unlock()
	y.markers[name] = &viewMarker{val: val, used: now, readAt: now}
}

// addLocked buffers one observation under key k; y.mu is held. It reports
// false when the buffer is full (the observation is dropped and counted).
func (y *syncer) addLocked(k pendKey, s Subject, night bool, now time.Time, o Observation) bool {
	p := y.pend[k]
	if p == nil {
		if len(y.pend) >= maxPending {
			y.dropped++
			return false
		}
		p = &pending{s: s, night: night, paths: map[string]struct{}{}}
		y.pend[k] = p
	}
	if now.After(p.last) {
		p.last = now
	}
	if s.AuthTime.After(p.s.AuthTime) {
		p.s.AuthTime = s.AuthTime
	}
	p.c.Requests++
	p.c.Bytes += max(o.Bytes, 0)
	if o.Download {
		p.c.Downloads++
	}
	if o.Path != "" && len(p.paths) < maxPaths {
		p.paths[o.Path] = struct{}{}
	}
	return true
}

// addState buffers one observation and returns the store's state (see
// stateLocked; ErrStoreBackoff while the store is backed off) under one
// lock: Observe's path.
func (y *syncer) addState(s Subject, night bool, now time.Time, o Observation) error {
	k := pendKey{user: s.User, session: s.Session, night: night, period: period(now)}
	if s.User == "" {
		k.ip = s.IP
	}
	hung := y.d.storeHung()
	y.mu.Lock()
	defer y.mu.Unlock()
	y.addLocked(k, s, night, now, o)
	if hung {
		return ErrStoreBackoff
	}
	return y.stateLocked()
}

// stateLocked is the error Observe reports, besides the store being
// backed off: observations dropped from a full buffer, or the flusher's
// last round trip failed. y.mu is held.
func (y *syncer) stateLocked() error {
	if y.dropped > 0 {
		n := y.dropped
		y.dropped = 0
		return fmt.Errorf("%w: buffer full, %d observations dropped", ErrStore, n)
	}
	return y.lastErr
}

// loop flushes every SyncInterval until the detector closes, then once
// more (bounded) so that a graceful stop loses no counts.
func (y *syncer) loop() {
	defer y.d.stopped.Done()
	t := time.NewTicker(y.d.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-y.d.stop:
			y.flush(context.Background())
			return
		case <-t.C:
			y.flush(context.Background())
		}
	}
}

// flush sends the buffer and refreshes the view in one round trip
// (two when the marker generation changed), then judges the rules on the
// totals read back and cuts live requests of blocked subjects.
func (y *syncer) flush(ctx context.Context) {
	d := y.d
	if d.storeHung() {
		return
	}
	now := d.clock()
	wall := time.Now()
	y.mu.Lock()
	pend := y.pend
	if len(pend) > 0 {
		y.pend = map[pendKey]*pending{}
	}
	full := wall.Sub(y.lastFull) >= d.opts.ResyncInterval
	idle := len(pend) == 0 && len(y.counts) == 0 && len(y.markers) == 0
	y.mu.Unlock()
	if idle && d.Live() == 0 {
		return
	}
	// Oldest first: baselines fold hour by hour, rules judge in order.
	order := make([]*pending, 0, len(pend))
	for _, p := range pend {
		order = append(order, p)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].last.Before(order[j].last) })
	var tallies []Tally
	q := Query{Windows: d.windows, Markers: []string{MarkerGeneration}}
	users := map[string]bool{}
	for _, p := range order {
		uk := userKey(p.s)
		for _, k := range d.keys(p.s, p.night) {
			t := Tally{Key: k, Time: p.last, Counts: p.c}
			for path := range p.paths {
				t.Paths = append(t.Paths, path)
			}
			if d.baseline && k == uk {
				t.Baseline, t.Period = true, period(p.last)
			}
			tallies = append(tallies, t)
		}
		if d.baseline && !users[uk] {
			users[uk] = true
			q.Baselines = append(q.Baselines, uk)
		}
	}
	if full {
		y.fullQuery(&q, users, wall)
	}
	started := time.Now()
	snap, err := y.round(ctx, now, tallies, q)
	if err != nil {
		d.reportStoreErr("observe", err)
		return
	}
	if y.genChanged(snap) && !full {
		// A replica changed a block or step-up: re-read the whole view now
		// (the counters that made it block come with it).
		y.fill(q, snap, started)
		q2 := Query{Windows: d.windows, Markers: []string{MarkerGeneration}}
		y.fullQuery(&q2, map[string]bool{}, wall)
		started2 := time.Now()
		if s2, err := y.round(ctx, now, nil, q2); err == nil {
			y.fill(q2, s2, started2)
			snap.Markers = s2.Markers
			full = true
		}
	} else {
		y.fill(q, snap, started)
	}
	if full {
		y.mu.Lock()
		y.lastFull = wall
		y.mu.Unlock()
	}
	y.setGen(string(snap.Markers[MarkerGeneration]))
	for _, p := range order {
		sk := newSubjectKeys(p.s)
		ks := d.counterKeys(&sk, p.night)
		bu := ""
		if d.baseline {
			bu = sk.user()
		}
		var st state
		st.init(len(d.windows))
		st.fromSnapshot(snap, &ks, d.windows, nil, bu)
		// Store errors of the actions were reported by fire itself.
		_ = d.judge(ctx, p.s, &sk, p.last, p.night, &st)
	}
	y.cutBlocked()
}

// round is one bounded AddBatch; its outcome decides whether the view
// may be used.
func (y *syncer) round(ctx context.Context, now time.Time, tallies []Tally, q Query) (Snapshot, error) {
	sctx, cancel := y.d.bounded(ctx)
	snap, err := y.bs.AddBatch(sctx, now, tallies, q)
	cancel()
	y.mu.Lock()
	defer y.mu.Unlock()
	if err != nil {
		y.lastErr = fmt.Errorf("flush: %w", err)
		return snap, err
	}
	y.lastErr, y.okAt = nil, time.Now()
	return snap, nil
}

// genChanged reports whether the generation read in snap differs from
// the last one seen.
func (y *syncer) genChanged(snap Snapshot) bool {
	gen := string(snap.Markers[MarkerGeneration])
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.haveGen && gen != y.gen
}

func (y *syncer) setGen(gen string) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.gen, y.haveGen = gen, true
}

// fullQuery adds every entry of the view (dropping those idle for
// viewIdle) and the block markers of live requests to q.
func (y *syncer) fullQuery(q *Query, users map[string]bool, wall time.Time) {
	live := y.d.live.keys()
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, k := range live {
		if y.markers["block:"+k] == nil {
			y.markers["block:"+k] = &viewMarker{used: wall}
		}
	}
	for k, vc := range y.counts {
		if wall.Sub(vc.used) > viewIdle {
			delete(y.counts, k)
			continue
		}
		q.Keys = append(q.Keys, k)
	}
	for n, vm := range y.markers {
		if wall.Sub(vm.used) > viewIdle {
			delete(y.markers, n)
			continue
		}
		q.Markers = append(q.Markers, n)
	}
	for u, vb := range y.baselines {
		if wall.Sub(vb.used) > viewIdle {
			delete(y.baselines, u)
			continue
		}
		if !users[u] {
			q.Baselines = append(q.Baselines, u)
		}
	}
}

// cutBlocked cancels live requests whose user or session has a block in
// the view (made by another replica: this one's own cut at once).
func (y *syncer) cutBlocked() {
	keys := y.d.live.keys()
	if len(keys) == 0 {
		return
	}
	var cut []string
	y.mu.Lock()
	for _, k := range keys {
		if vm := y.markers["block:"+k]; vm != nil && vm.val != nil && !blockExpired(vm.val, y.d.clock()) {
			cut = append(cut, k)
		}
	}
	y.mu.Unlock()
	if len(cut) > 0 {
		y.d.live.cut(cut...)
	}
}

// blockExpired reports whether a block record says it is over (the view
// may hold it up to ResyncInterval after its TTL ended).
func blockExpired(raw []byte, now time.Time) bool {
	var b Block
	return json.Unmarshal(raw, &b) == nil && !b.Until.IsZero() && !now.Before(b.Until)
}
