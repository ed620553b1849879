package anomaly

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrState wraps every failure to read a saved memory-store state.
var ErrState = errors.New("anomaly state unreadable")

// stateVersion is the format of SaveState's document.
const stateVersion = 1

// maxStateBytes bounds what LoadState reads: far above any real state,
// small enough that a wrong file cannot exhaust memory.
const maxStateBytes = 1 << 30

// savedState is the document SaveState writes: plain data, one entry per
// key, without the store's maps of pointers.
type savedState struct {
	Version   int             `json:"version"`
	Saved     time.Time       `json:"saved"`
	Series    []savedSeries   `json:"series"`
	Markers   []savedMarker   `json:"markers"`
	Baselines []savedBaseline `json:"baselines"`
}

type savedSeries struct {
	Key   string           `json:"key"`
	Last  time.Time        `json:"last"`
	Rings []savedRing      `json:"rings"`
	Paths map[string]int64 `json:"paths,omitempty"` // path -> unix nanoseconds last seen
}

type savedRing struct {
	Window time.Duration `json:"window"`
	Slots  []savedSlot   `json:"slots"`
}

type savedSlot struct {
	Idx int64  `json:"idx"`
	C   Counts `json:"c"`
}

type savedMarker struct {
	Name  string    `json:"name"`
	Value []byte    `json:"value"`
	Until time.Time `json:"until"`
}

type savedBaseline struct {
	User     string           `json:"user"`
	Baseline *Baseline        `json:"baseline,omitempty"`
	Periods  map[int64]Counts `json:"periods,omitempty"`
}

// persistentMarker reports whether a marker belongs in a saved state.
// Blocks do not: the signed audit log is their record, and restoring one
// from here could revive a block an operator lifted after the last save.
func persistentMarker(name string) bool { return !strings.HasPrefix(name, "block:") }

// SaveState writes the store's counters, baselines and markers (step-up
// requests and fired-rule markers; not blocks, see persistentMarker) to w
// as one JSON document, so that a single instance keeps its history over a
// restart (LoadState). Under the store's lock it lists the keys and copies
// the markers, then copies the keys a chunk at a time, and encodes after
// releasing it: a request waits for the listing (one pass over the key
// names, ≈ 7 ms at 200 000 users) or one chunk's copy, never for the
// whole state or the encoding. Keys are copied at slightly different
// instants; for detection state that is as good as one snapshot.
func (m *MemoryStore) SaveState(w io.Writer) error {
	st := m.copyState()
	enc := json.NewEncoder(w)
	if err := enc.Encode(st); err != nil {
		return fmt.Errorf("save anomaly state: %w", err)
	}
	return nil
}

// saveChunk is how many keys one lock hold copies.
const saveChunk = 64

func (m *MemoryStore) copyState() savedState {
	m.mu.Lock()
	now := m.clock()
	st := savedState{Version: stateVersion, Saved: now.UTC(), Markers: []savedMarker{}}
	seriesKeys := make([]string, 0, len(m.series))
	for k := range m.series {
		seriesKeys = append(seriesKeys, k)
	}
	users := make([]string, 0, len(m.baselines))
	for u := range m.baselines {
		users = append(users, u)
	}
	for n, mk := range m.markers {
		if persistentMarker(n) && now.Before(mk.until) {
			st.Markers = append(st.Markers, savedMarker{Name: n, Value: mk.val, Until: mk.until.UTC()})
		}
	}
	m.mu.Unlock()

	st.Series = make([]savedSeries, 0, len(seriesKeys))
	for i := 0; i < len(seriesKeys); i += saveChunk {
		m.mu.Lock()
		for _, k := range seriesKeys[i:min(i+saveChunk, len(seriesKeys))] {
			if s := m.series[k]; s != nil { // swept meanwhile: gone
				st.Series = append(st.Series, s.saved(k))
			}
		}
		m.mu.Unlock()
	}
	st.Baselines = make([]savedBaseline, 0, len(users))
	for i := 0; i < len(users); i += saveChunk {
		m.mu.Lock()
		for _, u := range users[i:min(i+saveChunk, len(users))] {
			if mb := m.baselines[u]; mb != nil {
				st.Baselines = append(st.Baselines, mb.saved(u))
			}
		}
		m.mu.Unlock()
	}
	return st
}

// saved copies one series; the store's lock is held.
func (s *memSeries) saved(k string) savedSeries {
	ss := savedSeries{Key: k, Last: s.last.UTC()}
	for w, r := range s.rings {
		sr := savedRing{Window: w}
		for _, sl := range r.slots {
			if sl.c != (Counts{}) {
				sr.Slots = append(sr.Slots, savedSlot{Idx: sl.idx, C: sl.c})
			}
		}
		if len(sr.Slots) > 0 {
			ss.Rings = append(ss.Rings, sr)
		}
	}
	if len(s.paths) > 0 {
		ss.Paths = make(map[string]int64, len(s.paths))
		for p, t := range s.paths {
			ss.Paths[p] = t.UnixNano()
		}
	}
	return ss
}

// saved copies one baseline; the store's lock is held.
func (mb *memBaseline) saved(u string) savedBaseline {
	sb := savedBaseline{User: u}
	if mb.b != nil {
		b := *mb.b
		sb.Baseline = &b
	}
	if len(mb.periods) > 0 {
		sb.Periods = make(map[int64]Counts, len(mb.periods))
		for p, c := range mb.periods {
			sb.Periods[p] = c
		}
	}
	return sb
}

// LoadState reads a document SaveState wrote and adds it to the store:
// counters add to what the store already counted, a saved baseline
// replaces an absent one, markers dead by the store's clock and blocks are
// skipped. A document that is not a state of this version is refused
// whole (ErrState), leaving the store as it was.
func (m *MemoryStore) LoadState(r io.Reader) error {
	dec := json.NewDecoder(io.LimitReader(r, maxStateBytes))
	var st savedState
	if err := dec.Decode(&st); err != nil {
		return decodeErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil || isFormatErr(err) {
			return fmt.Errorf("%w: data after the document", ErrState)
		}
		return decodeErr(err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("%w: version %d (this Gatehouse reads %d)", ErrState, st.Version, stateVersion)
	}
	if err := st.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	for _, ss := range st.Series {
		s := m.series[ss.Key]
		if s == nil {
			s = &memSeries{rings: map[time.Duration]*ring{}, paths: map[string]time.Time{}}
			m.series[ss.Key] = s
		}
		if ss.Last.After(s.last) {
			s.last = ss.Last
		}
		for _, sr := range ss.Rings {
			rg := s.rings[sr.Window]
			if rg == nil {
				rg = &ring{width: bucketWidth(sr.Window)}
				s.rings[sr.Window] = rg
			}
			for _, sl := range sr.Slots {
				cur := &rg.slots[sl.Idx%Buckets]
				switch {
				case cur.idx == sl.Idx:
					cur.c = cur.c.plus(sl.C)
				case cur.idx < sl.Idx:
					*cur = slot{idx: sl.Idx, c: sl.C}
				}
			}
		}
		for p, ns := range ss.Paths {
			t := time.Unix(0, ns)
			if old, ok := s.paths[p]; (!ok && len(s.paths) < maxPaths) || (ok && t.After(old)) {
				s.paths[p] = t
			}
		}
	}
	for _, sm := range st.Markers {
		if !persistentMarker(sm.Name) || !now.Before(sm.Until) {
			continue
		}
		if _, ok := m.markers[sm.Name]; !ok {
			m.markers[sm.Name] = memMarker{val: sm.Value, until: sm.Until}
		}
	}
	for _, sb := range st.Baselines {
		mb := m.baselines[sb.User]
		if mb == nil {
			mb = &memBaseline{periods: map[int64]Counts{}}
			m.baselines[sb.User] = mb
		}
		if mb.b == nil && sb.Baseline != nil {
			b := *sb.Baseline
			mb.b = &b
		}
		for p, c := range sb.Periods {
			if mb.b != nil && p < mb.b.Next {
				continue // already folded into the bands
			}
			mb.periods[p] = mb.periods[p].plus(c)
		}
	}
	return nil
}

// decodeErr tells a document that is not a state (ErrState) from a
// failure to read it at all (a disk error, a directory), which is not the
// document's fault and must not get it thrown away.
func decodeErr(err error) error {
	if isFormatErr(err) {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return fmt.Errorf("read anomaly state: %w", err)
}

func isFormatErr(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// check refuses a document that would corrupt the store: keys missing,
// windows without a ring, negative counts, bucket indexes from before the
// epoch.
func (st *savedState) check() error {
	for i, ss := range st.Series {
		if ss.Key == "" {
			return fmt.Errorf("series[%d]: no key", i)
		}
		for j, sr := range ss.Rings {
			if sr.Window <= 0 {
				return fmt.Errorf("series[%d].rings[%d]: window %v", i, j, sr.Window)
			}
			for _, sl := range sr.Slots {
				if sl.Idx < 0 || !sl.C.valid() {
					return fmt.Errorf("series[%d].rings[%d]: bad slot %+v", i, j, sl)
				}
			}
		}
		if len(ss.Paths) > maxPaths {
			return fmt.Errorf("series[%d]: %d paths (at most %d)", i, len(ss.Paths), maxPaths)
		}
	}
	for i, sm := range st.Markers {
		if sm.Name == "" {
			return fmt.Errorf("markers[%d]: no name", i)
		}
	}
	for i, sb := range st.Baselines {
		if sb.User == "" {
			return fmt.Errorf("baselines[%d]: no user", i)
		}
		for p, c := range sb.Periods {
			if p < 0 || !c.valid() {
				return fmt.Errorf("baselines[%d]: bad period %d", i, p)
			}
		}
		if b := sb.Baseline; b != nil {
			for h, band := range b.Bands {
				if band.Samples < 0 || band.Requests < 0 || band.Bytes < 0 || band.Downloads < 0 {
					return fmt.Errorf("baselines[%d]: bad band %d", i, h)
				}
			}
		}
	}
	return nil
}

// maxCount bounds a loaded or merged count, leaving headroom for the
// store's own increments to never wrap.
const maxCount = 1 << 62

func (c Counts) valid() bool {
	ok := func(n int64) bool { return n >= 0 && n <= maxCount }
	return ok(c.Requests) && ok(c.Bytes) && ok(c.Downloads) && ok(c.Paths)
}

// plus adds o to c, saturating: merged counts never wrap negative (which
// the next LoadState would refuse, losing the whole state).
func (c Counts) plus(o Counts) Counts {
	return Counts{Requests: satAdd(c.Requests, o.Requests), Bytes: satAdd(c.Bytes, o.Bytes),
		Downloads: satAdd(c.Downloads, o.Downloads), Paths: satAdd(c.Paths, o.Paths)}
}

// satAdd adds two counts of at most maxCount, stopping at maxCount.
func satAdd(a, b int64) int64 {
	if a+b > maxCount { // no overflow: both are at most 2^62
		return maxCount
	}
	return a + b
}
