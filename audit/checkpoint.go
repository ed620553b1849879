package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the signed statement "the log named Origin had Size records
// with Merkle root Root at Time". Its text is the common checkpoint format
// (origin line, decimal size, base64 root hash) plus one extension line
// "time <RFC 3339 nano>", signed as a golang.org/x/mod/sumdb/note.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	Time   time.Time
}

// Tree returns the checkpoint as a tlog.Tree.
func (c Checkpoint) Tree() tlog.Tree { return tlog.Tree{N: c.Size, Hash: c.Root} }

// Text is the note body that is signed.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", c.Origin, c.Size,
		base64.StdEncoding.EncodeToString(c.Root[:]), c.Time.UTC().Format(time.RFC3339Nano))
}

// ErrMalformedCheckpoint is returned (wrapped) for a checkpoint body that
// does not parse.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// ParseCheckpointText parses a checkpoint body (no signatures).
func ParseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size, root lines", ErrMalformedCheckpoint)
	}
	var c Checkpoint
	c.Origin = lines[0]
	if c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrMalformedCheckpoint)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: bad size %q", ErrMalformedCheckpoint, lines[1])
	}
	c.Size = n
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash", ErrMalformedCheckpoint)
	}
	copy(c.Root[:], h)
	for _, ext := range lines[3 : len(lines)-1] {
		if v, ok := strings.CutPrefix(ext, "time "); ok {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return Checkpoint{}, fmt.Errorf("%w: bad time %q", ErrMalformedCheckpoint, v)
			}
			c.Time = t
		}
	}
	return c, nil
}

// SignCheckpoint returns the signed note for c.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// Checkpoint verification failures, matched with errors.Is.
var (
	// ErrBadSignature: the checkpoint names the right key but the
	// signature does not verify (the note was altered or forged).
	ErrBadSignature = errors.New("checkpoint signature does not verify")
	// ErrUnknownKey: the checkpoint is not signed by the trusted key.
	ErrUnknownKey = errors.New("checkpoint not signed by the trusted key")
)

// OpenCheckpoint verifies a signed checkpoint note with v and parses it.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &inv):
			return Checkpoint{}, fmt.Errorf("%w (key %s)", ErrBadSignature, v.Name())
		case errors.As(err, &unv):
			names := make([]string, 0, len(unv.Note.UnverifiedSigs))
			for _, s := range unv.Note.UnverifiedSigs {
				names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, fmt.Errorf("%w: signed by %s, trusted %s+%08x", ErrUnknownKey,
				strings.Join(names, ", "), v.Name(), v.KeyHash())
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	return ParseCheckpointText(n.Text)
}

// errIncompleteNote marks a history that ends inside a note (a torn write).
var errIncompleteNote = errors.New("last checkpoint is incomplete")

// SplitCheckpoints splits a checkpoint history file (signed notes written one
// after the other) into single notes. Each note is its text, a blank line and
// one or more signature lines starting with "— ".
func SplitCheckpoints(data []byte) ([][]byte, error) {
	notes, _, err := scanNotes(data)
	if err != nil {
		return nil, err
	}
	return notes, nil
}

// scanNotes splits data into notes; good is the length of the prefix made of
// complete notes. An error wrapping errIncompleteNote means only the end is
// torn; any other error means a malformed note inside the history.
func scanNotes(data []byte) (notes [][]byte, good int, err error) {
	state, start, off, line := 0, 0, 0, 0 // state: 0 text, 1 first signature, 2 signatures
	for off < len(data) {
		line++
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			return notes, good, fmt.Errorf("%w: %w: line %d has no newline", ErrMalformedCheckpoint, errIncompleteNote, line)
		}
		l := data[off : off+nl]
		isSig := bytes.HasPrefix(l, []byte("— "))
		switch state {
		case 0:
			if isSig {
				return notes, good, fmt.Errorf("%w: line %d: signature without text", ErrMalformedCheckpoint, line)
			}
			if len(l) == 0 {
				if off == start {
					return notes, good, fmt.Errorf("%w: line %d: empty checkpoint text", ErrMalformedCheckpoint, line)
				}
				state = 1
			}
		case 1:
			if !isSig {
				return notes, good, fmt.Errorf("%w: line %d: want a signature line", ErrMalformedCheckpoint, line)
			}
			state = 2
		case 2:
			if !isSig {
				notes = append(notes, data[start:off])
				good, start, state = off, off, 0
				if len(l) == 0 {
					return notes, good, fmt.Errorf("%w: line %d: empty checkpoint text", ErrMalformedCheckpoint, line)
				}
			}
		}
		off += nl + 1
	}
	if state == 2 {
		return append(notes, data[start:]), len(data), nil
	}
	if start < len(data) {
		return notes, good, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, errIncompleteNote)
	}
	return notes, good, nil
}
