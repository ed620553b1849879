package anomaly

import (
	"math"
	"testing"
	"time"
)

func TestBaselineFold(t *testing.T) {
	hk := mustZone(t, "Asia/Hong_Kong")
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, hk)
	p0 := period(start)
	b := &Baseline{First: start.Unix(), Next: p0}
	// Day 1: 10 requests at 09:00, idle otherwise.
	b.fold(map[int64]Counts{p0 + 9: {Requests: 10}}, p0+24, hk, 0.5)
	if got := b.Bands[9]; got.Requests != 10 || got.Samples != 1 {
		t.Fatalf("band 9 after day 1 = %+v", got)
	}
	if got := b.Bands[3]; got.Requests != 0 || got.Samples != 1 {
		t.Fatalf("idle band 3 = %+v", got)
	}
	// Day 2: 20 at 09:00 -> EWMA 0.5*20 + 0.5*10 = 15.
	b.fold(map[int64]Counts{p0 + 33: {Requests: 20}}, p0+48, hk, 0.5)
	if got := b.Bands[9]; got.Requests != 15 || got.Samples != 2 {
		t.Fatalf("band 9 after day 2 = %+v", got)
	}
	// A month away folds at most a week of zeros.
	b.fold(nil, p0+48+30*24, hk, 0.5)
	if got := b.Bands[9]; got.Samples != 9 || math.Abs(got.Requests-15/128.0) > 1e-9 {
		t.Fatalf("band 9 after a month idle = %+v", got)
	}
	if b.Next != p0+48+30*24 {
		t.Fatalf("next = %d", b.Next)
	}
}

// TestAboveBaseline: a user who usually makes ~100 requests an hour at
// 10:00 is flagged at 5x that, not at 3x; a new user is never judged.
func TestAboveBaseline(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testAboveBaseline(t, nil) })
	t.Run("redis", func(t *testing.T) { testAboveBaseline(t, redisStore(t, startRedis(t).Addr)) })
}

func testAboveBaseline(t *testing.T, store Store) {
	hk := mustZone(t, "Asia/Hong_Kong")
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, hk)
	clk := newClock(start)
	rec := &recorder{}
	rule := Rule{Name: "unusual-volume", Window: time.Hour, AboveBaseline: 5, MinHistory: 7 * 24 * time.Hour, Actions: []Action{ActionAlert, ActionStepUp}}
	d := newDetector(t, Options{Zone: hk, Clock: clk.Now, Hooks: rec.hooks(), Rules: []Rule{rule}, Store: store})
	ana := Subject{User: "ana", Session: "s"}
	ctx := t.Context()
	observeN := func(s Subject, n int, spread time.Duration) {
		t.Helper()
		for range n {
			if err := d.Observe(ctx, s, Observation{Path: "/"}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(spread / time.Duration(n))
		}
		settle(d)
	}
	// Ten days of 100 requests between 10:00 and 10:30.
	for day := range 10 {
		clk.Set(start.Add(time.Duration(day) * 24 * time.Hour))
		observeN(ana, 100, 30*time.Minute)
	}
	// A new user's burst on day 10: no history, no flag.
	newbie := Subject{User: "newbie"}
	observeN(newbie, 1000, 10*time.Minute)
	if n := len(rec.Records()); n != 0 {
		t.Fatalf("fired %d times during normal days / for a new user: %+v", n, rec.Records())
	}
	r, err := d.Assess(ctx, newbie)
	if err != nil || contains(r.Flags, FlagUnusualVolume) {
		t.Fatalf("new user flagged: %+v %v", r, err)
	}
	// Day 11: 300 requests (3x) — fine; then 250 more (5.5x) — unusual.
	clk.Set(start.Add(10 * 24 * time.Hour))
	observeN(ana, 300, 20*time.Minute)
	if n := len(rec.Records()); n != 0 {
		t.Fatalf("3x the baseline fired")
	}
	observeN(ana, 250, 10*time.Minute)
	recs := rec.Records()
	if len(recs) != 1 {
		t.Fatalf("5.5x the baseline: %d records", len(recs))
	}
	if !contains(recs[0].Flags, FlagUnusualVolume) || recs[0].Threshold < 450 || recs[0].Threshold > 550 || recs[0].Counts.Requests <= 500 {
		t.Errorf("record = %+v", recs[0])
	}
	r, err = d.Assess(ctx, ana)
	if err != nil || !r.StepUp || !contains(r.Flags, FlagUnusualVolume) {
		t.Errorf("risk = %+v %v", r, err)
	}
}

// TestBaselineFloor: a user idle at 03:00 is not "unusual" for a handful of
// requests at 03:00.
func TestBaselineFloor(t *testing.T) {
	hk := mustZone(t, "Asia/Hong_Kong")
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, hk)
	clk := newClock(start)
	rec := &recorder{}
	d := newDetector(t, Options{Zone: hk, Clock: clk.Now, Hooks: rec.hooks(),
		Rules: []Rule{{Name: "u", Window: time.Hour, AboveBaseline: 5, MinHistory: 24 * time.Hour, Actions: []Action{ActionAlert}}}})
	s := Subject{User: "ana"}
	for day := range 3 {
		clk.Set(start.Add(time.Duration(day) * 24 * time.Hour))
		_ = d.Observe(t.Context(), s, Observation{})
	}
	clk.Set(time.Date(2026, 11, 4, 3, 0, 0, 0, hk))
	for range 30 {
		_ = d.Observe(t.Context(), s, Observation{})
	}
	if n := len(rec.Records()); n != 0 {
		t.Fatalf("idle band flagged 30 requests: %d", n)
	}
	for range 300 {
		_ = d.Observe(t.Context(), s, Observation{})
	}
	if n := len(rec.Records()); n != 1 {
		t.Fatalf("330 requests at 03:00 (floor 60/h x5): %d records", n)
	}
}
