package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// testKey returns a fresh signing key named name.
func testKey(t testing.TB, name string) *Key {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseSigningKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	testKeys.Store(k, skey)
	return k
}

// testKeys remembers the private key text of test keys (crash test child).
var testKeys sync.Map

func verifierOf(t testing.TB, k *Key) note.Verifier {
	t.Helper()
	v, err := ParseVerifierKey(k.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fakeClock advances one millisecond per call from a fixed start.
func fakeClock(start time.Time) func() time.Time {
	var n int64
	return func() time.Time {
		n++
		return start.Add(time.Duration(n) * time.Millisecond)
	}
}

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func openTest(t testing.TB, dir string, k *Key, mod func(*Options)) *Log {
	t.Helper()
	o := Options{Dir: dir, Key: k, SegmentSize: 2048, CheckpointInterval: time.Hour, Clock: fakeClock(t0)}
	if mod != nil {
		mod(&o)
	}
	l, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func decisionRec(i int) *Record {
	out := OutcomeAllow
	var reasons []string
	if i%5 == 0 {
		out, reasons = OutcomeDeny, []string{"not in group finance"}
	}
	return &Record{Type: TypeDecision, Subject: fmt.Sprintf("user-%d", i%3), Email: fmt.Sprintf("user%d@example.com", i%3),
		RequestID: fmt.Sprintf("req-%d", i), Route: "files", Method: "GET", Host: "files.example.com",
		Path: fmt.Sprintf("/doc/%d.pdf", i), ClientIP: "203.0.113.9", Outcome: out, Reasons: reasons, Revision: "rev1",
		Input: map[string]any{"request": map[string]any{"path": fmt.Sprintf("/doc/%d.pdf", i)}}}
}

// writeLog writes n decision records (several segments, a checkpoint every
// 10 records) and closes the log.
func writeLog(t testing.TB, dir string, k *Key, n int) {
	t.Helper()
	l := openTest(t, dir, k, nil)
	ctx := context.Background()
	for i := range n {
		if _, err := l.Append(ctx, decisionRec(i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func segPaths(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.Path)
	}
	return out
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o640); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a log directory (flat files and one level of subdirs).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}
