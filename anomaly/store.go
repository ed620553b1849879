package anomaly

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// ErrStore wraps every failure to reach or read the state store.
var ErrStore = errors.New("anomaly store unavailable")

// Buckets is how many time buckets a window is split into: sliding sums
// are exact to window/Buckets.
const Buckets = 60

// bucketWidth is the width of one bucket of window w (at least 1s).
func bucketWidth(w time.Duration) time.Duration {
	b := w / Buckets
	if b < time.Second {
		b = time.Second
	}
	return b
}

// Increment is one observation to add to the counters of Keys in every
// window, and to the current hour of the user's baseline.
type Increment struct {
	Keys     []string
	Windows  []time.Duration
	Bytes    int64
	Download bool
	Path     string // "" is not counted as a distinct path
	// BaselineUser, when set, also adds the observation to that user's
	// counts for hour Period.
	BaselineUser string
	Period       int64
}

// Tally is what one counter key saw since the last flush of the
// detector's buffer: Requests observations totalling Bytes and Downloads,
// the distinct Paths among them, counted at Time (the newest observation;
// zero: the flush's time). With Baseline set the same counts also go to
// the key's baseline hour Period (the user key only).
type Tally struct {
	Key      string
	Time     time.Time
	Counts   Counts // Paths is ignored: Paths below are added
	Paths    []string
	Baseline bool
	Period   int64
}

// Batcher is implemented by shared stores that can apply many tallies and
// read a Query in one round trip (RedisStore). With such a store the
// detector keeps counting and blocks off the request path: Observe
// buffers, a background flusher sends the buffer every SyncInterval, and
// Assess answers from the state the flusher read back.
type Batcher interface {
	// AddBatch applies every tally (to the windows of q), then reads q.
	AddBatch(ctx context.Context, now time.Time, tallies []Tally, q Query) (Snapshot, error)
}

// MarkerGeneration names a counter marker that a Batcher store increments
// whenever a block or step-up marker is set or deleted, so that replicas
// notice with one cheap read per flush that they must re-read markers.
const MarkerGeneration = "gen:markers"

// Query says which state to read.
type Query struct {
	Keys      []string        // counter keys
	Windows   []time.Duration // every window of every key
	Markers   []string        // marker names (blocks, step-up)
	Baselines []string        // users whose baseline to return
}

// Snapshot is state read at one instant.
type Snapshot struct {
	Counts    map[string]map[time.Duration]Counts
	Markers   map[string][]byte // only markers that exist
	Baselines map[string]*Baseline
}

// Store holds counters, baselines and markers (blocks, step-up requests,
// fired rules). MemoryStore serves one instance; RedisStore lets replicas
// share everything. Every method is bounded in time; errors wrap ErrStore.
type Store interface {
	// Add applies inc and then reads q, in one round trip where possible.
	Add(ctx context.Context, now time.Time, inc Increment, q Query) (Snapshot, error)
	// Load reads q.
	Load(ctx context.Context, now time.Time, q Query) (Snapshot, error)
	// SetMarker stores val under name for ttl. With onlyNew it does nothing
	// when name exists, and reports whether it stored.
	SetMarker(ctx context.Context, name string, val []byte, ttl time.Duration, onlyNew bool) (bool, error)
	// SetMarkerLonger stores val under name for ttl unless name already
	// lasts at least that long, atomically (a block is never shortened,
	// whoever writes at the same moment), and reports whether it stored.
	SetMarkerLonger(ctx context.Context, name string, val []byte, ttl time.Duration) (bool, error)
	// DeleteMarker removes name and reports whether it existed.
	DeleteMarker(ctx context.Context, name string) (bool, error)
	// Markers returns every live marker whose name starts with prefix.
	Markers(ctx context.Context, prefix string) (map[string][]byte, error)
	// FoldBaseline atomically updates user's baseline: fn receives the
	// stored baseline (nil if none) and the per-hour counts not yet folded,
	// and returns the new baseline; the store then forgets the counts of
	// periods before its Next.
	FoldBaseline(ctx context.Context, user string, fn func(b *Baseline, periods map[int64]Counts) *Baseline) (*Baseline, error)
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	// Shared reports whether other instances may write the same state.
	Shared() bool
}

// MemoryStore keeps state in this process: fast, lost on restart, not
// shared between replicas. Its calls never wait but for its own lock, so
// the detector does not bound them with Options.StoreTimeout, and reads
// it in place for Assess and Observe instead of through Load and Add.
type MemoryStore struct {
	clock     func() time.Time // judges marker lifetimes
	mu        sync.Mutex
	series    map[string]*memSeries
	markers   map[string]memMarker
	baselines map[string]*memBaseline
	ops       int
}

type memMarker struct {
	val   []byte
	until time.Time
}

type memBaseline struct {
	b       *Baseline
	periods map[int64]Counts
}

type memSeries struct {
	rings map[time.Duration]*ring
	paths map[string]time.Time
	last  time.Time
}

type slot struct {
	idx int64
	c   Counts
}

type ring struct {
	width time.Duration
	slots [Buckets]slot
}

// maxPaths bounds the distinct paths remembered per key; beyond it the
// count stays at maxPaths, which is more than any sane threshold.
const maxPaths = 4096

// NewMemoryStore returns an empty in-process store whose markers live by
// clock (nil: time.Now).
func NewMemoryStore(clock func() time.Time) *MemoryStore {
	if clock == nil {
		clock = time.Now
	}
	return &MemoryStore{clock: clock, series: map[string]*memSeries{}, markers: map[string]memMarker{}, baselines: map[string]*memBaseline{}}
}

// Shared is false: nobody else sees this state.
func (m *MemoryStore) Shared() bool { return false }

// Ping always succeeds.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// Add applies inc, then reads q.
func (m *MemoryStore) Add(_ context.Context, now time.Time, inc Increment, q Query) (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(now, inc.Keys, inc)
	return m.load(now, q), nil
}

// add applies inc to keys (inc.Keys is not read: keys, passed apart, do
// not escape); m.mu is held.
func (m *MemoryStore) add(now time.Time, keys []string, inc Increment) {
	m.ops++
	if m.ops%4096 == 0 {
		m.sweep(now, inc.Windows)
	}
	for _, k := range keys {
		s := m.series[k]
		if s == nil {
			s = &memSeries{rings: map[time.Duration]*ring{}, paths: map[string]time.Time{}}
			// The key may be cut from a longer string (subjectKeys):
			// keep only its own bytes alive.
			m.series[strings.Clone(k)] = s
		}
		s.last = now
		for _, w := range inc.Windows {
			r := s.rings[w]
			if r == nil {
				r = &ring{width: bucketWidth(w)}
				s.rings[w] = r
			}
			idx := now.UnixNano() / int64(r.width)
			sl := &r.slots[idx%Buckets]
			if sl.idx != idx {
				*sl = slot{idx: idx}
			}
			sl.c.Requests++
			sl.c.Bytes += inc.Bytes
			if inc.Download {
				sl.c.Downloads++
			}
		}
		if inc.Path != "" {
			if _, ok := s.paths[inc.Path]; !ok && len(s.paths) >= maxPaths {
				prunePaths(s.paths, now.Add(-maxWindow(inc.Windows)))
			}
			if _, ok := s.paths[inc.Path]; ok || len(s.paths) < maxPaths {
				s.paths[inc.Path] = now
			}
		}
	}
	if inc.BaselineUser != "" {
		mb := m.baselines[inc.BaselineUser]
		if mb == nil {
			mb = &memBaseline{periods: map[int64]Counts{}}
			m.baselines[strings.Clone(inc.BaselineUser)] = mb
		}
		c := mb.periods[inc.Period]
		c.Requests++
		c.Bytes += inc.Bytes
		if inc.Download {
			c.Downloads++
		}
		mb.periods[inc.Period] = c
	}
}

// Load reads q.
func (m *MemoryStore) Load(_ context.Context, now time.Time, q Query) (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load(now, q), nil
}

// inlineWindows is how many windows sum sums without allocating.
const inlineWindows = 8

func (m *MemoryStore) load(now time.Time, q Query) Snapshot {
	snap := Snapshot{Counts: map[string]map[time.Duration]Counts{}, Markers: map[string][]byte{}, Baselines: map[string]*Baseline{}}
	var buf [inlineWindows]Counts
	out := buf[:0]
	if len(q.Windows) > len(buf) {
		out = make([]Counts, 0, len(q.Windows))
	}
	out = out[:len(q.Windows)]
	for _, k := range q.Keys {
		clear(out)
		if s := m.series[k]; s != nil {
			s.sum(now, q.Windows, out)
		}
		byW := make(map[time.Duration]Counts, len(q.Windows))
		for wi, w := range q.Windows {
			byW[w] = out[wi]
		}
		snap.Counts[k] = byW
	}
	mnow := m.clock()
	for _, n := range q.Markers {
		if val, ok := m.marker(n, mnow); ok {
			snap.Markers[n] = val
		}
	}
	for _, u := range q.Baselines {
		if mb := m.baselines[u]; mb != nil && mb.b != nil {
			b := *mb.b
			snap.Baselines[u] = &b
		}
	}
	return snap
}

// marker returns the live marker n, forgetting it if it is dead; m.mu is
// held.
func (m *MemoryStore) marker(n string, mnow time.Time) ([]byte, bool) {
	mk, ok := m.markers[n]
	if !ok {
		return nil, false
	}
	if !mnow.Before(mk.until) {
		delete(m.markers, n)
		return nil, false
	}
	return mk.val, true
}

// sum adds s's counters in each of windows at now to out (one per
// window): the buckets of the window's ring still inside it, and the
// distinct paths seen within it.
func (s *memSeries) sum(now time.Time, windows []time.Duration, out []Counts) {
	for wi, w := range windows {
		r := s.rings[w]
		if r == nil {
			continue
		}
		cur := now.UnixNano() / int64(r.width)
		c := &out[wi]
		for i := range r.slots {
			if sl := &r.slots[i]; sl.idx > cur-Buckets && sl.idx <= cur {
				c.Requests += sl.c.Requests
				c.Bytes += sl.c.Bytes
				c.Downloads += sl.c.Downloads
			}
		}
	}
	if len(s.paths) == 0 {
		return
	}
	// One pass over the paths for every window.
	var buf [inlineWindows]time.Time
	since := buf[:0]
	for _, w := range windows {
		since = append(since, now.Add(-w))
	}
	for _, seen := range s.paths {
		for wi := range since {
			if seen.After(since[wi]) {
				out[wi].Paths++
			}
		}
	}
}

// readSubject is Load for the detector's Assess without a Snapshot: it
// fills st with the counters of keys (by slot, "" skipped) in windows,
// the live markers named in marks (by index, "" skipped) and user's
// baseline ("": none).
func (m *MemoryStore) readSubject(now time.Time, keys *[nSlots]string, windows []time.Duration, marks *[nMarks]string, user string, st *state) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.read(now, keys, windows, marks, user, st)
}

// addSubject is Add for the detector's Observe: it applies inc to the
// keys of adds (inc.Keys is not read), then reads like readSubject,
// without markers.
func (m *MemoryStore) addSubject(now time.Time, adds []string, inc Increment, keys *[nSlots]string, windows []time.Duration, user string, st *state) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(now, adds, inc)
	m.read(now, keys, windows, nil, user, st)
}

// read fills st (see readSubject); m.mu is held.
func (m *MemoryStore) read(now time.Time, keys *[nSlots]string, windows []time.Duration, marks *[nMarks]string, user string, st *state) {
	for slot, k := range keys {
		if k == "" {
			continue
		}
		if s := m.series[k]; s != nil {
			s.sum(now, windows, st.row(slot))
		}
	}
	if marks != nil {
		mnow := m.clock()
		for i, n := range marks {
			if n != "" {
				st.marks[i], st.has[i] = m.marker(n, mnow)
			}
		}
	}
	if user != "" {
		if mb := m.baselines[user]; mb != nil && mb.b != nil {
			st.bl, st.haveBl = *mb.b, true
		}
	}
}

func prunePaths(paths map[string]time.Time, before time.Time) {
	for p, t := range paths {
		if !t.After(before) {
			delete(paths, p)
		}
	}
}

func maxWindow(ws []time.Duration) time.Duration {
	var m time.Duration
	for _, w := range ws {
		m = max(m, w)
	}
	return m
}

// sweep forgets keys idle for longer than every window, and dead markers.
func (m *MemoryStore) sweep(now time.Time, windows []time.Duration) {
	before := now.Add(-maxWindow(windows))
	for k, s := range m.series {
		if s.last.Before(before) {
			delete(m.series, k)
		} else {
			prunePaths(s.paths, before)
		}
	}
	mnow := m.clock()
	for n, mk := range m.markers {
		if !mnow.Before(mk.until) {
			delete(m.markers, n)
		}
	}
}

// SetMarker stores val under name for ttl.
func (m *MemoryStore) SetMarker(_ context.Context, name string, val []byte, ttl time.Duration, onlyNew bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	if mk, ok := m.markers[name]; ok && onlyNew && now.Before(mk.until) {
		return false, nil
	}
	m.markers[name] = memMarker{val: append([]byte(nil), val...), until: now.Add(ttl)}
	return true, nil
}

// SetMarkerLonger stores val unless name already lasts at least ttl.
func (m *MemoryStore) SetMarkerLonger(_ context.Context, name string, val []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	until := now.Add(ttl)
	if mk, ok := m.markers[name]; ok && now.Before(mk.until) && !mk.until.Before(until) {
		return false, nil
	}
	m.markers[name] = memMarker{val: append([]byte(nil), val...), until: until}
	return true, nil
}

// DeleteMarker removes name.
func (m *MemoryStore) DeleteMarker(_ context.Context, name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mk, ok := m.markers[name]
	delete(m.markers, name)
	return ok && m.clock().Before(mk.until), nil
}

// Markers returns live markers under prefix.
func (m *MemoryStore) Markers(_ context.Context, prefix string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	out := map[string][]byte{}
	for n, mk := range m.markers {
		if strings.HasPrefix(n, prefix) && now.Before(mk.until) {
			out[n] = mk.val
		}
	}
	return out, nil
}

// FoldBaseline updates user's baseline under the store's lock.
func (m *MemoryStore) FoldBaseline(_ context.Context, user string, fn func(b *Baseline, periods map[int64]Counts) *Baseline) (*Baseline, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mb := m.baselines[user]
	if mb == nil {
		mb = &memBaseline{periods: map[int64]Counts{}}
		m.baselines[user] = mb
	}
	var cur *Baseline
	if mb.b != nil {
		c := *mb.b
		cur = &c
	}
	nb := fn(cur, mb.periods)
	if nb == nil {
		return cur, nil
	}
	mb.b = nb
	for p := range mb.periods {
		if p < nb.Next {
			delete(mb.periods, p)
		}
	}
	c := *nb
	return &c, nil
}
