package main

import (
	"testing"
	"time"
)

// TestDemoZone: --at moves only the time of day: in the zone it returns,
// now reads HH:MM, whatever the real time (the hours either side of
// midnight, where a shifted process clock once read the IdP's tokens as
// expired, included); instants themselves are not shifted.
func TestDemoZone(t *testing.T) {
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	for _, real := range []time.Time{
		time.Date(2026, 12, 3, 15, 30, 0, 0, hk),
		time.Date(2026, 12, 4, 0, 33, 12, 0, hk), // 16:33 UTC: the hour that failed
		time.Date(2026, 12, 4, 1, 59, 0, 0, hk),
		time.Date(2026, 12, 4, 2, 0, 0, 0, hk),
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
	} {
		for _, at := range []string{"02:00", "23:45", "15:30", "00:00"} {
			zone, err := demoZone(at, "Asia/Hong_Kong", func() time.Time { return real })
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			want, _ := time.Parse("15:04", at)
			got := real.In(zone)
			if got.Hour() != want.Hour() || got.Minute() != want.Minute() {
				t.Errorf("--at %s at %v: the time of day reads %v", at, real, got)
			}
			if !got.Equal(real) {
				t.Errorf("--at %s: the instant moved", at)
			}
			if _, off := got.Zone(); off <= -12*3600 || off > 12*3600 {
				t.Errorf("--at %s at %v: offset %ds", at, real, off)
			}
		}
	}
	for _, bad := range []string{"25:00", "2am"} {
		if _, err := demoZone(bad, "Asia/Hong_Kong", time.Now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if z, err := demoZone("", "Asia/Hong_Kong", time.Now); z != nil || err != nil {
		t.Fatal("no --at must keep anomaly.timezone")
	}
}
