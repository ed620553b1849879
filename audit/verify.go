package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Kind names what `audit verify` found wrong.
type Kind string

// Problem kinds.
const (
	KindMalformedRecord     Kind = "malformed record"
	KindMissingRecord       Kind = "missing record (deleted)"
	KindUnexpectedRecord    Kind = "unexpected record (inserted or duplicated)"
	KindSwappedRecords      Kind = "records out of order (swapped)"
	KindModifiedRecord      Kind = "modified record"
	KindMissingSegment      Kind = "missing segment (removed)"
	KindTruncated           Kind = "truncated log (records missing at the end)"
	KindBadSignature        Kind = "checkpoint signature does not verify"
	KindUnknownKey          Kind = "checkpoint signed by another key"
	KindMalformedCheckpoint Kind = "malformed checkpoint"
	KindRootMismatch        Kind = "checkpoint root does not match the records"
	KindCheckpointBackwards Kind = "checkpoint goes backwards"
	KindRolledBack          Kind = "log does not contain the trusted checkpoint (rolled back or forked)"
	KindStoredHashes        Kind = "stored hashes file disagrees with the records"
	KindUnreadable          Kind = "unreadable log"
	KindUnsigned            Kind = "records not covered by any signed checkpoint"
)

// Problem is the first thing wrong in a log: what, and where.
type Problem struct {
	Kind    Kind
	Segment string // segment file name, when a record is named
	Line    int    // 1-based line in Segment
	Index   int64  // record index (-1 if none)
	Detail  string
}

// Error describes the problem: kind, where (segment, line, index) and what.
func (p *Problem) Error() string {
	s := string(p.Kind)
	if p.Segment != "" {
		s += fmt.Sprintf(": %s/%s line %d", segmentsDir, p.Segment, p.Line)
	}
	if p.Index >= 0 {
		s += fmt.Sprintf(" (index %d)", p.Index)
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// VerifyOptions say what to trust.
type VerifyOptions struct {
	// Verifiers are the trusted keys. If empty, the keys in the log's own
	// key.pub are used and Summary.KeyFromLog is set: an attacker who can
	// rewrite the log can rewrite key.pub too.
	Verifiers []note.Verifier
	// Trusted are signed checkpoints kept outside the log (published
	// copies); the log must still contain each of them.
	Trusted [][]byte
	// MaxUnsigned, when positive, is how many records after the latest
	// checkpoint are tolerated (a live log has up to checkpoint_interval's
	// worth). Zero: any number, as long as some checkpoint exists.
	MaxUnsigned int64
	// MaxUnsignedAge, when positive, is how much later than the latest
	// checkpoint the last record may be when records follow it. The writer
	// signs one at least every checkpoint_interval, so a live (or crashed)
	// log's unsigned records are younger than that; a history cut back to
	// an old checkpoint, with records after it, is not. Zero: no bound.
	MaxUnsignedAge time.Duration
}

// DefaultMaxUnsignedAge is the bound `gatehouse audit verify` applies to
// MaxUnsignedAge unless told otherwise: well above the default
// checkpoint_interval (1 s) and the backup interval (5 m).
const DefaultMaxUnsignedAge = 15 * time.Minute

// Summary describes a verified log.
type Summary struct {
	Records     int64
	Segments    int
	First, Last time.Time
	Checkpoints int
	Latest      Checkpoint // zero Size if no checkpoint
	Unsigned    int64      // records after the latest checkpoint: not covered by any signature
	// UnsignedHashed is how many of the Unsigned records match a hash in
	// the stored hashes file. That file is written by the writer but not
	// signed: a match only says the records are what the writer hashed,
	// if the file was not rewritten with them.
	UnsignedHashed int64
	KeyFromLog     bool
	Trusted        int
	Keys           []string
	LastType       Type // type of the last record
}

// recordLoc is where a record lives, to name it in a Problem.
type recordLoc struct {
	seg  string
	line int
}

// Verify recomputes the Merkle tree of the log in dir from its records and
// checks every checkpoint against it. It returns the summary and nil, or
// the first Problem found (a *Problem; other errors mean dir could not be
// read at all). It never trusts the stored hashes file: that only helps to
// name a modified record.
func Verify(dir string, opts VerifyOptions) (*Summary, error) {
	sum := &Summary{}
	vs := opts.Verifiers
	if len(vs) == 0 {
		keys, err := readKeyList(filepath.Join(dir, pubKeyFile))
		if err != nil {
			return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: err.Error()}
		}
		for _, k := range keys {
			v, err := ParseVerifierKey(k)
			if err != nil {
				return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: pubKeyFile + ": " + err.Error()}
			}
			vs = append(vs, v)
		}
		if len(vs) == 0 {
			return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: "no --key given and no " + pubKeyFile + " in the log"}
		}
		sum.KeyFromLog = true
	}
	for _, v := range vs {
		sum.Keys = append(sum.Keys, fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()))
	}
	// Checkpoints are read before the records, so that on a live log a
	// checkpoint written meanwhile never seems to cover missing records.
	// An incomplete note at the very end is a write in progress.
	data, err := os.ReadFile(filepath.Join(dir, checkpointsFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: err.Error()}
	}
	notes, _, err := scanNotes(data)
	if err != nil && !errors.Is(err, errIncompleteNote) {
		return sum, &Problem{Kind: KindMalformedCheckpoint, Index: -1, Detail: checkpointsFile + ": " + err.Error()}
	}
	if latest, err := os.ReadFile(filepath.Join(dir, latestFile)); err == nil {
		// The latest copy is normally the last of the history (or, on a
		// live log, an earlier one not yet replaced). Anything else is
		// checked like a checkpoint of its own.
		known := false
		for _, n := range notes {
			known = known || string(n) == string(latest)
		}
		if !known {
			notes = append(notes, latest)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, segmentsDir)); err != nil || !st.IsDir() {
		return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: fmt.Sprintf("%s is not an audit log (no %s/ directory)", dir, segmentsDir)}
	}
	segs, err := listSegments(dir)
	if err != nil {
		return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: err.Error()}
	}
	sum.Segments = len(segs)
	stored := openStoredHashes(dir)
	defer stored.close()

	var tree memHashes
	var locs []recordLoc
	var suspects []int64 // records whose stored hash differs
	var n int64
	for i, s := range segs {
		if s.Start != n {
			if s.Start > n {
				return sum, &Problem{Kind: KindMissingSegment, Segment: s.Name, Line: 1, Index: n,
					Detail: fmt.Sprintf("segment starts at index %d, records %d..%d are missing", s.Start, n, s.Start-1)}
			}
			return sum, &Problem{Kind: KindUnexpectedRecord, Segment: s.Name, Line: 1, Index: n,
				Detail: fmt.Sprintf("segment starts at index %d, overlapping records before it", s.Start)}
		}
		if p := scanSegment(s, i == len(segs)-1, &n, &tree, &locs, &suspects, stored, sum); p != nil {
			return sum, p
		}
	}
	sum.Records = n
	at := func(idx int64) (string, int) {
		if idx >= 0 && idx < int64(len(locs)) {
			return locs[idx].seg, locs[idx].line
		}
		return "", 0
	}
	// bad names the first suspect in [lo, hi) or, lacking one, the range.
	bad := func(kind Kind, lo, hi int64, detail string) *Problem {
		for _, x := range suspects {
			if x >= lo && x < hi {
				seg, line := at(x)
				return &Problem{Kind: KindModifiedRecord, Segment: seg, Line: line, Index: x,
					Detail: detail + "; this record's hash differs from the one stored when it was written"}
			}
		}
		seg, line := at(lo)
		return &Problem{Kind: kind, Segment: seg, Line: line, Index: lo,
			Detail: fmt.Sprintf("%s; a record in %d..%d was altered", detail, lo, hi-1)}
	}

	// Checkpoints, oldest first.
	var prev Checkpoint
	var origin string
	checked := int64(0) // records covered by a good checkpoint
	for i, msg := range notes {
		where := fmt.Sprintf("checkpoint %d of %d", i+1, len(notes))
		cp, p := openWith(msg, vs, where)
		if p != nil {
			return sum, p
		}
		if origin == "" {
			origin = cp.Origin
		} else if cp.Origin != origin {
			return sum, &Problem{Kind: KindMalformedCheckpoint, Index: -1, Detail: fmt.Sprintf("%s: origin %q, earlier ones %q", where, cp.Origin, origin)}
		}
		if i > 0 && cp.Size < prev.Size {
			return sum, &Problem{Kind: KindCheckpointBackwards, Index: cp.Size,
				Detail: fmt.Sprintf("%s has %d records, the one before had %d", where, cp.Size, prev.Size)}
		}
		if cp.Size > n {
			seg, line := at(n - 1)
			return sum, &Problem{Kind: KindTruncated, Segment: seg, Line: line, Index: n,
				Detail: fmt.Sprintf("%s covers %d records, the log has only %d (the last one shown)", where, cp.Size, n)}
		}
		root, err := tlog.TreeHash(cp.Size, tree)
		if err != nil {
			return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: err.Error()}
		}
		if root != cp.Root {
			return sum, bad(KindRootMismatch, checked, cp.Size,
				fmt.Sprintf("%s (size %d) has root %s, the records give %s", where, cp.Size, cp.Root, root))
		}
		checked = max(checked, cp.Size)
		prev = cp
		sum.Checkpoints++
		sum.Latest = cp
	}
	// Records after the last checkpoint are only covered by stored hashes.
	if len(suspects) > 0 {
		x := suspects[0]
		seg, line := at(x)
		if x >= checked {
			return sum, &Problem{Kind: KindModifiedRecord, Segment: seg, Line: line, Index: x,
				Detail: "record after the latest checkpoint differs from the hash stored when it was written"}
		}
		return sum, &Problem{Kind: KindStoredHashes, Segment: seg, Line: line, Index: x,
			Detail: "the signed tree is intact but the hashes file was altered; the writer will refuse to start"}
	}
	sum.Unsigned = n - checked
	for x := checked; x < n; x++ {
		if _, ok := stored.record(x); ok {
			sum.UnsignedHashed++
		}
	}
	// Unsigned records are only as good as whoever can write the directory:
	// deleting the checkpoint history must not turn a rewritten log into an
	// "OK". The writer checkpoints at least every checkpoint_interval and at
	// shutdown, so an intact log always has one, and a closed log (its last
	// record audit_stop) is covered to the end.
	if n > 0 && checked == 0 {
		seg, line := at(0)
		return sum, &Problem{Kind: KindUnsigned, Segment: seg, Line: line, Index: 0,
			Detail: fmt.Sprintf("none of the %d records is covered by a signed checkpoint (the checkpoint history is missing or was deleted)", n)}
	}
	if n > checked && sum.LastType == TypeAuditStop {
		seg, line := at(checked)
		return sum, &Problem{Kind: KindUnsigned, Segment: seg, Line: line, Index: checked,
			Detail: fmt.Sprintf("the log was closed (audit_stop) but records %d..%d are not covered by its closing checkpoint", checked, n-1)}
	}
	if opts.MaxUnsigned > 0 && n-checked > opts.MaxUnsigned {
		seg, line := at(checked)
		return sum, &Problem{Kind: KindUnsigned, Segment: seg, Line: line, Index: checked,
			Detail: fmt.Sprintf("%d records after the latest checkpoint, more than --max-unsigned %d", n-checked, opts.MaxUnsigned)}
	}
	if opts.MaxUnsignedAge > 0 && n > checked && checked > 0 && sum.Last.Sub(sum.Latest.Time) > opts.MaxUnsignedAge {
		seg, line := at(checked)
		return sum, &Problem{Kind: KindUnsigned, Segment: seg, Line: line, Index: checked,
			Detail: fmt.Sprintf("records %d..%d run until %s, %s after the latest checkpoint (%s), more than --max-unsigned-age %s",
				checked, n-1, sum.Last.UTC().Format(time.RFC3339), sum.Last.Sub(sum.Latest.Time).Round(time.Second),
				sum.Latest.Time.UTC().Format(time.RFC3339), opts.MaxUnsignedAge)}
	}
	for i, msg := range opts.Trusted {
		where := fmt.Sprintf("trusted checkpoint %d", i+1)
		cp, p := openWith(msg, vs, where)
		if p != nil {
			return sum, p
		}
		if origin != "" && cp.Origin != origin {
			return sum, &Problem{Kind: KindRolledBack, Index: -1, Detail: fmt.Sprintf("%s is for log %q, this log is %q", where, cp.Origin, origin)}
		}
		if cp.Size > n {
			seg, line := at(n - 1)
			return sum, &Problem{Kind: KindRolledBack, Segment: seg, Line: line, Index: n,
				Detail: fmt.Sprintf("%s covers %d records, the log has only %d", where, cp.Size, n)}
		}
		root, err := tlog.TreeHash(cp.Size, tree)
		if err != nil {
			return sum, &Problem{Kind: KindUnreadable, Index: -1, Detail: err.Error()}
		}
		if root != cp.Root {
			return sum, bad(KindRolledBack, 0, cp.Size, fmt.Sprintf("%s (size %d) has root %s, the records give %s", where, cp.Size, cp.Root, root))
		}
		sum.Trusted++
	}
	return sum, nil
}

// openWith opens a checkpoint with the first verifier that knows its key.
func openWith(msg []byte, vs []note.Verifier, where string) (Checkpoint, *Problem) {
	var firstErr error
	for _, v := range vs {
		cp, err := OpenCheckpoint(msg, v)
		if err == nil {
			return cp, nil
		}
		if firstErr == nil || errors.Is(err, ErrBadSignature) {
			firstErr = err
		}
	}
	switch {
	case errors.Is(firstErr, ErrBadSignature):
		return Checkpoint{}, &Problem{Kind: KindBadSignature, Index: -1, Detail: where + ": " + firstErr.Error()}
	case errors.Is(firstErr, ErrUnknownKey):
		return Checkpoint{}, &Problem{Kind: KindUnknownKey, Index: -1, Detail: where + ": " + firstErr.Error()}
	}
	return Checkpoint{}, &Problem{Kind: KindMalformedCheckpoint, Index: -1, Detail: fmt.Sprintf("%s: %v", where, firstErr)}
}

// scanSegment reads one segment, checking each record and adding it to tree.
func scanSegment(s segmentInfo, last bool, n *int64, tree *memHashes, locs *[]recordLoc, suspects *[]int64, stored *storedHashes, sum *Summary) *Problem {
	f, err := os.Open(s.Path)
	if err != nil {
		return &Problem{Kind: KindUnreadable, Segment: s.Name, Index: *n, Detail: err.Error()}
	}
	defer f.Close()
	sc := newLineScanner(f)
	type pendingLine struct {
		line []byte
		no   int
		rec  *Record
	}
	var held *pendingLine // one line of lookahead after an index mismatch
	for {
		line, _, complete, err := sc.next()
		if errors.Is(err, io.EOF) {
			if held != nil {
				return indexProblem(s, held.no, held.rec.Index, *n, -1)
			}
			return nil
		}
		if err != nil {
			return &Problem{Kind: KindMalformedRecord, Segment: s.Name, Line: sc.lineNo + 1, Index: *n, Detail: err.Error()}
		}
		if !complete {
			if last && held == nil {
				// The end of the live segment: a write in progress or a
				// crash before the record was acknowledged. Not a record.
				return nil
			}
			return &Problem{Kind: KindMalformedRecord, Segment: s.Name, Line: sc.lineNo, Index: *n, Detail: "line has no newline (torn or truncated write)"}
		}
		r, err := ParseRecord(line)
		if err != nil {
			if held != nil {
				return indexProblem(s, held.no, held.rec.Index, *n, -1)
			}
			return &Problem{Kind: KindMalformedRecord, Segment: s.Name, Line: sc.lineNo, Index: *n, Detail: err.Error()}
		}
		if held != nil {
			return indexProblem(s, held.no, held.rec.Index, *n, r.Index)
		}
		if r.Index != *n {
			held = &pendingLine{line: line, no: sc.lineNo, rec: r}
			continue
		}
		h := tlog.RecordHash(line)
		if sh, ok := stored.record(*n); ok && sh != h {
			*suspects = append(*suspects, *n)
		}
		hs, err := tlog.StoredHashesForRecordHash(*n, h, *tree)
		if err != nil {
			return &Problem{Kind: KindUnreadable, Segment: s.Name, Line: sc.lineNo, Index: *n, Detail: err.Error()}
		}
		*tree = append(*tree, hs...)
		*locs = append(*locs, recordLoc{seg: s.Name, line: sc.lineNo})
		if *n == 0 || sum.First.IsZero() {
			sum.First = r.Time
		}
		sum.Last, sum.LastType = r.Time, r.Type
		*n++
	}
}

// indexProblem classifies a record whose index is got where want was due;
// next is the index of the line after it (-1 if none).
func indexProblem(s segmentInfo, line int, got, want, next int64) *Problem {
	p := &Problem{Segment: s.Name, Line: line, Index: want}
	switch {
	case got == want+1 && next == want:
		p.Kind = KindSwappedRecords
		p.Detail = fmt.Sprintf("record %d comes before record %d", got, want)
	case got > want:
		p.Kind = KindMissingRecord
		p.Detail = fmt.Sprintf("found index %d, records %d..%d are missing", got, want, got-1)
	default:
		p.Kind = KindUnexpectedRecord
		p.Detail = fmt.Sprintf("found index %d where %d was due", got, want)
	}
	return p
}

// storedHashes reads level-0 hashes from the hashes file, if present.
type storedHashes struct {
	f    *os.File
	size int64
}

func openStoredHashes(dir string) *storedHashes {
	f, err := os.Open(filepath.Join(dir, hashesFile))
	if err != nil {
		return &storedHashes{}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return &storedHashes{}
	}
	return &storedHashes{f: f, size: st.Size()}
}

func (s *storedHashes) record(n int64) (tlog.Hash, bool) {
	var h tlog.Hash
	if s.f == nil {
		return h, false
	}
	off := tlog.StoredHashIndex(0, n) * tlog.HashSize
	if off+tlog.HashSize > s.size {
		return h, false
	}
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return h, false
	}
	return h, true
}

func (s *storedHashes) close() {
	if s.f != nil {
		s.f.Close()
	}
}
