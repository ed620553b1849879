package anomaly

import (
	"errors"
	"testing"
	"time"
)

func TestParseNight(t *testing.T) {
	for _, tc := range []struct {
		in         string
		start, end int
		err        bool
	}{
		{"22:00-06:00", 22 * 60, 6 * 60, false},
		{" 9:30 - 17:45 ", 9*60 + 30, 17*60 + 45, false},
		{"00:00-24:00", 0, 24 * 60, false},
		{"22:00", 0, 0, true},
		{"22:00-22:00", 0, 0, true},
		{"25:00-06:00", 0, 0, true},
		{"22:60-06:00", 0, 0, true},
		{"24:30-06:00", 0, 0, true},
		{"aa:bb-cc:dd", 0, 0, true},
		{"-1:00-06:00", 0, 0, true},
	} {
		n, err := ParseNight(tc.in, time.UTC)
		if tc.err {
			if !errors.Is(err, ErrBadNight) {
				t.Errorf("ParseNight(%q) err = %v, want ErrBadNight", tc.in, err)
			}
			continue
		}
		if err != nil || n.Start != tc.start || n.End != tc.end {
			t.Errorf("ParseNight(%q) = %+v, %v", tc.in, n, err)
		}
	}
}

func TestNightContainsHongKong(t *testing.T) {
	hk := mustZone(t, "Asia/Hong_Kong")
	n, err := ParseNight("22:00-06:00", hk)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h, m  int
		night bool
	}{
		{21, 59, false}, {22, 0, true}, {23, 59, true}, {0, 0, true}, {2, 0, true}, {5, 59, true}, {6, 0, false}, {12, 0, false},
	} {
		at := time.Date(2026, 12, 3, tc.h, tc.m, 0, 0, hk)
		if got := n.Contains(at); got != tc.night {
			t.Errorf("%02d:%02d HKT night = %v, want %v", tc.h, tc.m, got, tc.night)
		}
		// The same instant seen from UTC is judged on Hong Kong's clock.
		if got := n.Contains(at.UTC()); got != tc.night {
			t.Errorf("%02d:%02d HKT (as UTC) night = %v, want %v", tc.h, tc.m, got, tc.night)
		}
	}
	day, _ := ParseNight("09:00-17:00", hk)
	if !day.Contains(time.Date(2026, 1, 1, 9, 0, 0, 0, hk)) || day.Contains(time.Date(2026, 1, 1, 17, 0, 0, 0, hk)) {
		t.Error("window not crossing midnight judged wrongly")
	}
}

// TestNightRuleAcrossDST: the night window follows London's wall clock
// through both daylight-saving changes of 2026 (29 March, 25 October).
func TestNightRuleAcrossDST(t *testing.T) {
	london := mustZone(t, "Europe/London")
	n, err := ParseNight("22:00-06:00", london)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		utc   time.Time
		night bool
	}{
		// Winter (GMT = UTC): 05:30 UTC is 05:30 local.
		{time.Date(2026, 1, 15, 5, 30, 0, 0, time.UTC), true},
		// Summer (BST = UTC+1): 05:30 UTC is 06:30 local: day.
		{time.Date(2026, 7, 15, 5, 30, 0, 0, time.UTC), false},
		// Summer: 21:30 UTC is 22:30 local: night; in winter it is day.
		{time.Date(2026, 7, 15, 21, 30, 0, 0, time.UTC), true},
		{time.Date(2026, 1, 15, 21, 30, 0, 0, time.UTC), false},
		// Spring forward, 29 March 01:00 UTC (01:00 GMT -> 02:00 BST).
		{time.Date(2026, 3, 29, 0, 59, 0, 0, time.UTC), true},   // 00:59 GMT
		{time.Date(2026, 3, 29, 4, 59, 0, 0, time.UTC), true},   // 05:59 BST
		{time.Date(2026, 3, 29, 5, 0, 0, 0, time.UTC), false},   // 06:00 BST
		{time.Date(2026, 3, 28, 21, 59, 0, 0, time.UTC), false}, // 21:59 GMT
		// Fall back, 25 October 01:00 UTC (02:00 BST -> 01:00 GMT).
		{time.Date(2026, 10, 25, 5, 59, 0, 0, time.UTC), true},   // 05:59 GMT
		{time.Date(2026, 10, 25, 6, 0, 0, 0, time.UTC), false},   // 06:00 GMT
		{time.Date(2026, 10, 24, 21, 0, 0, 0, time.UTC), true},   // 22:00 BST
		{time.Date(2026, 10, 24, 20, 59, 0, 0, time.UTC), false}, // 21:59 BST
	} {
		if got := n.Contains(tc.utc); got != tc.night {
			t.Errorf("%s (%s London) night = %v, want %v", tc.utc.Format(time.RFC3339), tc.utc.In(london).Format("15:04 MST"), got, tc.night)
		}
	}

	// The same through a detector rule: downloads at 05:30 UTC count as
	// night in January but not in July.
	for _, tc := range []struct {
		at   time.Time
		fire bool
	}{
		{time.Date(2026, 1, 15, 5, 30, 0, 0, time.UTC), true},
		{time.Date(2026, 7, 15, 5, 30, 0, 0, time.UTC), false},
	} {
		clk := newClock(tc.at)
		rec := &recorder{}
		d := newDetector(t, Options{Zone: london, Night: "22:00-06:00", Clock: clk.Now, Hooks: rec.hooks(),
			Rules: []Rule{{Name: "night-dl", Night: true, Window: time.Hour, DownloadsOver: 2, Actions: []Action{ActionAlert}}}})
		for range 3 {
			if err := d.Observe(t.Context(), Subject{User: "ana"}, Observation{Download: true, Path: "/f"}); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(rec.Records()) == 1; got != tc.fire {
			t.Errorf("%s: fired = %v, want %v", tc.at, got, tc.fire)
		}
	}
}

func FuzzParseNight(f *testing.F) {
	for _, s := range []string{"22:00-06:00", "9:30-17:45", "00:00-24:00", "", "-", "1:1-2:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNight(s, time.UTC)
		if err != nil {
			return
		}
		if n.Start < 0 || n.Start > 24*60 || n.End < 0 || n.End > 24*60 || n.Start == n.End {
			t.Fatalf("ParseNight(%q) = %+v", s, n)
		}
		again, err := ParseNight(n.String(), time.UTC)
		if err != nil || again.Start != n.Start || again.End != n.End {
			t.Fatalf("round trip %q -> %q: %+v %v", s, n.String(), again, err)
		}
		_ = n.Contains(time.Unix(0, 0))
	})
}
