package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestVerifyIntact(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 100)
	sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}})
	if err != nil {
		t.Fatalf("verify intact log: %v", err)
	}
	// 100 decisions + audit_start + audit_stop.
	if sum.Records != 102 || sum.Latest.Size != 102 || sum.Unsigned != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	if sum.Segments < 3 || sum.Checkpoints < 10 || sum.KeyFromLog {
		t.Fatalf("want several segments and checkpoints, trusted key: %+v", sum)
	}
	if !sum.First.Before(sum.Last) {
		t.Fatalf("time range %v..%v", sum.First, sum.Last)
	}
	// Without --key the log's own key.pub is used, and flagged.
	sum, err = Verify(dir, VerifyOptions{})
	if err != nil || !sum.KeyFromLog {
		t.Fatalf("verify with key.pub: %+v, %v", sum, err)
	}
}

// tamperCase damages a freshly written log; want is the Kind verify reports.
type tamperCase struct {
	name    string
	tamper  func(t *testing.T, dir string, k *Key) VerifyOptions
	want    Kind
	segment bool // the problem must name a segment and line
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []tamperCase{
		{"modified byte", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			lines := readLines(t, segs[1])
			lines[2] = bytes.Replace(lines[2], []byte(`"GET"`), []byte(`"GEX"`), 1)
			writeLines(t, segs[1], lines)
			return VerifyOptions{}
		}, KindModifiedRecord, true},
		{"modified byte, hashes file gone", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			lines := readLines(t, segs[1])
			lines[2] = bytes.Replace(lines[2], []byte(`.pdf`), []byte(`.pdX`), 1)
			writeLines(t, segs[1], lines)
			os.Remove(filepath.Join(dir, hashesFile))
			return VerifyOptions{}
		}, KindRootMismatch, true},
		{"byte breaking JSON", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			lines := readLines(t, segs[0])
			lines[3][0] = '['
			writeLines(t, segs[0], lines)
			return VerifyOptions{}
		}, KindMalformedRecord, true},
		{"deleted record", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			lines := readLines(t, segs[1])
			writeLines(t, segs[1], append(lines[:3:3], lines[4:]...))
			return VerifyOptions{}
		}, KindMissingRecord, true},
		{"inserted record", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			lines := readLines(t, segs[1])
			var out [][]byte
			out = append(out, lines[:3]...)
			out = append(out, lines[2]) // a copy
			out = append(out, lines[3:]...)
			writeLines(t, segs[1], out)
			return VerifyOptions{}
		}, KindUnexpectedRecord, true},
		{"swapped records", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			lines := readLines(t, segs[1])
			lines[2], lines[3] = lines[3], lines[2]
			writeLines(t, segs[1], lines)
			return VerifyOptions{}
		}, KindSwappedRecords, true},
		{"truncated tail", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			last := segs[len(segs)-1]
			lines := readLines(t, last)
			writeLines(t, last, lines[:len(lines)-2])
			return VerifyOptions{}
		}, KindTruncated, true},
		{"removed segment", func(t *testing.T, dir string, k *Key) VerifyOptions {
			segs := segPaths(t, dir)
			os.Remove(segs[1])
			return VerifyOptions{}
		}, KindMissingSegment, true},
		{"removed first segment", func(t *testing.T, dir string, k *Key) VerifyOptions {
			os.Remove(segPaths(t, dir)[0])
			return VerifyOptions{}
		}, KindMissingSegment, true},
		{"checkpoint with bad signature", func(t *testing.T, dir string, k *Key) VerifyOptions {
			p := filepath.Join(dir, checkpointsFile)
			b, _ := os.ReadFile(p)
			notes, _ := SplitCheckpoints(b)
			cp, _ := ParseCheckpointText(string(notes[3][:bytes.Index(notes[3], []byte("\n\n"))+1]))
			forged := bytes.Replace(notes[3], []byte("\n"+itoa(cp.Size)+"\n"), []byte("\n"+itoa(cp.Size-1)+"\n"), 1)
			writeFile(t, p, bytes.Replace(b, notes[3], forged, 1))
			return VerifyOptions{}
		}, KindBadSignature, false},
		{"checkpoint made with another key", func(t *testing.T, dir string, k *Key) VerifyOptions {
			other := testKey(t, k.Signer.Name()) // same name, different key
			p := filepath.Join(dir, checkpointsFile)
			b, _ := os.ReadFile(p)
			notes, _ := SplitCheckpoints(b)
			cp, err := OpenCheckpoint(notes[2], verifierOf(t, k))
			if err != nil {
				t.Fatal(err)
			}
			resigned, _ := SignCheckpoint(cp, other.Signer)
			writeFile(t, p, bytes.Replace(b, notes[2], resigned, 1))
			return VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}}
		}, KindUnknownKey, false},
		{"verify with another key", func(t *testing.T, dir string, k *Key) VerifyOptions {
			return VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, testKey(t, "someone.else"))}}
		}, KindUnknownKey, false},
		{"checkpoint root mismatch", func(t *testing.T, dir string, k *Key) VerifyOptions {
			p := filepath.Join(dir, checkpointsFile)
			b, _ := os.ReadFile(p)
			notes, _ := SplitCheckpoints(b)
			cp, _ := OpenCheckpoint(notes[4], verifierOf(t, k))
			cp.Root[0] ^= 1
			bad, _ := SignCheckpoint(cp, k.Signer)
			writeFile(t, p, bytes.Replace(b, notes[4], bad, 1))
			return VerifyOptions{}
		}, KindRootMismatch, false},
		{"checkpoint going backwards", func(t *testing.T, dir string, k *Key) VerifyOptions {
			p := filepath.Join(dir, checkpointsFile)
			b, _ := os.ReadFile(p)
			notes, _ := SplitCheckpoints(b)
			writeFile(t, p, append(bytes.Clone(b), notes[1]...))
			os.Remove(filepath.Join(dir, latestFile))
			return VerifyOptions{}
		}, KindCheckpointBackwards, false},
		{"checkpoints deleted and a record rewritten", func(t *testing.T, dir string, k *Key) VerifyOptions {
			for _, f := range []string{checkpointsFile, latestFile, hashesFile} {
				os.Remove(filepath.Join(dir, f))
			}
			segs := segPaths(t, dir)
			lines := readLines(t, segs[1])
			lines[2] = bytes.Replace(lines[2], []byte(`"GET"`), []byte(`"GEX"`), 1)
			writeLines(t, segs[1], lines)
			return VerifyOptions{}
		}, KindUnsigned, true},
		{"closing checkpoint removed", func(t *testing.T, dir string, k *Key) VerifyOptions {
			p := filepath.Join(dir, checkpointsFile)
			b, _ := os.ReadFile(p)
			notes, _ := SplitCheckpoints(b)
			writeFile(t, p, bytes.Join(notes[:len(notes)-1], nil))
			os.Remove(filepath.Join(dir, latestFile))
			return VerifyOptions{}
		}, KindUnsigned, true},
		{"more unsigned records than allowed", func(t *testing.T, dir string, k *Key) VerifyOptions {
			p := filepath.Join(dir, checkpointsFile)
			b, _ := os.ReadFile(p)
			notes, _ := SplitCheckpoints(b)
			writeFile(t, p, bytes.Join(notes[:1], nil))
			os.Remove(filepath.Join(dir, latestFile))
			return VerifyOptions{MaxUnsigned: 1}
		}, KindUnsigned, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k := testKey(t, "audit.test")
			writeLog(t, dir, k, 60)
			if _, err := Verify(dir, VerifyOptions{}); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			opts := tc.tamper(t, dir, k)
			_, err := Verify(dir, opts)
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("verify after %s: err = %v, want a Problem", tc.name, err)
			}
			if p.Kind != tc.want {
				t.Fatalf("kind = %q, want %q (%v)", p.Kind, tc.want, err)
			}
			if tc.segment && (p.Segment == "" || p.Line == 0 || p.Index < 0) {
				t.Fatalf("problem does not name the record: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestVerifyRefusesWhatIsNoLog(t *testing.T) {
	k := testKey(t, "audit.test")
	for _, dir := range []string{filepath.Join(t.TempDir(), "nonexistent"), t.TempDir()} {
		v, err := ParseVerifierKey(k.Verifier)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(dir, VerifyOptions{Verifiers: []note.Verifier{v}})
		var p *Problem
		if !errors.As(err, &p) || p.Kind != KindUnreadable {
			t.Fatalf("verify %s: %v, want an unreadable-log problem", dir, err)
		}
	}
}

func TestVerifyDetectsRollback(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 30)
	old := t.TempDir()
	copyDir(t, dir, old)
	// More records after the copy; the published checkpoint covers them.
	l := openTest(t, dir, k, nil)
	for i := range 10 {
		if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	published, err := os.ReadFile(filepath.Join(dir, latestFile))
	if err != nil {
		t.Fatal(err)
	}
	// The current log contains the published checkpoint.
	if _, err := Verify(dir, VerifyOptions{Trusted: [][]byte{published}}); err != nil {
		t.Fatalf("current log against published checkpoint: %v", err)
	}
	// The old copy is self-consistent...
	if _, err := Verify(old, VerifyOptions{}); err != nil {
		t.Fatalf("old copy alone: %v", err)
	}
	// ...but not against the published checkpoint.
	_, err = Verify(old, VerifyOptions{Trusted: [][]byte{published}})
	var p *Problem
	if !errors.As(err, &p) || p.Kind != KindRolledBack {
		t.Fatalf("rolled-back log: err = %v, want %q", err, KindRolledBack)
	}
	// A forked log (same size, other records) is caught too.
	fork := t.TempDir()
	writeLogN(t, fork, k, 38)
	_, err = Verify(fork, VerifyOptions{Trusted: [][]byte{published}})
	if !errors.As(err, &p) || p.Kind != KindRolledBack {
		t.Fatalf("forked log: err = %v, want %q", err, KindRolledBack)
	}
}

// writeLogN writes a log of exactly n records including start/stop.
func writeLogN(t *testing.T, dir string, k *Key, decisions int) {
	writeLog(t, dir, k, decisions)
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyLiveLog(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	l := openTest(t, dir, k, func(o *Options) {
		o.CheckpointInterval = 2 * time.Millisecond
		o.GroupCommit = time.Millisecond
		o.Clock = time.Now
	})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(context.Background(), decisionRec(i)); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for start := time.Now(); time.Since(start) < 400*time.Millisecond; {
		if _, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}}); err != nil {
			t.Fatalf("verify while the log is written: %v", err)
		}
	}
	close(stop)
	<-done
	if n, _ := l.Size(); n < 100 {
		t.Fatalf("only %d records written meanwhile", n)
	}
	l.Close(context.Background())
}
