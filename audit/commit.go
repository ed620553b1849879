package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// run is the committer: the only goroutine that writes files. It turns
// pending records into one write + fsync per round (group commit) and signs
// checkpoints.
func (l *Log) run() {
	defer close(l.done)
	defer l.closeFiles()
	ticker := time.NewTicker(l.opts.CheckpointInterval)
	defer ticker.Stop()
	var window <-chan time.Time
	// kick is nil while a group-commit window is open: appends then fill
	// its one-slot buffer and go on, instead of waking this goroutine for
	// every record only for it to find the window already set (measured in
	// the bench: 0.85 context switches per request before, 0.74 after).
	kick := l.kick
	for {
		select {
		case <-kick:
			if l.opts.Durability == DurabilityAlways {
				l.commit()
			} else {
				window, kick = time.After(l.opts.GroupCommit), nil
			}
		case <-window:
			window, kick = nil, l.kick
			l.commit()
		case <-ticker.C:
			l.commit()
			l.checkpoint(false)
		case reply := <-l.ctl:
			l.commit()
			reply <- l.checkpoint(false)
		case <-l.stop:
			l.commit()
			l.checkpoint(true)
			close(l.pubCh)
			return
		}
	}
}

// maxSpare bounds the chunk buffer kept for reuse.
const maxSpare = 4 << 20

// commit writes and fsyncs everything pending.
func (l *Log) commit() {
	l.mu.Lock()
	if l.failed != nil || len(l.pend) == 0 {
		l.mu.Unlock()
		return
	}
	chunks := l.pend
	l.pend = nil
	hs := l.hashes.pending
	onDisk := l.hashes.onDisk
	target := l.n
	l.mu.Unlock()

	// Only the records are fsynced here: they are the evidence, and the
	// stored hashes after the last checkpoint are rebuilt from them on
	// restart. The hashes file is fsynced before each checkpoint is signed.
	err := l.writeChunks(chunks)
	if err == nil {
		err = l.writeHashes(onDisk, hs, false)
	}
	if err != nil {
		l.fail(err)
		return
	}
	l.mu.Lock()
	l.hashes.onDisk += int64(len(hs))
	l.hashes.pending = l.hashes.pending[len(hs):]
	if len(l.hashes.pending) == 0 {
		l.hashes.pending = nil
	}
	l.synced = target
	for _, c := range chunks {
		l.pendBytes -= int64(len(c.data))
	}
	// The data is written (Write has returned): its buffer can hold the
	// next round's records.
	if last := chunks[len(chunks)-1].data; cap(last) <= maxSpare && cap(last) > cap(l.spare) {
		l.spare = last[:0]
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *Log) faultAt(op string) error {
	if l.fault != nil {
		return l.fault(op)
	}
	return nil
}

func (l *Log) writeChunks(chunks []chunk) error {
	for _, c := range chunks {
		if c.create || l.seg == nil {
			if l.seg != nil {
				if err := l.seg.Sync(); err != nil {
					return fmt.Errorf("fsync segment: %w", err)
				}
				l.seg.Close()
				l.seg = nil
			}
			if err := l.faultAt("create"); err != nil {
				return err
			}
			path := filepath.Join(l.dir, segmentsDir, segmentName(c.start))
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
			if err != nil {
				return fmt.Errorf("create segment: %w", err)
			}
			l.seg = f
			if err := syncDir(filepath.Join(l.dir, segmentsDir)); err != nil {
				return fmt.Errorf("fsync segments dir: %w", err)
			}
		}
		if err := l.faultAt("write"); err != nil {
			return err
		}
		if _, err := l.seg.Write(c.data); err != nil {
			return fmt.Errorf("write segment: %w", err)
		}
	}
	if err := l.faultAt("sync"); err != nil {
		return err
	}
	if err := l.seg.Sync(); err != nil {
		return fmt.Errorf("fsync segment: %w", err)
	}
	return nil
}

func (l *Log) writeHashes(onDisk int64, hs []tlog.Hash, sync bool) error {
	if len(hs) > 0 {
		buf := make([]byte, 0, len(hs)*tlog.HashSize)
		for _, h := range hs {
			buf = append(buf, h[:]...)
		}
		if _, err := l.hashFile.WriteAt(buf, onDisk*tlog.HashSize); err != nil {
			return fmt.Errorf("write stored hashes: %w", err)
		}
	}
	if sync {
		if err := l.hashFile.Sync(); err != nil {
			return fmt.Errorf("fsync stored hashes: %w", err)
		}
	}
	return nil
}

// checkpoint signs the tree of the durable records if it grew (or always
// when force), appends it to the history, replaces the latest copy and
// publishes it.
func (l *Log) checkpoint(force bool) error {
	l.mu.Lock()
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return err
	}
	n := l.synced
	if l.haveCP && l.lastCP.Size == n && !force {
		l.mu.Unlock()
		return nil
	}
	root, err := tlog.TreeHash(n, &l.hashes)
	l.mu.Unlock()
	if err != nil {
		l.fail(fmt.Errorf("checkpoint tree hash: %w", err))
		return err
	}
	// Hashes up to n are in the file (commit wrote them); make them durable
	// before a checkpoint vouches for them: restart trusts them up to there.
	if err := l.writeHashes(0, nil, true); err != nil {
		l.fail(err)
		return err
	}
	cp := Checkpoint{Origin: l.opts.Origin, Size: n, Root: root, Time: l.opts.Clock().UTC()}
	msg, err := SignCheckpoint(cp, l.opts.Key.Signer)
	if err != nil {
		l.fail(err)
		return err
	}
	if err := l.faultAt("checkpoint"); err != nil {
		l.fail(err)
		return err
	}
	if _, err := l.cpFile.Write(msg); err != nil {
		l.fail(fmt.Errorf("write checkpoint: %w", err))
		return err
	}
	if err := l.cpFile.Sync(); err != nil {
		l.fail(fmt.Errorf("fsync checkpoint: %w", err))
		return err
	}
	if err := writeFileAtomic(filepath.Join(l.dir, latestFile), msg, 0o644); err != nil {
		l.fail(fmt.Errorf("write latest checkpoint: %w", err))
		return err
	}
	l.mu.Lock()
	l.lastCP, l.haveCP = cp, true
	l.mu.Unlock()
	if len(l.opts.Publishers) > 0 {
		// Hand the newest checkpoint to the publisher goroutine, replacing
		// one it has not sent yet: a slow webhook never holds up commits.
		select {
		case <-l.pubCh:
		default:
		}
		l.pubCh <- msg
	}
	return nil
}

// publishLoop sends checkpoints to the publishers until pubCh is closed.
func (l *Log) publishLoop() {
	defer close(l.pubDone)
	for msg := range l.pubCh {
		for _, p := range l.opts.Publishers {
			if err := p.Publish(msg); err != nil && l.opts.OnAlert != nil {
				l.opts.OnAlert(fmt.Errorf("publish audit checkpoint: %w", err))
			}
		}
	}
}

// recover opens the files, repairs a torn tail (a partial last line, stored
// hashes behind or ahead of the records, a partial last checkpoint) and
// checks the tail against the last checkpoint. It reads the last segment and
// O(log n) stored hashes, never the whole log.
func (l *Log) recover() error {
	if err := os.MkdirAll(filepath.Join(l.dir, segmentsDir), 0o750); err != nil {
		return fmt.Errorf("create audit dir: %w", err)
	}
	var err error
	l.hashFile, err = os.OpenFile(filepath.Join(l.dir, hashesFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open stored hashes: %w", err)
	}
	l.hashes.f = l.hashFile
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	l.segStart = -1
	var n int64
	var last segmentInfo
	var tail [][]byte // lines of the last segment
	if len(segs) > 0 {
		last = segs[len(segs)-1]
		var size int64
		tail, size, err = readTail(last)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTailMismatch, err)
		}
		n = last.Start + int64(len(tail))
		f, err := os.OpenFile(last.Path, os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open segment: %w", err)
		}
		if err := f.Truncate(size); err != nil { // drop a torn last line
			f.Close()
			return fmt.Errorf("truncate torn segment tail: %w", err)
		}
		l.seg = f
		l.segStart, l.segBytes, l.segCount = last.Start, size, int64(len(tail))
		if len(tail) > 0 {
			if r, err := ParseRecord(tail[0]); err == nil {
				l.segFirst = r.Time
			}
		}
	}
	// The last checkpoint: stored hashes are durable up to its size.
	cp, haveCP, err := l.loadLastCheckpoint()
	if err != nil {
		return err
	}
	if haveCP && cp.Size > n {
		return fmt.Errorf("%w: last checkpoint covers %d records, the log has %d (truncated)", ErrTailMismatch, cp.Size, n)
	}
	// Stored hashes: keep the prefix that covers whole records up to the
	// last checkpoint (fsynced before it was signed); recompute the rest
	// from the records, which are what was fsynced.
	st, err := l.hashFile.Stat()
	if err != nil {
		return fmt.Errorf("stat stored hashes: %w", err)
	}
	have := st.Size() / tlog.HashSize
	covered := recordsCovered(have) // records whose hashes are all stored
	// Records no checkpoint covers are vouched for by nothing but the crash
	// story: the stored hashes are fsynced before each checkpoint is
	// signed, and Open signs one before it returns. So records beyond the
	// last checkpoint are accepted only when the stored hashes reach it;
	// without them (deleted, or a copy without its hashes) and without any
	// checkpoint, the only records a crash can leave are those Open writes
	// before its first checkpoint (audit_start, key_change).
	if signed := cp.Size; n > signed && (!haveCP || covered < signed) {
		if err := openingRecordsOnly(segs, signed, n); err != nil {
			if !haveCP {
				return fmt.Errorf("%w: records but no signed checkpoint: %v", ErrTailMismatch, err)
			}
			return fmt.Errorf("%w: stored hashes end before the last checkpoint (%d records), and records after it are not what a crash leaves: %v", ErrTailMismatch, signed, err)
		}
	}
	covered = min(covered, n, cp.Size)
	if err := l.hashFile.Truncate(tlog.StoredHashCount(covered) * tlog.HashSize); err != nil {
		return fmt.Errorf("truncate stored hashes: %w", err)
	}
	l.hashes.onDisk = tlog.StoredHashCount(covered)
	if covered < n {
		if err := l.rehash(segs, covered, n); err != nil {
			return err
		}
	}
	// The last segment's records must match their stored hashes.
	for i, line := range tail {
		idx := last.Start + int64(i)
		got, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, idx)})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTailMismatch, err)
		}
		if got[0] != tlog.RecordHash(line) {
			return fmt.Errorf("%w: record %d (%s line %d) differs from its stored hash", ErrTailMismatch, idx, last.Name, i+1)
		}
	}
	l.n, l.synced = n, n
	// Persist recomputed hashes before anything else is appended.
	if len(l.hashes.pending) > 0 {
		hs := l.hashes.pending
		if err := l.writeHashes(l.hashes.onDisk, hs, true); err != nil {
			return err
		}
		l.hashes.onDisk += int64(len(hs))
		l.hashes.pending = nil
	}
	if !haveCP {
		return l.checkAnchors(n)
	}
	root, err := tlog.TreeHash(cp.Size, &l.hashes)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTailMismatch, err)
	}
	if root != cp.Root {
		return fmt.Errorf("%w: tree of %d records has root %s, checkpoint says %s", ErrTailMismatch, cp.Size, root, cp.Root)
	}
	l.lastCP, l.haveCP = cp, true
	return l.checkAnchors(n)
}

// logOrigin is the origin of the log's checkpoints: that of the last one,
// or the configured one for a log without any.
func (l *Log) logOrigin() string {
	if l.haveCP {
		return l.lastCP.Origin
	}
	return l.opts.Origin
}

// recordsIn calls fn for each record line from..to-1 of segs, in order,
// with its segment and line number; readErr wraps a segment that cannot
// be read.
func recordsIn(segs []segmentInfo, from, to int64, readErr func(error) error, fn func(idx int64, s segmentInfo, lineNo int, line []byte) error) error {
	for i, s := range segs {
		end := to
		if i+1 < len(segs) {
			end = segs[i+1].Start
		}
		if end <= from || s.Start >= to {
			continue
		}
		lines, _, err := readTail(s)
		if err != nil {
			return readErr(err)
		}
		for j, line := range lines {
			if idx := s.Start + int64(j); idx >= from && idx < to {
				if err := fn(idx, s, j+1, line); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// openingRecordsOnly checks that records from..to-1 are all records Open
// appends before it signs its first checkpoint.
func openingRecordsOnly(segs []segmentInfo, from, to int64) error {
	return recordsIn(segs, from, to, func(err error) error { return err }, func(idx int64, s segmentInfo, lineNo int, line []byte) error {
		r, err := ParseRecord(line)
		if err != nil {
			return fmt.Errorf("record %d: %w", idx, err)
		}
		if r.Type != TypeAuditStart && r.Type != TypeKeyChange {
			return fmt.Errorf("record %d (%s line %d) is a %s record", idx, s.Name, lineNo, r.Type)
		}
		return nil
	})
}

// checkAnchors checks the log of n records against the other copies of
// what it once said: the latest checkpoint file and the checkpoint each
// FilePublisher last published. Each must be contained in the log: same
// origin, size not beyond it, same root at its size. A rolled-back or
// rewritten log is refused here rather than signed and published over the
// copy that exposes it.
func (l *Log) checkAnchors(n int64) error {
	type anchor struct{ name, path string }
	anchors := []anchor{{"latest checkpoint " + latestFile, filepath.Join(l.dir, latestFile)}}
	for _, p := range l.opts.Publishers {
		switch fp := p.(type) {
		case FilePublisher:
			anchors = append(anchors, anchor{"published checkpoint " + fp.Path, fp.Path})
		case *FilePublisher:
			anchors = append(anchors, anchor{"published checkpoint " + fp.Path, fp.Path})
		}
	}
	for _, a := range anchors {
		msg, err := os.ReadFile(a.path)
		if errors.Is(err, os.ErrNotExist) {
			continue // never written (new log, or publishing just enabled)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", a.name, err)
		}
		cp, err := l.openSigned(msg)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrTailMismatch, a.name, err)
		}
		if origin := l.logOrigin(); cp.Origin != origin {
			return fmt.Errorf("%w: %s has origin %q, the log %q", ErrTailMismatch, a.name, cp.Origin, origin)
		}
		if cp.Size > n {
			return fmt.Errorf("%w: %s covers %d records, the log has %d (rolled back)", ErrTailMismatch, a.name, cp.Size, n)
		}
		root, err := tlog.TreeHash(cp.Size, &l.hashes)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrTailMismatch, a.name, err)
		}
		if root != cp.Root {
			return fmt.Errorf("%w: %s: tree of %d records has root %s, checkpoint says %s (rewritten or forked)", ErrTailMismatch, a.name, cp.Size, root, cp.Root)
		}
	}
	return nil
}

// openSigned verifies a checkpoint with a key of key.pub or the current key.
func (l *Log) openSigned(msg []byte) (Checkpoint, error) {
	vs, err := readKeyList(filepath.Join(l.dir, pubKeyFile))
	if err != nil {
		return Checkpoint{}, err
	}
	vs = append(vs, l.opts.Key.Verifier)
	lastErr := errors.New("no verifier key")
	for _, vk := range vs {
		v, err := ParseVerifierKey(vk)
		if err != nil {
			continue
		}
		c, err := OpenCheckpoint(msg, v)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return Checkpoint{}, lastErr
}

// recordsCovered returns the largest n with StoredHashCount(n) <= have.
func recordsCovered(have int64) int64 {
	lo, hi := int64(0), have // StoredHashCount(n) >= n
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if tlog.StoredHashCount(mid) <= have {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// rehash recomputes stored hashes for records from..to-1 into pending.
func (l *Log) rehash(segs []segmentInfo, from, to int64) error {
	next := from
	err := recordsIn(segs, from, to, func(err error) error { return fmt.Errorf("%w: %v", ErrTailMismatch, err) },
		func(idx int64, s segmentInfo, _ int, line []byte) error {
			if idx != next {
				return fmt.Errorf("%w: segment %s does not continue at record %d", ErrTailMismatch, s.Name, next)
			}
			hs, err := tlog.StoredHashes(idx, line, &l.hashes)
			if err != nil {
				return fmt.Errorf("rehash record %d: %w", idx, err)
			}
			l.hashes.pending = append(l.hashes.pending, hs...)
			next++
			return nil
		})
	if err != nil {
		return err
	}
	from = next
	if from != to {
		return fmt.Errorf("%w: records %d..%d missing", ErrTailMismatch, from, to-1)
	}
	return nil
}

// readTail reads a segment's complete lines, checking that their indexes
// run on from the segment's start. size is the length of the complete lines
// (a torn final line is not counted).
func readTail(s segmentInfo) (lines [][]byte, size int64, err error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, 0, fmt.Errorf("open segment %s: %w", s.Name, err)
	}
	defer f.Close()
	sc := newLineScanner(f)
	for {
		line, off, complete, err := sc.next()
		if errors.Is(err, io.EOF) {
			return lines, size, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("segment %s line %d: %w", s.Name, sc.lineNo+1, err)
		}
		if !complete {
			return lines, off, nil
		}
		r, err := ParseRecord(line)
		want := s.Start + int64(len(lines))
		if err != nil {
			return nil, 0, fmt.Errorf("segment %s line %d: %w", s.Name, sc.lineNo, err)
		}
		if r.Index != want {
			return nil, 0, fmt.Errorf("segment %s line %d: index %d, want %d", s.Name, sc.lineNo, r.Index, want)
		}
		lines = append(lines, bytes.Clone(line))
		size = off + int64(len(line)) + 1
	}
}

// loadLastCheckpoint opens the checkpoint history for appending (dropping
// a torn final note) and returns its last checkpoint, which must be signed
// by a key of key.pub or the current key.
func (l *Log) loadLastCheckpoint() (Checkpoint, bool, error) {
	path := filepath.Join(l.dir, checkpointsFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Checkpoint{}, false, fmt.Errorf("read checkpoints: %w", err)
	}
	notes, good, err := scanNotes(data)
	if err != nil && !errors.Is(err, errIncompleteNote) {
		return Checkpoint{}, false, fmt.Errorf("%w: checkpoint history: %v", ErrTailMismatch, err)
	}
	if l.cpFile, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return Checkpoint{}, false, fmt.Errorf("open checkpoints: %w", err)
	}
	if err := l.cpFile.Truncate(int64(good)); err != nil {
		return Checkpoint{}, false, fmt.Errorf("truncate torn checkpoint: %w", err)
	}
	if _, err := l.cpFile.Seek(0, io.SeekEnd); err != nil {
		return Checkpoint{}, false, fmt.Errorf("seek checkpoints: %w", err)
	}
	if len(notes) == 0 {
		// No checkpoint yet (new log, or a crash before the first one):
		// recover accepts only the records Open writes before its first
		// checkpoint; checkAnchors compares the latest and published
		// copies, so a deleted history is refused too.
		return Checkpoint{}, false, nil
	}
	c, err := l.openSigned(notes[len(notes)-1])
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("%w: last checkpoint: %v", ErrTailMismatch, err)
	}
	return c, true, nil
}

// readKeyList reads key.pub: one verifier key per line, newest first.
func readKeyList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var keys []string
	for _, line := range bytes.Split(b, []byte("\n")) {
		if s := string(bytes.TrimSpace(line)); s != "" {
			keys = append(keys, s)
		}
	}
	return keys, nil
}
