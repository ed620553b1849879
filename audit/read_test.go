package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// A record whose personal fields cannot be opened for a reason other than
// shredding is reported on the record (Unreadable) and the scan goes on:
// search and reports over the rest of the log still work.
func TestScanUnreadableRecords(t *testing.T) {
	oct, nov := "2026-10", "2026-11"
	keyFile := func(dir, period string) string { return filepath.Join(dir, keysDir, period+".key") }
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string, reopen func() *Log)
		// bad: the period whose records written before damage are unreadable.
		bad  string
		is   error  // errors.Is(Unreadable, is), when set
		text string // in Unreadable's text
	}{
		{"data key deleted and re-created", func(t *testing.T, dir string, reopen func() *Log) {
			if err := os.Remove(keyFile(dir, nov)); err != nil {
				t.Fatal(err)
			}
			l := reopen() // a new data key for November
			if _, err := l.Append(t.Context(), decisionRec(99)); err != nil {
				t.Fatal(err)
			}
			l.Close(t.Context())
		}, nov, nil, "does not decrypt"},
		{"data key of another period", func(t *testing.T, dir string, _ func() *Log) {
			b, err := os.ReadFile(keyFile(dir, nov))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, keyFile(dir, oct), b)
		}, oct, ErrDataKeyRefused, "does not open"},
		{"data key malformed", func(t *testing.T, dir string, _ func() *Log) {
			writeFile(t, keyFile(dir, oct), []byte("not a key\n"))
		}, oct, nil, "malformed"},
		{"data key shredded", func(t *testing.T, dir string, _ func() *Log) {
			if _, err := Shred(dir, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
		}, oct, ErrShredded, "shredded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			k := testKey(t, "audit.test")
			clock := time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC)
			enc := func(o *Options) {
				o.EncryptionKey = testMaster
				o.Clock = func() time.Time { clock = clock.Add(6 * time.Hour); return clock }
			}
			l := openTest(t, dir, k, enc)
			for i := range 8 { // spans October and November
				if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
					t.Fatal(err)
				}
			}
			l.Close(t.Context())
			damagedAt := clock
			c.damage(t, dir, func() *Log { return openTest(t, dir, k, enc) })

			ring, err := NewKeyring(dir, testMaster)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := Search(dir, ring, Filter{Types: []Type{TypeDecision}})
			if err != nil {
				t.Fatalf("search stopped at an unreadable record: %v", err)
			}
			var bad, good int
			for _, r := range recs {
				if Period(r.Time) == c.bad && !r.Time.After(damagedAt) {
					bad++
					if r.Unreadable == nil || r.Sealed == nil || r.Email != "" || r.ClientIP != "" || r.Input != nil {
						t.Fatalf("record %d of the damaged period: unreadable=%v sealed=%v email=%q", r.Index, r.Unreadable, r.Sealed != nil, r.Email)
					}
					if (c.is != nil && !errors.Is(r.Unreadable, c.is)) || !strings.Contains(r.Unreadable.Error(), c.text) {
						t.Fatalf("record %d: reason %v, want %v / %q", r.Index, r.Unreadable, c.is, c.text)
					}
					continue
				}
				good++
				if r.Unreadable != nil || r.Sealed != nil || r.Email == "" || r.ClientIP != "203.0.113.9" {
					t.Fatalf("record %d of an intact period not opened: %v", r.Index, r.Unreadable)
				}
			}
			if bad == 0 || good == 0 {
				t.Fatalf("want records of both kinds: %d unreadable, %d readable of %d", bad, good, len(recs))
			}
			// A search by email still finds the readable records.
			u, err := Search(dir, ring, Filter{User: "user1@example.com"})
			if err != nil || len(u) == 0 {
				t.Fatalf("search by email: %d %v", len(u), err)
			}
			// Integrity needs no key: the log still verifies.
			if _, err := Verify(dir, VerifyOptions{}); err != nil {
				t.Fatalf("verify: %v", err)
			}
		})
	}
}

// An encryption key that opens none of the log's data keys is refused
// before any record, not reported on every record.
func TestScanRefusesWrongEncryptionKey(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, testKey(t, "audit.test"), func(o *Options) { o.EncryptionKey = testMaster })
	for i := range 3 {
		if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close(t.Context())
	ring, err := NewKeyring(dir, bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = Scan(dir, ring, func(*Record) error { calls++; return nil })
	if !errors.Is(err, ErrBadKey) || calls != 0 {
		t.Fatalf("wrong encryption key: %v after %d records", err, calls)
	}
}
