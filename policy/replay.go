package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A recorded decision, as the audit log keeps it: one JSON object per line
// in the segment files under the audit directory, with at least
//
//	{"type": "decision", "outcome": "allow|deny|step_up", "input": {...}}
//
// and usually "index", "request_id" and "revision". This package reads
// those lines itself (it does not import audit); any other line is ignored.

// RecordedDecision is one decision read back from the audit log.
type RecordedDecision struct {
	File      string
	Line      int
	Index     int64
	RequestID string
	Revision  string
	Outcome   Outcome
	Reasons   []string
	Input     map[string]any
}

// ReplayChange is a recorded decision the draft judges differently.
type ReplayChange struct {
	Record RecordedDecision
	New    Decision
	Err    error // evaluation error of the draft (the decision is then a deny)
}

// ReplayStats counts what a replay saw.
type ReplayStats struct {
	Files     int // files read
	Decisions int // decision records replayed
	Changed   int // of which the draft judged differently
	// Skipped are decision records without a replayable input (the policy
	// was not consulted, e.g. an anomaly block, or the input is sealed by
	// encryption at rest).
	Skipped int
	// Unreadable lines are not JSON objects (a torn last line after a
	// crash, foreign files).
	Unreadable int
}

// maxRecordLine bounds one audit line.
const maxRecordLine = 16 << 20

// Replay re-judges every decision recorded under auditDir with set, calling
// onChange (if not nil) for each whose outcome differs. Files are read in
// name order (segments are named by their first index), hidden files and
// directories are skipped.
func Replay(ctx context.Context, auditDir string, set *Set, onChange func(ReplayChange)) (ReplayStats, error) {
	var st ReplayStats
	files, err := recordFiles(auditDir)
	if err != nil {
		return st, err
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Files++
		err := ReadDecisions(f, &st, func(rec RecordedDecision) error {
			st.Decisions++
			d, derr := set.DecideDocument(ctx, rec.Input)
			if d.Outcome != rec.Outcome {
				st.Changed++
				if onChange != nil {
					onChange(ReplayChange{Record: rec, New: d, Err: derr})
				}
			}
			return ctx.Err()
		})
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// recordFiles lists the regular, non-hidden files under dir, sorted.
func recordFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit dir: %w", err)
	}
	sort.Strings(files)
	return files, nil
}

// ReadDecisions calls fn for each decision record with an input in file;
// st (may be nil) counts skipped and unreadable lines.
func ReadDecisions(file string, st *ReplayStats, fn func(RecordedDecision) error) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("read audit file: %w", err)
	}
	defer f.Close()
	if err := readDecisions(f, file, st, fn); err != nil {
		return fmt.Errorf("read audit file %s: %w", file, err)
	}
	return nil
}

// wireRecord is the part of an audit record replay needs.
type wireRecord struct {
	Type      string          `json:"type"`
	Index     int64           `json:"index"`
	RequestID string          `json:"request_id"`
	Revision  string          `json:"revision"`
	Outcome   string          `json:"outcome"`
	Reasons   []string        `json:"reasons"`
	Input     json.RawMessage `json:"input"`
}

func readDecisions(r io.Reader, name string, st *ReplayStats, fn func(RecordedDecision) error) error {
	if st == nil {
		st = &ReplayStats{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRecordLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if b[0] != '{' || !json.Valid(b) {
			st.Unreadable++
			continue
		}
		var w wireRecord
		if err := json.Unmarshal(b, &w); err != nil {
			st.Unreadable++
			continue
		}
		if w.Type != "decision" {
			continue
		}
		input, ok := decodeInput(w.Input)
		if !ok {
			st.Skipped++
			continue
		}
		rec := RecordedDecision{File: name, Line: line, Index: w.Index, RequestID: w.RequestID,
			Revision: w.Revision, Outcome: Outcome(w.Outcome), Reasons: w.Reasons, Input: input}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return sc.Err()
}

// decodeInput decodes a recorded input object, keeping numbers exact.
func decodeInput(raw json.RawMessage) (map[string]any, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || len(m) == 0 {
		return nil, false
	}
	return m, true
}
