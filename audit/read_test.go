package audit

import (
	"testing"
	"time"
)

// ScanSince reads from the segment covering from on: every record at or
// after from is seen, and whole earlier segments are skipped.
func TestScanSince(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, testKey(t, "audit.test"), 200) // many 2 KiB segments, 1 ms apart
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 5 {
		t.Fatalf("want several segments, got %d (%v)", len(segs), err)
	}
	var all []*Record
	if err := Scan(dir, nil, func(r *Record) error { all = append(all, r); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		from time.Time
	}{
		{"before the log", t0.Add(-time.Hour)},
		{"in the middle", all[len(all)/2].Time},
		{"just after the middle", all[len(all)/2].Time.Add(time.Nanosecond)},
		{"after the log", all[len(all)-1].Time.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*Record
			if err := ScanSince(dir, nil, tc.from, func(r *Record) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, r := range all {
				if !r.Time.Before(tc.from) {
					want++
				}
			}
			seen := 0
			for _, r := range got {
				if !r.Time.Before(tc.from) {
					seen++
				}
			}
			if seen != want {
				t.Fatalf("saw %d of the %d records since %v", seen, want, tc.from)
			}
			if tc.from.After(t0) && len(got) >= len(all) {
				t.Fatalf("read all %d records: earlier segments were not skipped", len(got))
			}
		})
	}
}
