package anomaly

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestSubjectKeys: the keys cut from one string are the keys the store
// has always used (userKey, sessionKey, the night prefix, marker names),
// and counterKeys counts the same keys in the same order as before.
func TestSubjectKeys(t *testing.T) {
	for _, s := range []Subject{
		{User: "ana", Session: "s1", IP: "192.0.2.1"},
		{User: "ana"},
		{IP: "2001:db8::1"},
		{IP: "192.0.2.7", Session: "anon-session"},
		{},
		{User: "üñí|cödé:with:colons", Session: "s:looks-like-a-key"},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			sk := newSubjectKeys(s)
			uk, ssk := userKey(s), sessionKey(s)
			want := subjectKeys{
				counter: [nSlots]string{uk, ssk, nightPrefix + uk, ""},
				marks:   [nMarks]string{"block:" + uk, "stepup:" + uk, "", ""},
			}
			if ssk != "" {
				want.counter[slotNightSession] = nightPrefix + ssk
				want.marks[markBlockSession], want.marks[markStepUpSession] = "block:"+ssk, "stepup:"+ssk
			}
			if sk != want {
				t.Fatalf("keys = %q, want %q", sk, want)
			}
			for _, c := range []struct{ perSess, nightly, night bool }{
				{false, false, false}, {true, false, false}, {false, true, true}, {true, true, true}, {true, true, false}, {true, false, true},
			} {
				d := &Detector{perSess: c.perSess, nightly: c.nightly}
				want := []string{uk}
				if c.perSess && ssk != "" {
					want = append(want, ssk)
				}
				if c.night && c.nightly {
					for _, k := range slices.Clone(want) {
						want = append(want, nightPrefix+k)
					}
				}
				if got := d.keys(s, c.night); !slices.Equal(got, want) {
					t.Errorf("%+v: keys = %q, want %q", c, got, want)
				}
			}
		})
	}
}

// TestLiveReqCovered: a live request is cut by its user's (or address's)
// key and its session's key, and by nothing else.
func TestLiveReqCovered(t *testing.T) {
	for _, tc := range []struct {
		s    Subject
		key  string
		want bool
	}{
		{Subject{User: "ana", Session: "s1"}, "u:ana", true},
		{Subject{User: "ana", Session: "s1"}, "s:s1", true},
		{Subject{User: "ana", Session: "s1"}, "u:an", false},
		{Subject{User: "ana", Session: "s1"}, "u:anab", false},
		{Subject{User: "ana", Session: "s1"}, "s:ana", false},
		{Subject{User: "ana", Session: "s1"}, "ip:192.0.2.1", false},
		{Subject{User: "ana", IP: "192.0.2.1"}, "ip:192.0.2.1", false},
		{Subject{IP: "192.0.2.1"}, "ip:192.0.2.1", true},
		{Subject{IP: "192.0.2.1"}, "u:", false},
		{Subject{IP: "192.0.2.1"}, "s:", false},
		{Subject{}, "ip:", true},
		{Subject{User: "ana"}, "", false},
		{Subject{User: "ana"}, "s:", false},
	} {
		r := liveReq{user: tc.s.User, session: tc.s.Session, ip: tc.s.IP}
		if got := r.covered(tc.key); got != tc.want {
			t.Errorf("%+v covered by %q = %v, want %v", tc.s, tc.key, got, tc.want)
		}
		// The same answer as comparing with the keys themselves.
		if old := tc.key != "" && (tc.key == userKey(tc.s) || tc.key == sessionKey(tc.s)); old != tc.want {
			t.Errorf("%+v %q: table disagrees with userKey/sessionKey", tc.s, tc.key)
		}
	}
}

// viaSnapshot hides that the store is a MemoryStore, so that the detector
// takes the path of every other store (Load/Add returning a Snapshot,
// calls bounded by StoreTimeout).
type viaSnapshot struct{ *MemoryStore }

// TestMemoryInPlaceMatchesSnapshot: the detector reading the MemoryStore
// in place judges exactly as it does through Snapshots: the same Risk for
// every subject after every step, and the same firings, over a day and a
// half of traffic with rules of every kind (night, per session, distinct
// paths, bytes, baseline) and their actions.
func TestMemoryInPlaceMatchesSnapshot(t *testing.T) {
	hk := mustZone(t, "Asia/Hong_Kong")
	clk := newClock(time.Date(2026, 12, 1, 20, 0, 0, 0, hk))
	rules := []Rule{
		{Name: "night-downloads", Night: true, Window: time.Hour, DownloadsOver: 30, Actions: []Action{ActionAlert, ActionBlockSession}, BlockFor: 20 * time.Minute},
		{Name: "session-paths", Per: PerSession, Window: 10 * time.Minute, DistinctPathsOver: 15, Actions: []Action{ActionStepUp}},
		{Name: "bytes", Window: 30 * time.Minute, BytesOver: 400_000, Actions: []Action{ActionAlert, ActionBlockUser}, BlockFor: 15 * time.Minute},
		{Name: "volume", Window: time.Hour, AboveBaseline: 2, BaselineFloor: 5, MinHistory: 6 * time.Hour, Actions: []Action{ActionAlert}},
		{Name: "night-session-burst", Night: true, Per: PerSession, Window: 5 * time.Minute, RequestsOver: 12, Actions: []Action{ActionStepUp}},
	}
	var recs [2]recorder
	var ds [2]*Detector
	for i, st := range []Store{NewMemoryStore(clk.Now), viaSnapshot{NewMemoryStore(clk.Now)}} {
		ds[i] = newDetector(t, Options{Zone: hk, Night: "22:00-06:00", Clock: clk.Now, Store: st, Rules: rules, RiskWindow: 45 * time.Minute, Hooks: recs[i].hooks()})
	}
	if ds[0].mem == nil || ds[1].mem != nil {
		t.Fatal("the detectors do not take the two paths")
	}
	subjects := []Subject{
		{User: "ana", Session: "a1"}, {User: "ana", Session: "a2"}, {User: "bob", Session: "b1"},
		{User: "bob"}, {IP: "198.51.100.4"}, {IP: "198.51.100.4", Session: "anon"},
	}
	ctx := t.Context()
	for step := range 36 * 12 { // every 5 minutes or so for a day and a half
		for i, s := range subjects {
			n := 1 + (step+i)%4
			if i == step/60%len(subjects) {
				n += 12 // one subject at a time is busy for five hours
			}
			for j := range n {
				o := Observation{Path: fmt.Sprintf("/p/%d", (step*7+j)%(10+i*3)), Bytes: int64(1000 * (1 + (j+i)%50)), Download: (j+step)%3 == 0}
				var errs [2]error
				for k, d := range ds {
					errs[k] = d.Observe(ctx, s, o)
				}
				if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
					t.Fatalf("step %d %+v: Observe = %v in place, %v via snapshots", step, s, errs[0], errs[1])
				}
			}
			clk.Advance(time.Duration(3+(step*31+i*17)%15) * time.Second)
		}
		for _, s := range subjects {
			r0, err0 := ds[0].Assess(ctx, s)
			r1, err1 := ds[1].Assess(ctx, s)
			if err0 != nil || err1 != nil || !reflect.DeepEqual(r0, r1) {
				t.Fatalf("step %d %+v:\nin place:       %+v %v\nvia snapshots:  %+v %v", step, s, r0, err0, r1, err1)
			}
		}
		clk.Advance(time.Duration(200+(step*13)%97) * time.Second)
	}
	got, want := recs[0].Records(), recs[1].Records()
	if len(got) != len(want) {
		t.Fatalf("%d firings in place, %d via snapshots", len(got), len(want))
	}
	rules_ := map[string]int{}
	for i := range got {
		got[i].ID, want[i].ID = "", ""
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("firing %d:\nin place:      %+v\nvia snapshots: %+v", i, got[i], want[i])
		}
		rules_[got[i].Rule]++
	}
	// The scenario exercises every rule, else it proves little.
	for _, r := range rules {
		if rules_[r.Name] == 0 {
			t.Errorf("rule %s never fired (firings %v)", r.Name, rules_)
		}
	}
}

// TestMemoryRequestAllocations: with the memory store, Assess and Observe
// of a known subject allocate only its keys (and the night flag), not
// maps, contexts or a string per key.
func TestMemoryRequestAllocations(t *testing.T) {
	clk := newClock(hkNight2am(t))
	d := newDetector(t, Options{Zone: mustZone(t, "Asia/Hong_Kong"), Night: "22:00-06:00", Clock: clk.Now, Rules: benchRules()})
	s := Subject{User: "ana", Session: "s1", IP: "192.0.2.1"}
	ctx := t.Context()
	for range 10 {
		_ = d.Observe(ctx, s, Observation{Path: "/p", Bytes: 10})
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = d.Assess(ctx, s) }); n > 2 {
		t.Errorf("Assess: %v allocations, want at most 2", n)
	}
	if n := testing.AllocsPerRun(200, func() { _ = d.Observe(ctx, s, Observation{Path: "/p", Bytes: 10}) }); n > 1 {
		t.Errorf("Observe: %v allocations, want at most 1", n)
	}
}

// TestMemoryReadMatchesLoad: what the MemoryStore reads in place for the
// detector is what Load returns, at many instants between random adds:
// every key (counted or not), window, marker (live, expired, absent) and
// baseline; and the counters are those of a naive model of the adds (the
// buckets inside the window, the paths last seen within it).
func TestMemoryReadMatchesLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(start)
	m := NewMemoryStore(clk.Now)
	windows := []time.Duration{time.Minute, 10 * time.Minute, time.Hour}
	subjects := []Subject{{User: "ana", Session: "a1"}, {User: "bob"}, {IP: "192.0.2.1", Session: "x"}}
	type added struct {
		at   time.Time
		inc  Increment
		keys []string
	}
	var log []added
	model := func(k string, now time.Time) []Counts {
		out := make([]Counts, len(windows))
		for wi, w := range windows {
			width := int64(bucketWidth(w))
			cur := now.UnixNano() / width
			paths := map[string]bool{}
			for _, a := range log {
				if !slices.Contains(a.keys, k) {
					continue
				}
				if idx := a.at.UnixNano() / width; idx > cur-Buckets && idx <= cur {
					out[wi].Requests++
					out[wi].Bytes += a.inc.Bytes
					if a.inc.Download {
						out[wi].Downloads++
					}
				}
				paths[a.inc.Path] = a.at.After(now.Add(-w))
			}
			for _, in := range paths {
				if in {
					out[wi].Paths++
				}
			}
		}
		return out
	}
	ctx := t.Context()
	for i := range 3000 {
		clk.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
		now := clk.Now()
		s := subjects[rng.IntN(len(subjects))]
		sk := newSubjectKeys(s)
		keys := compact(nil, sk.counter[:rng.IntN(nSlots)+1])
		inc := Increment{Keys: keys, Windows: windows, Bytes: int64(rng.IntN(5000)), Download: rng.IntN(3) == 0,
			Path: fmt.Sprintf("/p/%d", rng.IntN(80)), BaselineUser: sk.user(), Period: period(now)}
		if _, err := m.Add(ctx, now, inc, Query{}); err != nil {
			t.Fatal(err)
		}
		log = append(log, added{now, inc, keys})
		switch rng.IntN(40) {
		case 0:
			n := sk.marks[rng.IntN(nMarks)]
			if n != "" {
				_, _ = m.SetMarker(ctx, n, []byte(fmt.Sprint(i)), time.Duration(rng.IntN(120))*time.Second, false)
			}
		case 1:
			_, _ = m.FoldBaseline(ctx, sk.user(), func(b *Baseline, periods map[int64]Counts) *Baseline {
				if b == nil {
					return &Baseline{First: now.Unix(), Next: period(now)}
				}
				b.fold(periods, period(now), time.UTC, 0.25)
				return b
			})
		}
		if i%7 != 0 {
			continue
		}
		probe := now.Add(time.Duration(rng.IntN(120)) * time.Second)
		for _, s := range subjects {
			sk := newSubjectKeys(s)
			ks := sk.counter
			ks[rng.IntN(nSlots)] = "" // some slot not counted
			var got, want state
			got.init(len(windows))
			want.init(len(windows))
			m.readSubject(probe, &ks, windows, &sk.marks, sk.user(), &got)
			snap, err := m.Load(ctx, probe, Query{Keys: compact(nil, ks[:]), Windows: windows, Markers: compact(nil, sk.marks[:]), Baselines: []string{sk.user()}})
			if err != nil {
				t.Fatal(err)
			}
			want.fromSnapshot(snap, &ks, windows, &sk.marks, sk.user())
			for slot := range nSlots {
				if !slices.Equal(got.row(slot), want.row(slot)) {
					t.Fatalf("%d %+v slot %d: read %+v, Load %+v", i, s, slot, got.row(slot), want.row(slot))
				}
				if ks[slot] == "" {
					continue
				}
				if m := model(ks[slot], probe); !slices.Equal(want.row(slot), m) {
					t.Fatalf("%d %q: Load %+v, model %+v", i, ks[slot], want.row(slot), m)
				}
			}
			if got.has != want.has || !reflect.DeepEqual(got.marks, want.marks) {
				t.Fatalf("%d %+v markers: read %v %q, Load %v %q", i, s, got.has, got.marks, want.has, want.marks)
			}
			if !reflect.DeepEqual(got.baseline(), want.baseline()) {
				t.Fatalf("%d %+v: baselines differ", i, s)
			}
		}
	}
}
