package report

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// TestHoursFollowTheLocalClock: the hourly chart's bars are the hours of
// the report's time zone, also where the offset is not a whole number of
// hours (15:10 and 15:40 in Kolkata are one bar, "15h", not 14h and 15h).
func TestHoursFollowTheLocalClock(t *testing.T) {
	zone := func(name string) *time.Location {
		z, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	tests := []struct {
		zone      string
		local     []string // decision times, local wall clock
		wantHours []string // bar labels, local
		wantCount []int
	}{
		{"UTC", []string{"2026-12-03 15:10", "2026-12-03 15:40", "2026-12-03 16:05"}, []string{"15:00", "16:00"}, []int{2, 1}},
		{"Asia/Hong_Kong", []string{"2026-12-03 23:59", "2026-12-04 00:00"}, []string{"23:00", "00:00"}, []int{1, 1}},
		{"Asia/Kolkata", []string{"2026-12-03 15:10", "2026-12-03 15:40", "2026-12-03 16:05"}, []string{"15:00", "16:00"}, []int{2, 1}},
		{"Asia/Kathmandu", []string{"2026-12-03 23:50", "2026-12-04 00:10", "2026-12-04 00:55"}, []string{"23:00", "00:00"}, []int{1, 2}},
		// Daylight saving ends: 01:xx comes twice (EDT, then EST).
		{"America/New_York", []string{"2026-11-01 00:30", "2026-11-01 01:30", "2026-11-01 02:10"}, []string{"00:00", "01:00", "01:00", "02:00"}, []int{1, 1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			loc := zone(tt.zone)
			var recs []*audit.Record
			for i, s := range tt.local {
				lt, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, &audit.Record{Version: 1, Index: int64(i), Type: audit.TypeDecision, Time: lt.UTC(),
					Subject: "u", Route: "files", Path: "/x", Outcome: audit.OutcomeAllow})
			}
			rep := Build(recs, Integrity{Verified: true}, Options{Location: loc})
			var got []string
			var counts []int
			for _, h := range rep.Hours {
				got = append(got, h.Start.In(loc).Format("15:04"))
				counts = append(counts, h.Requests)
			}
			if len(got) != len(tt.wantHours) {
				t.Fatalf("hours %v %v, want %v %v", got, counts, tt.wantHours, tt.wantCount)
			}
			for i := range got {
				if got[i] != tt.wantHours[i] || counts[i] != tt.wantCount[i] {
					t.Fatalf("hours %v %v, want %v %v", got, counts, tt.wantHours, tt.wantCount)
				}
			}
		})
	}
}
