package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// BackupTarget is where a Backup copies a log directory: a bucket of named
// objects (gocloud.dev/blob in the proxy, a directory or S3). Names are
// slash paths relative to the log directory ("segments/…jsonl").
type BackupTarget interface {
	// Size reports an object's size, and false when there is none.
	Size(ctx context.Context, name string) (int64, bool, error)
	// Put replaces an object with the content of r, atomically: a reader
	// sees the old object or the new one.
	Put(ctx context.Context, name string, r io.Reader) error
	// Delete removes an object; a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// List names the objects under prefix.
	List(ctx context.Context, prefix string) ([]string, error)
	// Read returns an object's content, and false when there is none.
	Read(ctx context.Context, name string) ([]byte, bool, error)
	// Create writes an object only if there is none, atomically, and
	// reports whether it did: of two writers, one wins.
	Create(ctx context.Context, name string, data []byte) (bool, error)
}

// ErrBackupDiverged means the target holds a copy that is not an earlier
// state of this log — another log's, or this one's before a lost disk
// was replaced by an empty log. Backup refuses to overwrite it: that copy
// may be the only evidence left.
var ErrBackupDiverged = errors.New("the backup target holds a log this one does not continue")

// BackupStats is what one Backup.Run did.
type BackupStats struct {
	Uploaded      int   // objects written
	UploadedBytes int64 // bytes written
	Deleted       int   // wrapped data keys removed (shredded locally)
}

// Backup copies a live log directory to a target so that a lost disk does
// not lose the evidence: the copy is itself a log directory that `gatehouse
// audit verify` checks like the original.
//
// A target holds one log: the first run writes the log's identity there
// (backup-of: the hash of its first record) and every run checks it, so a
// new log after a lost disk, or a second replica given the same URL, never
// overwrites another log's copy (ErrBackupDiverged).
//
// Each Run reads the checkpoint history first and the segments after it,
// and uploads in the other order — segments, data keys, key.pub, then the
// checkpoints — so that the copy never holds a checkpoint for records it
// lacks, even if a run stops half-way. Closed segments never change and
// are uploaded once (a target object of the same size is taken as done);
// the active segment is uploaded up to its last complete line whenever it
// grew. The stored-hashes file is left out: verify rebuilds the tree from
// the records. Wrapped data keys are mirrored, deletions included, so that
// retention's crypto-shredding also shreds the backup.
//
// Before a grown segment replaces its copy, the copy must be a prefix of
// the local file: the SHA-256 of what this Backup uploaded is remembered,
// and a copy it did not upload (after a restart) is read back and compared.
// A local segment whose bytes no longer match the copy was altered, and the
// copy is the evidence: ErrBackupDiverged, nothing replaced.
type Backup struct {
	dir    string
	target BackupTarget
	mu     sync.Mutex
	sent   map[string]sentCopy // segment name -> what this Backup uploaded
}

// sentCopy is the size and SHA-256 of a segment as uploaded.
type sentCopy struct {
	size int64
	sum  [sha256.Size]byte
}

// NewBackup returns a Backup of the log in dir to target.
func NewBackup(dir string, target BackupTarget) *Backup {
	return &Backup{dir: dir, target: target, sent: map[string]sentCopy{}}
}

// Run makes one pass. It is safe while a writer appends to the log, and
// errors leave what was uploaded in place for the next run to complete.
func (b *Backup) Run(ctx context.Context) (BackupStats, error) {
	var st BackupStats
	// 0. Whose copy the target holds: written first, checked every run.
	if err := b.claim(ctx, &st); err != nil {
		return st, err
	}
	// 1. The checkpoint history, cut at its last complete note (a write in
	// progress is left for the next run), and the latest copy.
	history, err := os.ReadFile(filepath.Join(b.dir, checkpointsFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("backup: read checkpoints: %w", err)
	}
	if _, good, err := scanNotes(history); err != nil && !errors.Is(err, errIncompleteNote) {
		return st, fmt.Errorf("backup: %s: %w", checkpointsFile, err)
	} else {
		history = history[:good]
	}
	// The target must hold an earlier state of this log: its history a
	// prefix of ours, none of its segments longer than ours.
	if old, ok, err := b.target.Read(ctx, checkpointsFile); err != nil {
		return st, fmt.Errorf("backup: read the copy's %s: %w", checkpointsFile, err)
	} else if ok && !bytes.HasPrefix(history, old) {
		return st, fmt.Errorf("backup: %w: its %s (%d bytes) is not a prefix of the log's (%d bytes)", ErrBackupDiverged, checkpointsFile, len(old), len(history))
	}
	latest, err := os.ReadFile(filepath.Join(b.dir, latestFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("backup: read latest checkpoint: %w", err)
	}
	pub, err := os.ReadFile(filepath.Join(b.dir, pubKeyFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("backup: read %s: %w", pubKeyFile, err)
	}

	// 2. Segments, read after the history: they hold at least every record
	// a checkpoint in it covers.
	segs, err := listSegments(b.dir)
	if err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	for i, s := range segs {
		if err := b.segment(ctx, s, i == len(segs)-1, &st); err != nil {
			return st, err
		}
	}
	if err := b.keys(ctx, &st); err != nil {
		return st, err
	}
	// 3. What vouches for the records goes last.
	for _, f := range []struct {
		name string
		data []byte
	}{{pubKeyFile, pub}, {checkpointsFile, history}, {latestFile, latest}} {
		if f.data == nil {
			continue
		}
		if err := b.putIfChanged(ctx, f.name, f.data, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// identityFile names the object that says which log a target copies.
const identityFile = "backup-of"

// identity is this log's name for its backups: the SHA-256 of its first
// record (the start record, unique to the log) and its origin line.
func (b *Backup) identity() ([]byte, error) {
	segs, err := listSegments(b.dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("no records yet in %s", b.dir)
	}
	f, err := os.Open(segs[0].Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, _, complete, err := newLineScanner(f).next()
	if err != nil {
		return nil, fmt.Errorf("first record of %s: %w", segs[0].Name, err)
	}
	if !complete {
		return nil, fmt.Errorf("first record of %s is still being written", segs[0].Name)
	}
	sum := sha256.Sum256(line)
	return fmt.Appendf(nil, "gatehouse audit log backup\nfirst-record-sha256 %x\n", sum), nil
}

// claim makes sure the target copies this log: an empty target is claimed
// (the identity object first), one that names another log — or holds
// segments without naming any — is refused before anything is written.
func (b *Backup) claim(ctx context.Context, st *BackupStats) error {
	id, err := b.identity()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	have, ok, err := b.target.Read(ctx, identityFile)
	if err != nil {
		return fmt.Errorf("backup: read the copy's %s: %w", identityFile, err)
	}
	if ok {
		if !bytes.Equal(have, id) {
			return fmt.Errorf("backup: %w: its %s names another log", ErrBackupDiverged, identityFile)
		}
		return nil
	}
	for _, folder := range []string{segmentsDir + "/", keysDir + "/"} {
		names, err := b.target.List(ctx, folder)
		if err != nil {
			return fmt.Errorf("backup: list the copy's %s: %w", folder, err)
		}
		for _, n := range names {
			if folder == segmentsDir+"/" || strings.HasSuffix(n, ".key") {
				return fmt.Errorf("backup: %w: it holds %s without saying whose", ErrBackupDiverged, n)
			}
		}
	}
	created, err := b.target.Create(ctx, identityFile, id)
	if err != nil {
		return fmt.Errorf("backup: claim the target: %w", err)
	}
	if !created {
		// Another log claimed the empty target in the same instant (or
		// this one did, in a run that failed after the claim).
		have, _, err := b.target.Read(ctx, identityFile)
		if err != nil {
			return fmt.Errorf("backup: read the copy's %s: %w", identityFile, err)
		}
		if !bytes.Equal(have, id) {
			return fmt.Errorf("backup: %w: another log claimed it first", ErrBackupDiverged)
		}
		return nil
	}
	st.Uploaded++
	st.UploadedBytes += int64(len(id))
	return nil
}

// segment uploads one segment if the target's copy is shorter: closed
// segments whole, the active one up to its last newline.
func (b *Backup) segment(ctx context.Context, s segmentInfo, active bool, st *BackupStats) error {
	name := path.Join(segmentsDir, s.Name)
	f, err := os.Open(s.Path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	size := fi.Size()
	if active {
		if size, err = completePrefix(f, size); err != nil {
			return fmt.Errorf("backup: %s: %w", name, err)
		}
	}
	have, ok, err := b.target.Size(ctx, name)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if ok && have == size {
		return nil
	}
	if ok && have > size {
		return fmt.Errorf("backup: %w: its %s has %d bytes, the log's %d", ErrBackupDiverged, name, have, size)
	}
	if ok && have > 0 {
		if err := b.checkPrefix(ctx, name, f, have); err != nil {
			return err
		}
	}
	h := sha256.New()
	if err := b.target.Put(ctx, name, io.TeeReader(io.NewSectionReader(f, 0, size), h)); err != nil {
		return fmt.Errorf("backup: upload %s: %w", name, err)
	}
	var sent sentCopy
	sent.size = size
	h.Sum(sent.sum[:0])
	b.mu.Lock()
	b.sent[name] = sent
	b.mu.Unlock()
	st.Uploaded++
	st.UploadedBytes += size
	return nil
}

// checkPrefix checks that the target's copy of name (have bytes) is the
// start of the local segment f: by the hash remembered from the upload, or
// else by reading the copy back.
func (b *Backup) checkPrefix(ctx context.Context, name string, f io.ReaderAt, have int64) error {
	b.mu.Lock()
	sent, known := b.sent[name]
	b.mu.Unlock()
	local := io.NewSectionReader(f, 0, have)
	if known && sent.size == have {
		h := sha256.New()
		if _, err := io.Copy(h, local); err != nil {
			return fmt.Errorf("backup: read %s: %w", name, err)
		}
		if !bytes.Equal(h.Sum(nil), sent.sum[:]) {
			return fmt.Errorf("backup: %w: the log's %s no longer starts with the %d bytes uploaded (altered after its backup); the copy is kept", ErrBackupDiverged, name, have)
		}
		return nil
	}
	data, ok, err := b.target.Read(ctx, name)
	if err != nil {
		return fmt.Errorf("backup: read the copy's %s: %w", name, err)
	}
	if !ok || int64(len(data)) != have {
		return fmt.Errorf("backup: %s: the copy changed while it was read", name)
	}
	mine := make([]byte, have)
	if _, err := io.ReadFull(local, mine); err != nil {
		return fmt.Errorf("backup: read %s: %w", name, err)
	}
	if !bytes.Equal(mine, data) {
		return fmt.Errorf("backup: %w: the copy's %s is not the start of the log's (altered after its backup); the copy is kept", ErrBackupDiverged, name)
	}
	return nil
}

// completePrefix is the length of f up to and including its last newline
// within size: a line being written is not copied half.
func completePrefix(f io.ReaderAt, size int64) (int64, error) {
	const step = 64 << 10
	buf := make([]byte, step)
	for end := size; end > 0; {
		start := max(end-step, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// keys mirrors keys/: new wrapped data keys up, shredded ones deleted.
func (b *Backup) keys(ctx context.Context, st *BackupStats) error {
	ents, err := os.ReadDir(filepath.Join(b.dir, keysDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	local := map[string]bool{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		name := path.Join(keysDir, e.Name())
		local[name] = true
		data, err := os.ReadFile(filepath.Join(b.dir, keysDir, e.Name()))
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := b.putIfChanged(ctx, name, data, st); err != nil {
			return err
		}
	}
	remote, err := b.target.List(ctx, keysDir+"/")
	if err != nil {
		return fmt.Errorf("backup: list %s: %w", keysDir, err)
	}
	for _, name := range remote {
		// Only wrapped data keys are ever mirrored, so only they are
		// deleted: nothing else under keys/ is ours to remove.
		if !local[name] && strings.HasSuffix(name, ".key") {
			if err := b.target.Delete(ctx, name); err != nil {
				return fmt.Errorf("backup: delete %s: %w", name, err)
			}
			st.Deleted++
		}
	}
	return nil
}

// putIfChanged uploads small files whose size differs. Checkpoint files
// only grow and key files never change, so size tells new from old.
func (b *Backup) putIfChanged(ctx context.Context, name string, data []byte, st *BackupStats) error {
	have, ok, err := b.target.Size(ctx, name)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if ok && have == int64(len(data)) && name != latestFile {
		return nil
	}
	if err := b.target.Put(ctx, name, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("backup: upload %s: %w", name, err)
	}
	st.Uploaded++
	st.UploadedBytes += int64(len(data))
	return nil
}
