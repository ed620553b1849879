package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// rewriteAfterFirstCheckpoint plays an attacker with write access to dir
// but no key: it keeps only the first signed checkpoint (the writer's
// opening one, size 1) in the history and the latest copy, rewrites a
// decision after it from deny to allow, drops the audit_stop record and
// deletes the stored hashes.
func rewriteAfterFirstCheckpoint(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, checkpointsFile))
	if err != nil {
		t.Fatal(err)
	}
	notes, err := SplitCheckpoints(data)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, checkpointsFile), notes[0])
	writeFile(t, filepath.Join(dir, latestFile), notes[0])
	os.Remove(filepath.Join(dir, hashesFile))
	segs := segPaths(t, dir)
	changed := false
	for _, p := range segs {
		lines := readLines(t, p)
		for i, l := range lines {
			if !changed && bytes.Contains(l, []byte(`"outcome":"deny"`)) {
				lines[i] = bytes.Replace(l, []byte(`"outcome":"deny","reasons":["not in group finance"]`), []byte(`"outcome":"allow"`), 1)
				changed = true
			}
		}
		writeLines(t, p, lines)
	}
	last := segs[len(segs)-1]
	lines := readLines(t, last)
	if !bytes.Contains(lines[len(lines)-1], []byte(`"type":"audit_stop"`)) {
		t.Fatal("expected audit_stop last")
	}
	writeLines(t, last, lines[:len(lines)-1])
	if !changed {
		t.Fatal("no deny record")
	}
}

// rollBackToFirstCheckpoint cuts records and checkpoint history back to the
// first checkpoint: a consistent, shorter log. keepLatest leaves the latest
// checkpoint copy as it was.
func rollBackToFirstCheckpoint(t *testing.T, dir string, v note.Verifier, keepLatest bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, checkpointsFile))
	if err != nil {
		t.Fatal(err)
	}
	notes, err := SplitCheckpoints(data)
	if err != nil {
		t.Fatal(err)
	}
	cp1, err := OpenCheckpoint(notes[0], v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, checkpointsFile), notes[0])
	if !keepLatest {
		writeFile(t, filepath.Join(dir, latestFile), notes[0])
	}
	segs := segPaths(t, dir)
	for _, p := range segs[1:] {
		os.Remove(p)
	}
	writeLines(t, segs[0], readLines(t, segs[0])[:cp1.Size])
}

func openErr(t *testing.T, o Options) error {
	t.Helper()
	l, err := Open(context.Background(), o)
	if err == nil {
		l.Close(context.Background())
	}
	return err
}

func TestReopenRefusesRewrittenTailWithoutHashes(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "gw")
	writeLog(t, dir, k, 40)
	rewriteAfterFirstCheckpoint(t, dir)
	err := openErr(t, Options{Dir: dir, Key: k, SegmentSize: 2048})
	if !errors.Is(err, ErrTailMismatch) {
		t.Fatalf("open rewritten log: err = %v, want ErrTailMismatch", err)
	}
	// Nothing was signed over the rewritten records.
	notes, _ := SplitCheckpoints(readFile(t, filepath.Join(dir, checkpointsFile)))
	if len(notes) != 1 {
		t.Fatalf("checkpoint history has %d notes after the refusal, want 1", len(notes))
	}
}

func TestReopenRefusesRecordsWithoutCheckpoint(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "gw")
	writeLog(t, dir, k, 15)
	os.Remove(filepath.Join(dir, checkpointsFile))
	os.Remove(filepath.Join(dir, latestFile))
	err := openErr(t, Options{Dir: dir, Key: k, SegmentSize: 2048})
	if !errors.Is(err, ErrTailMismatch) || !strings.Contains(err.Error(), "no signed checkpoint") {
		t.Fatalf("open log without checkpoints: err = %v, want ErrTailMismatch", err)
	}
}

func TestReopenAfterCrashBeforeFirstCheckpoint(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "gw")
	l := openTest(t, dir, k, nil)
	l.Close(t.Context())
	// What a crash inside the first Open leaves: its audit_start, no
	// checkpoint, no hashes.
	seg := segPaths(t, dir)[0]
	writeLines(t, seg, readLines(t, seg)[:1])
	for _, f := range []string{checkpointsFile, latestFile, hashesFile} {
		os.Remove(filepath.Join(dir, f))
	}
	l = openTest(t, dir, k, nil)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}}); err != nil || sum.Records != 3 {
		t.Fatalf("verify after recovery: %+v %v", sum, err)
	}
}

func TestReopenClosedLogWithoutHashes(t *testing.T) {
	// A closed log (every record signed) copied without its stored hashes,
	// as a backup is: the writer rebuilds them and goes on.
	dir := t.TempDir()
	k := testKey(t, "gw")
	writeLog(t, dir, k, 25)
	os.Remove(filepath.Join(dir, hashesFile))
	l := openTest(t, dir, k, nil)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}}); err != nil {
		t.Fatal(err)
	}
}

func TestReopenRefusesRollBack(t *testing.T) {
	for _, tc := range []struct {
		name       string
		keepLatest bool
		publish    bool
	}{
		{"latest checkpoint kept", true, false},
		{"published checkpoint", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pub := filepath.Join(t.TempDir(), "published-checkpoint")
			k := testKey(t, "gw")
			var pubs []Publisher
			if tc.publish {
				pubs = []Publisher{FilePublisher{Path: pub}}
			}
			l := openTest(t, dir, k, func(o *Options) { o.Publishers = pubs })
			for i := range 30 {
				if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(pub)
			rollBackToFirstCheckpoint(t, dir, verifierOf(t, k), tc.keepLatest)
			err := openErr(t, Options{Dir: dir, Key: k, Publishers: pubs})
			if !errors.Is(err, ErrTailMismatch) || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("open rolled-back log: err = %v, want ErrTailMismatch (rolled back)", err)
			}
			if after, _ := os.ReadFile(pub); !bytes.Equal(before, after) {
				t.Fatal("the published checkpoint was replaced")
			}
		})
	}
}

func TestOpenRefusesWipedLogWithPublishedCheckpoint(t *testing.T) {
	// The whole directory deleted: a new, empty log would start, and its
	// first checkpoint would replace the published one.
	dir := t.TempDir()
	pub := filepath.Join(t.TempDir(), "published-checkpoint")
	k := testKey(t, "gw")
	pubs := []Publisher{FilePublisher{Path: pub}}
	l := openTest(t, dir, k, func(o *Options) { o.Publishers = pubs })
	for i := range 5 {
		l.Append(t.Context(), decisionRec(i))
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, pub)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := openErr(t, Options{Dir: dir, Key: k, Publishers: pubs})
	if !errors.Is(err, ErrTailMismatch) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("open wiped log: err = %v, want ErrTailMismatch (rolled back)", err)
	}
	if !bytes.Equal(readFile(t, pub), before) {
		t.Fatal("the published checkpoint was replaced")
	}
}

func TestReopenRefusesForkedPublished(t *testing.T) {
	// The published checkpoint has the log's size but another root: the
	// log was rewritten and re-hashed up to the published size.
	dir, other := t.TempDir(), t.TempDir()
	pub := filepath.Join(t.TempDir(), "published-checkpoint")
	k := testKey(t, "gw")
	writeLog(t, other, k, 12)
	writeLog(t, dir, k, 13)
	copyFile(t, filepath.Join(other, latestFile), pub)
	err := openErr(t, Options{Dir: dir, Key: k, Publishers: []Publisher{FilePublisher{Path: pub}}})
	if !errors.Is(err, ErrTailMismatch) || !strings.Contains(err.Error(), "forked") {
		t.Fatalf("open log forked from the published checkpoint: err = %v, want ErrTailMismatch", err)
	}
}

func TestFilePublisherRefusesCheckpointNotExtendingPublished(t *testing.T) {
	k, k2 := testKey(t, "gw"), testKey(t, "other")
	sign := func(key *Key, c Checkpoint) []byte {
		msg, err := SignCheckpoint(c, key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	base := Checkpoint{Origin: "gw", Size: 10, Root: [32]byte{1}, Time: t0}
	with := func(f func(c *Checkpoint)) Checkpoint { c := base; f(&c); return c }
	for _, tc := range []struct {
		name string
		next []byte
		ok   bool
	}{
		{"larger", sign(k, with(func(c *Checkpoint) { c.Size, c.Root = 11, [32]byte{2} })), true},
		{"same", sign(k, base), true},
		{"smaller", sign(k, with(func(c *Checkpoint) { c.Size = 9 })), false},
		{"same size other root", sign(k, with(func(c *Checkpoint) { c.Root = [32]byte{3} })), false},
		{"other origin", sign(k2, with(func(c *Checkpoint) { c.Origin, c.Size = "other", 20 })), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := FilePublisher{Path: filepath.Join(t.TempDir(), "cp")}
			first := sign(k, base)
			if err := p.Publish(first); err != nil {
				t.Fatal(err)
			}
			err := p.Publish(tc.next)
			got := readFile(t, p.Path)
			if tc.ok {
				if err != nil || !bytes.Equal(got, tc.next) {
					t.Fatalf("publish: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCheckpointNotExtended) || !bytes.Equal(got, first) {
				t.Fatalf("publish: err = %v, file replaced: %v", err, !bytes.Equal(got, first))
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	writeFile(t, dst, readFile(t, src))
}

// shiftClock is a clock tests can move forward.
type shiftClock struct{ now time.Time }

func (c *shiftClock) Now() time.Time { c.now = c.now.Add(time.Millisecond); return c.now }

func TestVerifyBoundsAgeOfUnsignedRecords(t *testing.T) {
	// A crash an hour after the last checkpoint was signed: impossible for
	// a writer that signs one every checkpoint_interval, what a history cut
	// back to an old checkpoint looks like.
	dir := t.TempDir()
	k := testKey(t, "gw")
	clk := &shiftClock{now: t0}
	l := openTest(t, dir, k, func(o *Options) { o.Clock, o.SegmentSize = clk.Now, 1<<20 })
	for i := range 5 {
		l.Append(t.Context(), decisionRec(i))
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.now = clk.now.Add(time.Hour)
	for i := 5; i < 8; i++ {
		l.Append(t.Context(), decisionRec(i))
	}
	l.Close(t.Context())
	p := filepath.Join(dir, checkpointsFile)
	notes, _ := SplitCheckpoints(readFile(t, p))
	writeFile(t, p, bytes.Join(notes[:len(notes)-1], nil))
	writeFile(t, filepath.Join(dir, latestFile), notes[len(notes)-2])
	segs := segPaths(t, dir)
	seg := segs[len(segs)-1]
	lines := readLines(t, seg)
	writeLines(t, seg, lines[:len(lines)-1]) // the audit_stop
	v := []note.Verifier{verifierOf(t, k)}

	sum, err := Verify(dir, VerifyOptions{Verifiers: v})
	if err != nil || sum.Unsigned != 3 || sum.UnsignedHashed != 3 {
		t.Fatalf("verify without an age bound: %+v %v", sum, err)
	}
	_, err = Verify(dir, VerifyOptions{Verifiers: v, MaxUnsignedAge: DefaultMaxUnsignedAge})
	var p2 *Problem
	if !errors.As(err, &p2) || p2.Kind != KindUnsigned {
		t.Fatalf("verify with the default age bound: %v, want %s", err, KindUnsigned)
	}
	if _, err := Verify(dir, VerifyOptions{Verifiers: v, MaxUnsignedAge: 2 * time.Hour}); err != nil {
		t.Fatalf("verify with a 2h bound: %v", err)
	}
	os.Remove(filepath.Join(dir, hashesFile))
	if sum, err := Verify(dir, VerifyOptions{Verifiers: v}); err != nil || sum.UnsignedHashed != 0 {
		t.Fatalf("verify without stored hashes: %+v %v", sum, err)
	}
}
