package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestBackupIsAVerifiableLog: a backup of a live log verifies as a log of
// its own; the next run copies only what grew; a record changed in the
// copy is caught by verify like in the original.
func TestBackupIsAVerifiableLog(t *testing.T) {
	dir, dst := t.TempDir(), t.TempDir()
	k := testKey(t, "audit.test")
	l := openTest(t, dir, k, nil) // 2 KB segments: several
	ctx := t.Context()
	appendN := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := l.Append(ctx, decisionRec(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	appendN(0, 40)
	b := NewBackup(dir, DirTarget{Dir: dst})
	st, err := b.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	segs := segPaths(t, dir)
	if len(segs) < 3 || st.Uploaded < len(segs)+3 {
		t.Fatalf("first run uploaded %d objects for %d segments", st.Uploaded, len(segs))
	}
	sum, err := Verify(dst, VerifyOptions{})
	if err != nil {
		t.Fatalf("verify backup: %v", err)
	}
	if sum.Records < 40 || sum.Checkpoints == 0 {
		t.Fatalf("backup summary %+v", sum)
	}

	// Nothing new: only the latest checkpoint copy is rewritten.
	if st, err = b.Run(ctx); err != nil || st.Uploaded != 1 {
		t.Fatalf("idle run uploaded %d (%v), want the latest checkpoint only", st.Uploaded, err)
	}
	appendN(40, 3) // the active segment grows
	st, err = b.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if grown := len(segPaths(t, dir)) - len(segs); st.Uploaded > 3+2*grown {
		t.Fatalf("after 3 records the run uploaded %d objects: closed segments went again", st.Uploaded)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sum2, err := Verify(dst, VerifyOptions{})
	if err != nil || sum2.Records != sum.Records+3+1 { // +1: the log's stop record
		t.Fatalf("verify after close: %+v %v (before %d records)", sum2, err, sum.Records)
	}

	// A temporary file a crashed upload left does not spoil the copy.
	os.MkdirAll(filepath.Join(dst, backupTmpDir), 0o750)
	os.WriteFile(filepath.Join(dst, backupTmpDir, "00000000000000000000.jsonl.9"), []byte("half"), 0o640)
	if _, err := Verify(dst, VerifyOptions{}); err != nil {
		t.Fatalf("verify with a leftover upload: %v", err)
	}

	// The copy is evidence like the original: tampering shows.
	first := filepath.Join(dst, segmentsDir, filepath.Base(segs[0]))
	lines := readLines(t, first)
	lines[1] = bytes.Replace(lines[1], []byte("req-"), []byte("rex-"), 1)
	writeLines(t, first, lines)
	if _, err := Verify(dst, VerifyOptions{}); err == nil {
		t.Fatal("a modified record in the backup verified")
	}
}

// TestBackupMirrorsShreddedKeys: retention's crypto-shredding reaches the
// backup, or the copy would keep what the original destroyed.
func TestBackupMirrorsShreddedKeys(t *testing.T) {
	dir, dst := t.TempDir(), t.TempDir()
	k := testKey(t, "audit.test")
	clock := time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC)
	l := openTest(t, dir, k, func(o *Options) {
		o.EncryptionKey = testMaster
		o.Clock = func() time.Time { clock = clock.Add(12 * time.Hour); return clock }
	})
	for i := range 8 { // October and November
		if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close(t.Context())
	b := NewBackup(dir, DirTarget{Dir: dst})
	if _, err := b.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	keys := func(d string) []string {
		es, _ := os.ReadDir(filepath.Join(d, keysDir))
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	if got := keys(dst); len(got) != 2 {
		t.Fatalf("backup keys %v, want October's and November's", got)
	}
	if _, err := Shred(dir, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	st, err := b.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Deleted != 1 || strings.Join(keys(dst), ",") != strings.Join(keys(dir), ",") {
		t.Fatalf("after shredding: deleted %d, backup keys %v, log keys %v", st.Deleted, keys(dst), keys(dir))
	}
	if _, err := Verify(dst, VerifyOptions{}); err != nil {
		t.Fatalf("a shredded backup must still verify: %v", err)
	}
}

// TestBackupRefusesAnotherLog: after a lost disk, the empty log that
// replaces it must not overwrite the copy that may be the only evidence
// left; nor may another log's.
func TestBackupRefusesAnotherLog(t *testing.T) {
	dir, dst := t.TempDir(), t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 42)
	if _, err := NewBackup(dir, DirTarget{Dir: dst}).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	before, err := Verify(dst, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fresh := t.TempDir()
	writeLog(t, fresh, k, 3) // the same key, a new and shorter log
	if _, err := NewBackup(fresh, DirTarget{Dir: dst}).Run(t.Context()); !errors.Is(err, ErrBackupDiverged) {
		t.Fatalf("fresh log over an old backup: %v, want ErrBackupDiverged", err)
	}
	after, err := Verify(dst, VerifyOptions{})
	if err != nil || after.Records != before.Records {
		t.Fatalf("the old backup was damaged: %+v %v", after, err)
	}
	// A segment longer in the copy than in the log is refused as well
	// (a copy with no history yet).
	dst2 := t.TempDir()
	segs := segPaths(t, dir)
	os.MkdirAll(filepath.Join(dst2, segmentsDir), 0o750)
	data, _ := os.ReadFile(segPaths(t, fresh)[0])
	os.WriteFile(filepath.Join(dst2, segmentsDir, filepath.Base(segs[0])), append(data, data...), 0o640)
	if _, err := NewBackup(fresh, DirTarget{Dir: dst2}).Run(t.Context()); !errors.Is(err, ErrBackupDiverged) {
		t.Fatalf("longer segment in the copy: %v, want ErrBackupDiverged", err)
	}
}

// TestBackupClaimsItsTarget: two replicas given the same target before
// either wrote a checkpoint cannot take turns overwriting it; files under
// keys/ that are not wrapped data keys are never deleted.
func TestBackupClaimsItsTarget(t *testing.T) {
	k := testKey(t, "audit.test")
	a, b, dst := t.TempDir(), t.TempDir(), t.TempDir()
	for i, d := range []string{a, b} {
		l := openTest(t, d, k, func(o *Options) { o.Clock = fakeClock(t0.Add(time.Duration(i) * time.Hour)) })
		if _, err := l.Append(t.Context(), decisionRec(1)); err != nil {
			t.Fatal(err)
		}
		l.Close(t.Context())
	}
	os.MkdirAll(filepath.Join(dst, keysDir), 0o700)
	os.WriteFile(filepath.Join(dst, keysDir, "README"), []byte("not a key"), 0o600)
	if _, err := NewBackup(a, DirTarget{Dir: dst}).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewBackup(b, DirTarget{Dir: dst}).Run(t.Context()); !errors.Is(err, ErrBackupDiverged) {
		t.Fatalf("second log on a claimed target: %v, want ErrBackupDiverged", err)
	}
	if _, err := NewBackup(a, DirTarget{Dir: dst}).Run(t.Context()); err != nil {
		t.Fatalf("the owner's next run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, keysDir, "README")); err != nil {
		t.Errorf("a file under keys/ that is not a data key was deleted: %v", err)
	}
}

func TestCompletePrefix(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	for _, tc := range []struct {
		name string
		data string
		want int64
	}{
		{"empty", "", 0},
		{"complete", "a\nb\n", 4},
		{"torn last line", "a\nb\nhalf", 4},
		{"no newline", "half", 0},
		{"line longer than a read step", "a\n" + long, 2},
		{"newline after a long line", long + "\n" + "c", int64(len(long) + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := completePrefix(strings.NewReader(tc.data), int64(len(tc.data)))
			if err != nil || got != tc.want {
				t.Fatalf("completePrefix = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestBackupHalfWrittenCheckpoint: a checkpoint being written when the
// run reads the history is left for the next run; the copy still verifies.
func TestBackupHalfWrittenCheckpoint(t *testing.T) {
	dir, dst := t.TempDir(), t.TempDir()
	writeLog(t, dir, testKey(t, "audit.test"), 25)
	f, err := os.OpenFile(filepath.Join(dir, checkpointsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("audit.test\n30\nhalf a note")
	f.Close()
	if _, err := NewBackup(dir, DirTarget{Dir: dst}).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dst, checkpointsFile))
	if bytes.Contains(b, []byte("half a note")) {
		t.Fatal("the torn note was copied")
	}
	if _, err := Verify(dst, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestDirTargetRefusesEscapingNames(t *testing.T) {
	d := DirTarget{Dir: t.TempDir()}
	for _, name := range []string{"../x", "/etc/passwd", "a/../../x", "", "."} {
		if err := d.Put(context.Background(), name, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) accepted", name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Put(ctx, "segments/x", strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: %v", err)
	}
	if es, _ := os.ReadDir(filepath.Join(d.Dir, "segments")); len(es) != 0 {
		t.Errorf("a cancelled Put left %v", es)
	}
	if es, _ := os.ReadDir(filepath.Join(d.Dir, backupTmpDir)); len(es) != 0 {
		t.Errorf("a cancelled Put left a temporary file: %v", es)
	}
	// A crash mid-upload leaves its temporary file apart from the copy,
	// which still verifies; Clean removes it.
	os.MkdirAll(filepath.Join(d.Dir, backupTmpDir), 0o750)
	os.WriteFile(filepath.Join(d.Dir, backupTmpDir, "00000000000000000000.jsonl.123"), []byte("half"), 0o640)
	if err := d.Clean(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, backupTmpDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Clean left %v", err)
	}
}

// TestDirTargetCreateRace: of many writers creating one name at once,
// exactly one wins, and the file holds the winner's content.
func TestDirTargetCreateRace(t *testing.T) {
	for round := range 20 {
		d := DirTarget{Dir: t.TempDir()}
		var wg sync.WaitGroup
		wins := make(chan string, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				me := fmt.Sprintf("writer %d", w)
				ok, err := d.Create(context.Background(), "backup-of", []byte(me))
				if err != nil {
					t.Errorf("round %d %s: %v", round, me, err)
				}
				if ok {
					wins <- me
				}
			}()
		}
		wg.Wait()
		close(wins)
		var won []string
		for w := range wins {
			won = append(won, w)
		}
		got, _, _ := d.Read(context.Background(), "backup-of")
		if len(won) != 1 || string(got) != won[0] {
			t.Fatalf("round %d: winners %v, file %q", round, won, got)
		}
	}
}

func TestDirTargetCreateOnce(t *testing.T) {
	d := DirTarget{Dir: t.TempDir()}
	for i, want := range []bool{true, false} {
		got, err := d.Create(t.Context(), "backup-of", []byte(fmt.Sprintf("writer %d", i)))
		if err != nil || got != want {
			t.Fatalf("Create #%d = %v, %v; want %v", i, got, err, want)
		}
	}
	if b, _, _ := d.Read(t.Context(), "backup-of"); string(b) != "writer 0" {
		t.Fatalf("the second writer replaced the first: %q", b)
	}
	if es, _ := os.ReadDir(filepath.Join(d.Dir, backupTmpDir)); len(es) != 0 {
		t.Errorf("Create left %v", es)
	}
}

func TestBackupKeepsCopyOfAlteredActiveSegment(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same backup"
		if restart {
			name = "after a restart"
		}
		t.Run(name, func(t *testing.T) {
			dir, dst := t.TempDir(), t.TempDir()
			k := testKey(t, "gw")
			ctx := context.Background()
			l := openTest(t, dir, k, func(o *Options) { o.SegmentSize = 1 << 20 })
			defer l.Close(ctx)
			for i := range 10 {
				if _, err := l.Append(ctx, decisionRec(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			b := NewBackup(dir, DirTarget{Dir: dst})
			if _, err := b.Run(ctx); err != nil {
				t.Fatal(err)
			}
			seg := segPaths(t, dir)[0]
			copyPath := filepath.Join(dst, segmentsDir, filepath.Base(seg))
			orig := readFile(t, copyPath)
			// Re-attribute a signed record to another user (same length).
			lines := readLines(t, seg)
			lines[1] = bytes.Replace(lines[1], []byte(`"sub":"user-0"`), []byte(`"sub":"user-2"`), 1)
			writeLines(t, seg, lines)
			for i := 10; i < 15; i++ {
				if _, err := l.Append(ctx, decisionRec(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if restart {
				b = NewBackup(dir, DirTarget{Dir: dst})
			}
			if _, err := b.Run(ctx); !errors.Is(err, ErrBackupDiverged) {
				t.Fatalf("backup of an altered segment: err = %v, want ErrBackupDiverged", err)
			}
			if got := readFile(t, copyPath); !bytes.Equal(got, orig) {
				t.Fatal("the copy of the segment was replaced")
			}
		})
	}
}

func TestBackupActiveSegmentGrowsRunAfterRun(t *testing.T) {
	// The prefix check passes for a segment that only grew, from this
	// Backup's memory and, after a restart, from reading the copy back.
	dir, dst := t.TempDir(), t.TempDir()
	k := testKey(t, "gw")
	ctx := context.Background()
	l := openTest(t, dir, k, func(o *Options) { o.SegmentSize = 1 << 20 })
	b := NewBackup(dir, DirTarget{Dir: dst})
	for round := range 3 {
		for i := range 5 {
			if _, err := l.Append(ctx, decisionRec(round*5+i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if round == 2 {
			b = NewBackup(dir, DirTarget{Dir: dst})
		}
		if _, err := b.Run(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, err := Verify(dst, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}}); err != nil || sum.Records != 17 {
		t.Fatalf("verify the copy: %+v %v", sum, err)
	}
}
