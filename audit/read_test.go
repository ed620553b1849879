package audit

import (
	"context"
	"fmt"
	"os"
	"strings"
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

// ScanSinceTypes hands over only the records of the asked types, without
// decoding the others — a path that merely spells a type inside a string
// is escaped and never mistaken for one — and still reports a line whose
// type cannot be found.
func TestScanSinceTypes(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, testKey(t, "audit.test"), nil)
	ctx := context.Background()
	for i := range 30 {
		r := decisionRec(i)
		if i%7 == 0 {
			r.Path = `/x,"type":"logout",` // a lookalike inside a value
		}
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := l.Append(ctx, &Record{Type: TypeLogout, Subject: fmt.Sprintf("u%d", i), SessionID: fmt.Sprintf("s%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := ScanSinceTypes(dir, nil, t0.Add(-time.Hour), []Type{TypeLogout, TypeSessionRevoked}, func(r *Record) error {
		got = append(got, string(r.Type)+":"+r.SessionID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "logout:s0,logout:s10,logout:s20"; strings.Join(got, ",") != want {
		t.Errorf("scanned %v, want %s", got, want)
	}
	segs, _ := listSegments(dir)
	f, err := os.OpenFile(segs[len(segs)-1].Path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("{\"v\":1,garbage}\n")
	f.Close()
	if err := ScanSinceTypes(dir, nil, t0.Add(-time.Hour), []Type{TypeLogout}, func(*Record) error { return nil }); err == nil {
		t.Error("a line without a type field was skipped silently")
	}
}
