package main

import (
	"testing"
	"time"
)

func TestDemoClock(t *testing.T) {
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	real := time.Date(2026, 12, 3, 15, 30, 0, 0, hk) // 15:30 in Hong Kong
	now := func() time.Time { return real }
	tests := []struct {
		at       string
		wantHour int
		wantMin  int
		wantErr  bool
	}{
		{"02:00", 2, 0, false},
		{"23:45", 23, 45, false},
		{"15:30", 15, 30, false},
		{"25:00", 0, 0, true},
		{"2am", 0, 0, true},
	}
	for _, tt := range tests {
		clock, err := demoClock(tt.at, "Asia/Hong_Kong", now)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err %v", tt.at, err)
		}
		if err != nil {
			continue
		}
		got := clock().In(hk)
		if got.Hour() != tt.wantHour || got.Minute() != tt.wantMin || got.Day() != 3 {
			t.Errorf("%s: clock reads %v", tt.at, got)
		}
	}
	if c, err := demoClock("", "Asia/Hong_Kong", now); c != nil || err != nil {
		t.Fatal("no --at must keep the real clock")
	}
}
