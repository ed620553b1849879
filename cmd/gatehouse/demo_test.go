package main

import (
	"testing"
	"time"
)

func TestDemoClock(t *testing.T) {
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	real := time.Date(2026, 12, 3, 15, 30, 0, 0, hk) // 15:30 in Hong Kong
	now := func() time.Time { return real }
	// The clock goes back to the last HH:MM, never ahead: the real IdP's
	// ID tokens live an hour, and a clock ahead of it reads them expired
	// (the demo could not sign in between midnight and 01:00 with --at 02:00).
	tests := []struct {
		real     time.Time
		at       string
		wantDay  int
		wantHour int
		wantMin  int
		wantErr  bool
	}{
		{real, "02:00", 3, 2, 0, false},
		{real, "23:45", 2, 23, 45, false},
		{real, "15:30", 3, 15, 30, false},
		{time.Date(2026, 12, 4, 0, 33, 0, 0, hk), "02:00", 3, 2, 0, false},
		{time.Date(2026, 12, 4, 1, 59, 0, 0, hk), "02:00", 3, 2, 0, false},
		{real, "25:00", 0, 0, 0, true},
		{real, "2am", 0, 0, 0, true},
	}
	for _, tt := range tests {
		clock, err := demoClock(tt.at, "Asia/Hong_Kong", func() time.Time { return tt.real })
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err %v", tt.at, err)
		}
		if err != nil {
			continue
		}
		got := clock().In(hk)
		if got.Hour() != tt.wantHour || got.Minute() != tt.wantMin || got.Day() != tt.wantDay {
			t.Errorf("%s at %v: clock reads %v", tt.at, tt.real, got)
		}
		if got.After(tt.real) {
			t.Errorf("%s at %v: the clock runs ahead (%v)", tt.at, tt.real, got)
		}
	}
	if c, err := demoClock("", "Asia/Hong_Kong", now); c != nil || err != nil {
		t.Fatal("no --at must keep the real clock")
	}
}
