package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestAppendRecordMatchesTlog holds hashStore.appendRecord to the library's
// tlog.StoredHashesForRecordHash: the same stored hashes for every record,
// whether the left siblings it reads are pending or already in the hashes
// file, and the same tree hash at the end.
func TestAppendRecordMatchesTlog(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "hashes"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &hashStore{f: f}
	var all memHashes
	const records = 1500
	for n := int64(0); n < records; n++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h := tlog.Hash(sha256.Sum256(b[:]))
		want, err := tlog.StoredHashesForRecordHash(n, h, all)
		if err != nil {
			t.Fatal(err)
		}
		before := len(s.pending)
		if err := s.appendRecord(n, h); err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		if got := s.pending[before:]; !slices.Equal(got, want) {
			t.Fatalf("record %d: stored hashes %x, tlog says %x", n, got, want)
		}
		all = append(all, want...)
		// Flush to the file at uneven intervals, as commits do, so that
		// later records read some siblings from disk.
		if n%7 == 3 || n%97 == 0 {
			for i, ph := range s.pending {
				if _, err := f.WriteAt(ph[:], (s.onDisk+int64(i))*tlog.HashSize); err != nil {
					t.Fatal(err)
				}
			}
			s.onDisk += int64(len(s.pending))
			s.pending = nil
		}
	}
	got, err := tlog.TreeHash(records, s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tlog.TreeHash(records, all)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("tree hash %x, want %x", got, want)
	}
}

// TestAppendRecordRefusesGap: a record whose stored hashes would not start
// right after those stored is refused, and nothing is added.
func TestAppendRecordRefusesGap(t *testing.T) {
	s := &hashStore{}
	if err := s.appendRecord(0, tlog.Hash{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.appendRecord(2, tlog.Hash{2}); err == nil {
		t.Fatal("record 2 after record 0 was accepted")
	}
	if len(s.pending) != 1 {
		t.Fatalf("%d pending hashes after a refused record, want 1", len(s.pending))
	}
}

func BenchmarkAppendRecordHashes(b *testing.B) {
	b.Run("tlog", func(b *testing.B) {
		s := &hashStore{}
		n := int64(0)
		b.ReportAllocs()
		for b.Loop() {
			hs, err := tlog.StoredHashesForRecordHash(n, tlog.Hash{byte(n)}, s)
			if err != nil {
				b.Fatal(err)
			}
			s.pending = append(s.pending, hs...)
			n++
		}
	})
	b.Run("appendRecord", func(b *testing.B) {
		s := &hashStore{}
		n := int64(0)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.appendRecord(n, tlog.Hash{byte(n)}); err != nil {
				b.Fatal(err)
			}
			n++
		}
	})
}
