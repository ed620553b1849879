package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Scan calls fn for every record of the log in dir, in index order. With a
// keyring, sealed personal fields are opened; a record whose fields cannot
// be opened (or any record, without a keyring) keeps its Sealed field and
// empty personal fields, and with a keyring its Unreadable says why:
// ErrShredded for a shredded period, otherwise the reason (its period's
// data key does not open or was replaced, the record does not decrypt).
// One such record does not stop the scan. An encryption key that opens
// none of the log's data keys is refused before any record (ErrBadKey).
// Scan does not verify: run Verify first when it matters.
func Scan(dir string, ring *Keyring, fn func(*Record) error) error {
	if err := checkRing(ring); err != nil {
		return err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if err := scanFile(s, ring, fn); err != nil {
			return err
		}
	}
	return nil
}

// ScanSince is Scan for the records written since from: it starts at the
// last segment whose first record is at or before from, so reading the
// last hours of a long log costs a segment or two, not the whole log.
// Records are in time order only as far as their clock was: callers
// filter by r.Time themselves (and allow a margin).
func ScanSince(dir string, ring *Keyring, from time.Time, fn func(*Record) error) error {
	return ScanSinceTypes(dir, ring, from, nil, fn)
}

// ScanSinceTypes is ScanSince for records of the given types only (all
// when types is empty). The other lines are recognised by their "type"
// field and never decoded, so a replay at start that wants a few
// revocations or blocks out of a day of decision records reads the day at
// the speed of a byte search. A line whose type cannot be found is decoded
// (and reported if it is broken), as by ScanSince.
func ScanSinceTypes(dir string, ring *Keyring, from time.Time, types []Type, fn func(*Record) error) error {
	if err := checkRing(ring); err != nil {
		return err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	start := 0
	for i := len(segs) - 1; i > 0; i-- {
		first, err := firstRecordTime(segs[i])
		if err != nil {
			return err
		}
		if !first.After(from) {
			start = i
			break
		}
	}
	for _, s := range segs[start:] {
		if err := scanFileTypes(s, ring, types, fn); err != nil {
			return err
		}
	}
	return nil
}

// checkRing refuses a keyring whose encryption key opens none of the log's
// data keys (nil: no keyring, nothing to check).
func checkRing(ring *Keyring) error {
	if ring == nil {
		return nil
	}
	if err := ring.check(); err != nil {
		return fmt.Errorf("open audit data keys: %w", err)
	}
	return nil
}

// typeKey is what precedes a record's type in a stored line: the first
// field after the prefix (v, index, time), so its first occurrence is the
// record's own.
var typeKey = []byte(`,"type":"`)

// lineTypeIn reports whether a stored line's type is one of types; ok is
// false when the line has no recognisable type field.
func lineTypeIn(line []byte, types []Type) (in, ok bool) {
	i := bytes.Index(line, typeKey)
	if i < 0 {
		return false, false
	}
	rest := line[i+len(typeKey):]
	for _, t := range types {
		if len(rest) > len(t) && string(rest[:len(t)]) == string(t) && rest[len(t)] == '"' {
			return true, true
		}
	}
	return false, true
}

// firstRecordTime reads the time of a segment's first record (zero for an
// empty segment, which then counts as "not after").
func firstRecordTime(s segmentInfo) (time.Time, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return time.Time{}, fmt.Errorf("read audit segment: %w", err)
	}
	defer f.Close()
	line, _, complete, err := newLineScanner(f).next()
	if errors.Is(err, io.EOF) || (err == nil && !complete) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read audit segment %s line 1: %w", s.Name, err)
	}
	r, err := ParseRecord(line)
	if err != nil {
		return time.Time{}, fmt.Errorf("read audit segment %s line 1: %w", s.Name, err)
	}
	return r.Time, nil
}

func scanFile(s segmentInfo, ring *Keyring, fn func(*Record) error) error {
	return scanFileTypes(s, ring, nil, fn)
}

func scanFileTypes(s segmentInfo, ring *Keyring, types []Type, fn func(*Record) error) error {
	f, err := os.Open(s.Path)
	if err != nil {
		return fmt.Errorf("read audit segment: %w", err)
	}
	defer f.Close()
	sc := newLineScanner(f)
	for {
		line, _, complete, err := sc.next()
		if errors.Is(err, io.EOF) || (err == nil && !complete) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read audit segment %s line %d: %w", s.Name, sc.lineNo+1, err)
		}
		if len(types) > 0 {
			if in, ok := lineTypeIn(line, types); ok && !in {
				continue
			}
		}
		r, err := ParseRecord(line)
		if err != nil {
			return fmt.Errorf("read audit segment %s line %d: %w", s.Name, sc.lineNo, err)
		}
		if ring != nil && r.Sealed != nil {
			if err := ring.Unseal(r); err != nil {
				r.Unreadable = err
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// Filter selects records for search and reports. Zero fields match all.
type Filter struct {
	From, To time.Time // From inclusive, To exclusive
	User     string    // subject or email (email only when unsealed)
	Route    string
	Outcome  string // decision outcome: allow | deny | step_up
	Types    []Type
}

// Match reports whether r passes the filter.
func (f Filter) Match(r *Record) bool {
	if !f.From.IsZero() && r.Time.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !r.Time.Before(f.To) {
		return false
	}
	if f.User != "" && r.Subject != f.User && !strings.EqualFold(r.Email, f.User) {
		return false
	}
	if f.Route != "" && r.Route != f.Route {
		return false
	}
	if f.Outcome != "" && (r.Type != TypeDecision || r.Outcome != f.Outcome) {
		return false
	}
	if len(f.Types) > 0 {
		ok := false
		for _, t := range f.Types {
			ok = ok || r.Type == t
		}
		if !ok {
			return false
		}
	}
	return true
}

// Search returns the records of dir that match f.
func Search(dir string, ring *Keyring, f Filter) ([]*Record, error) {
	var out []*Record
	err := Scan(dir, ring, func(r *Record) error {
		if f.Match(r) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
