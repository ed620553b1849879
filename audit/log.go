package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Durability says when Append returns relative to fsync.
type Durability string

const (
	// DurabilityBatch returns from Append once the record is sequenced; the
	// log is fsynced at most one group-commit window later.
	DurabilityBatch Durability = "batch"
	// DurabilityAlways returns from Append only after the record is on disk.
	// Concurrent appenders share one fsync (group commit).
	DurabilityAlways Durability = "always"
)

// Defaults for Options.
const (
	DefaultGroupCommit        = 10 * time.Millisecond
	DefaultCheckpointInterval = time.Second
	DefaultSegmentSize        = 64 << 20
	DefaultSegmentAge         = 24 * time.Hour
	maxPendingBytes           = 32 << 20
)

// Options configure a Log. Key is required.
type Options struct {
	Dir                string
	Key                *Key
	Origin             string // checkpoint origin line; default the key name
	Durability         Durability
	GroupCommit        time.Duration
	CheckpointInterval time.Duration
	SegmentSize        int64
	SegmentAge         time.Duration
	// Publishers receive every new checkpoint (file, webhook).
	Publishers []Publisher
	// EncryptionKey (32 bytes) turns on encryption of personal fields.
	EncryptionKey []byte
	// Clock stamps records; default time.Now.
	Clock func() time.Time
	// OnAlert is told of write and publish failures (raise an alert).
	OnAlert func(err error)
}

// Errors of the writer, matched with errors.Is.
var (
	// ErrTailMismatch: on open, the log's tail does not match its last
	// checkpoint (truncated, altered or forked); appending is refused.
	ErrTailMismatch = errors.New("audit log tail does not match its last checkpoint")
	// ErrWriteFailed: a write or fsync failed; the log refuses appends until
	// restarted (requests must get 503).
	ErrWriteFailed = errors.New("audit log write failed")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("audit log closed")
	// ErrLocked: another process writes this log directory.
	ErrLocked = errors.New("audit log is in use by another process")
)

// Log is an open, append-only audit log. It is safe for concurrent use.
type Log struct {
	opts   Options
	dir    string
	sealer *sealer

	mu        sync.Mutex
	cond      *sync.Cond
	n         int64 // records sequenced
	synced    int64 // records durable
	failed    error
	closed    bool
	hashes    hashStore
	pend      []chunk
	pendBytes int64
	spare     []byte    // a written chunk's buffer, reused for the next one
	segBytes  int64     // bytes of the current segment, pending included
	segFirst  time.Time // time of the current segment's first record
	segStart  int64
	segCount  int64
	lastCP    Checkpoint
	haveCP    bool

	// committer-owned
	lock      *os.File // the directory's flock, released last
	seg       *os.File
	hashFile  *os.File
	cpFile    *os.File
	kick      chan struct{}
	ctl       chan chan error
	stop      chan struct{}
	done      chan struct{}
	alertOnce sync.Once
	closeOnce sync.Once
	pubCh     chan []byte
	pubDone   chan struct{}
	fault     func(op string) error // test hook
}

// chunk is pending data for one segment; create means the segment starts here.
type chunk struct {
	start  int64
	create bool
	data   []byte
}

// Open opens (or creates) the log in opts.Dir, checks its tail against the
// last checkpoint, and appends an audit_start record. A tail that does not
// match returns an error wrapping ErrTailMismatch and no Log.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.Key == nil || opts.Key.Signer == nil {
		return nil, fmt.Errorf("open audit log: %w: no signing key", ErrBadKey)
	}
	if opts.Dir == "" {
		return nil, errors.New("open audit log: no dir")
	}
	if opts.Origin == "" {
		opts.Origin = opts.Key.Signer.Name()
	}
	switch opts.Durability {
	case "":
		opts.Durability = DurabilityBatch
	case DurabilityBatch, DurabilityAlways:
	default:
		return nil, fmt.Errorf("open audit log: unknown durability %q", opts.Durability)
	}
	if opts.GroupCommit <= 0 {
		opts.GroupCommit = DefaultGroupCommit
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentAge <= 0 {
		opts.SegmentAge = DefaultSegmentAge
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	l := &Log{opts: opts, dir: opts.Dir, kick: make(chan struct{}, 1), ctl: make(chan chan error),
		stop: make(chan struct{}), done: make(chan struct{}), pubCh: make(chan []byte, 1), pubDone: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", opts.Dir, err)
	}
	l.lock = lock
	if len(opts.EncryptionKey) > 0 {
		s, err := newSealer(opts.Dir, opts.EncryptionKey)
		if err != nil {
			l.unlock()
			return nil, fmt.Errorf("open audit log %s: %w", opts.Dir, err)
		}
		l.sealer = s
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		l.unlock()
		return nil, fmt.Errorf("open audit log %s: %w", opts.Dir, err)
	}
	go l.run()
	go l.publishLoop()
	prev := l.n
	keyChanged, err := l.publishKey()
	if err != nil {
		l.Close(ctx)
		return nil, fmt.Errorf("open audit log %s: %w", opts.Dir, err)
	}
	start := &Record{Type: TypeAuditStart, KeyID: opts.Key.Verifier,
		Detail: map[string]any{"records": prev, "durability": string(opts.Durability), "origin": opts.Origin}}
	if _, err := l.Append(ctx, start); err != nil {
		l.Close(ctx)
		return nil, fmt.Errorf("open audit log %s: %w", opts.Dir, err)
	}
	if keyChanged != "" {
		kc := &Record{Type: TypeKeyChange, KeyID: opts.Key.Verifier, Reason: "audit signing key changed",
			Detail: map[string]any{"previous_key_id": keyChanged}}
		if _, err := l.Append(ctx, kc); err != nil {
			l.Close(ctx)
			return nil, fmt.Errorf("open audit log %s: %w", opts.Dir, err)
		}
	}
	// A log is never without a signed checkpoint: verify treats records no
	// checkpoint covers at all as a deleted history.
	if err := l.Sync(ctx); err != nil {
		l.Close(ctx)
		return nil, fmt.Errorf("open audit log %s: first checkpoint: %w", opts.Dir, err)
	}
	return l, nil
}

// publishKey writes the verifier key to key.pub (newest first, older keys
// kept below it so that old checkpoints still verify). It returns the
// previous key when the signing key changed.
func (l *Log) publishKey() (previous string, err error) {
	path := filepath.Join(l.dir, pubKeyFile)
	old, err := readKeyList(path)
	if err != nil {
		return "", err
	}
	if len(old) > 0 && old[0] == l.opts.Key.Verifier {
		return "", nil
	}
	keys := []string{l.opts.Key.Verifier}
	for _, k := range old {
		if k != l.opts.Key.Verifier {
			keys = append(keys, k)
		}
	}
	var b []byte
	for _, k := range keys {
		b = append(b, k...)
		b = append(b, '\n')
	}
	if err := writeFileAtomic(path, b, 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", pubKeyFile, err)
	}
	if len(old) > 0 {
		return old[0], nil
	}
	return "", nil
}

// Append sequences rec (filling Version, Index and, when zero, Time) and
// writes it. In always mode it returns once the record is fsynced. An error
// means the record is not in the log.
//
// Everything that does not depend on the index or the time (validation,
// encoding the record's fields, the plaintext of sealed fields) is done
// before taking the lock; under it Append only assigns the index and time,
// writes the line's prefix, copies the encoded fields after it into the
// pending segment data and hashes the exact stored line into the tree.
func (l *Log) Append(ctx context.Context, rec *Record) (int64, error) {
	if err := rec.Validate(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("append audit record: %w", err)
	}
	r := *rec
	var plain []byte
	if l.sealer != nil {
		var err error
		if plain, err = l.sealer.plaintext(&r); err != nil {
			return 0, fmt.Errorf("append audit record: %w", err)
		}
	}
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyPool.Put(bp)
		}
	}()
	body, err := appendBody((*bp)[:0], &r)
	*bp = body
	if err != nil {
		return 0, fmt.Errorf("append audit record: %w", err)
	}
	// A record without personal fields keeps a Sealed the caller gave.
	var sealed []byte
	if plain == nil {
		sealed = appendSealed(nil, r.Sealed)
	}
	if len(body) >= maxLine {
		return 0, fmt.Errorf("append audit record: %d bytes, over the %d limit", len(body), maxLine)
	}

	l.mu.Lock()
	for l.pendBytes > maxPendingBytes && l.failed == nil && !l.closed {
		l.cond.Wait()
	}
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return 0, err
	}
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	idx := l.n
	t := r.Time
	if t.IsZero() {
		t = l.opts.Clock()
	}
	t = t.UTC()
	var prefixBuf [96]byte
	prefix := prefixBuf[:0]
	err = checkTime(t)
	if err == nil {
		prefix = appendPrefix(prefix, Version, idx, t)
		if plain != nil {
			var s *Sealed
			if s, err = l.sealer.seal(plain, idx, t); err == nil {
				sealed = appendSealed(nil, s)
			}
		}
	}
	lineLen := len(prefix) + len(body) + len(sealed) + 1 // + '}'
	if err == nil && lineLen >= maxLine {
		err = fmt.Errorf("%d bytes, over the %d limit", lineLen, maxLine)
	}
	if err != nil {
		l.mu.Unlock()
		return 0, fmt.Errorf("append audit record: %w", err)
	}
	size := int64(lineLen + 1)
	npend, segStart, segBytes, segCount := len(l.pend), l.segStart, l.segBytes, l.segCount
	if l.segCount > 0 && (l.segBytes+size > l.opts.SegmentSize || t.Sub(l.segFirst) >= l.opts.SegmentAge) || l.segStart < 0 {
		l.pend = append(l.pend, chunk{start: idx, create: true, data: l.takeSpare()})
		l.segStart, l.segBytes, l.segCount = idx, 0, 0
	}
	if len(l.pend) == 0 {
		l.pend = append(l.pend, chunk{start: l.segStart, data: l.takeSpare()})
	}
	c := &l.pend[len(l.pend)-1]
	at := len(c.data)
	c.data = append(append(append(append(c.data, prefix...), body...), sealed...), '}')
	// The record hash is that of the exact stored line.
	if err := l.hashes.appendRecord(idx, tlog.RecordHash(c.data[at:])); err != nil {
		c.data = c.data[:at]
		l.pend = l.pend[:npend]
		l.segStart, l.segBytes, l.segCount = segStart, segBytes, segCount
		l.mu.Unlock()
		return 0, fmt.Errorf("append audit record: %w", err)
	}
	c.data = append(c.data, '\n')
	if l.segCount == 0 {
		l.segFirst = t
	}
	l.segBytes += size
	l.segCount++
	l.pendBytes += size
	l.n++
	l.mu.Unlock()
	rec.Index, rec.Time, rec.Version = idx, t, Version
	select {
	case l.kick <- struct{}{}:
	default:
	}
	if l.opts.Durability != DurabilityAlways {
		return idx, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.synced <= idx && l.failed == nil {
		l.cond.Wait()
	}
	if l.synced <= idx {
		return 0, l.failed
	}
	return idx, nil
}

// takeSpare returns the buffer of an earlier commit for a new chunk, so
// that a busy log does not regrow one per group commit. Called with l.mu.
func (l *Log) takeSpare() []byte {
	b := l.spare
	l.spare = nil
	return b
}

// Size returns the number of records sequenced and the number durable.
func (l *Log) Size() (sequenced, durable int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.synced
}

// Err reports why the log cannot take records (write failure, closed), or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return l.failed
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

// LatestCheckpoint returns the last checkpoint written (ok false if none).
func (l *Log) LatestCheckpoint() (Checkpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastCP, l.haveCP
}

// Sync makes every record sequenced so far durable and writes a checkpoint
// covering them.
func (l *Log) Sync(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case l.ctl <- reply:
	case <-l.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close appends audit_stop, writes everything, signs a final checkpoint and
// closes the files. It is safe to call more than once.
func (l *Log) Close(ctx context.Context) error {
	var err error
	l.closeOnce.Do(func() { err = l.close(ctx) })
	<-l.done
	return err
}

func (l *Log) close(ctx context.Context) error {
	var appendErr error
	if l.failure() == nil {
		_, appendErr = l.Append(ctx, &Record{Type: TypeAuditStop})
	}
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	select { // the final checkpoint goes out, unless publishing hangs
	case <-l.pubDone:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	l.unlock()
	if err := l.failure(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	if appendErr != nil {
		return fmt.Errorf("close audit log: %w", appendErr)
	}
	return nil
}

// unlock releases the directory's lock: another process may write it now.
func (l *Log) unlock() {
	if l.lock != nil {
		l.lock.Close()
		l.lock = nil
	}
}

// failure is the write-failure state, ignoring closure.
func (l *Log) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *Log) closeFiles() {
	for _, f := range []*os.File{l.seg, l.hashFile, l.cpFile} {
		if f != nil {
			f.Close()
		}
	}
}

// fail records a write failure; appends are refused from now on.
func (l *Log) fail(err error) {
	err = fmt.Errorf("%w: %v", ErrWriteFailed, err)
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.mu.Unlock()
	// The alert is raised before appenders waiting for an fsync are told:
	// by the time a request gets its 503, the alert is out.
	l.alertOnce.Do(func() {
		if l.opts.OnAlert != nil {
			l.opts.OnAlert(err)
		}
	})
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
}
