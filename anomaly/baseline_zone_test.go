package anomaly

import (
	"testing"
	"time"
)

// TestThresholdUsesTheBandOfThePeriod: a request is judged against the
// band its hour is folded into. Where the zone's offset has minutes
// (Kolkata +05:30, Kathmandu +05:45) the hour periods start at :30 or :45
// local; judging by the wall clock's hour compared 15:10 with the hour
// that starts at 15:30.
func TestThresholdUsesTheBandOfThePeriod(t *testing.T) {
	rule := &Rule{Name: "u", Window: time.Hour, AboveBaseline: 5, BaselineFloor: 1, MinHistory: time.Hour}
	for _, tt := range []struct {
		zone string
		at   string // local; the busy period is the one containing it
	}{
		{"UTC", "15:10"},
		{"Asia/Hong_Kong", "00:05"},
		{"Asia/Kolkata", "15:10"},
		{"Asia/Kolkata", "15:29"},
		{"Asia/Kathmandu", "15:40"},
		{"America/New_York", "01:30"},
	} {
		t.Run(tt.zone+" "+tt.at, func(t *testing.T) {
			zone := mustZone(t, tt.zone)
			clock, err := time.Parse("15:04", tt.at)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 12, 3, clock.Hour(), clock.Minute(), 0, 0, zone)
			cur := period(now)
			// A week of history: 100 requests in the period now is in,
			// nothing the rest of the day.
			start := cur - 7*24
			b := &Baseline{First: start * 3600, Next: start}
			counts := map[int64]Counts{}
			for d := int64(0); d < 7; d++ {
				counts[start+d*24] = Counts{Requests: 100}
			}
			b.fold(counts, cur, zone, 0.5)
			th, ok := b.threshold(rule, now, zone)
			if !ok || th != 500 {
				t.Fatalf("threshold at %s = %v (%v), want 5 x 100", now, th, ok)
			}
		})
	}
}
