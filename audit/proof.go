package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Proof file formats (JSON). An inclusion proof carries the record line,
// its tlog inclusion proof and the signed checkpoint it is proved against;
// a consistency proof carries two signed checkpoints and the tlog proof
// that the newer tree extends the older one. Both are checked offline with
// only the verifier key.
const (
	ProofFormat      = "gatehouse-audit-proof/v1"
	ProofInclusion   = "inclusion"
	ProofConsistency = "consistency"
)

// Proof is the content of a proof file.
type Proof struct {
	Format        string      `json:"format"`
	Type          string      `json:"type"`
	Index         int64       `json:"index,omitempty"`
	Record        string      `json:"record,omitempty"`
	OldCheckpoint string      `json:"old_checkpoint,omitempty"`
	Checkpoint    string      `json:"checkpoint"`
	Hashes        []tlog.Hash `json:"proof"`
}

// ErrProof is returned (wrapped) when a proof cannot be made or does not check.
var ErrProof = errors.New("audit proof")

// fileHashes opens the stored hashes of dir as a HashReader.
func fileHashes(dir string) (*hashStore, func(), error) {
	f, err := os.Open(filepath.Join(dir, hashesFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: open stored hashes: %v", ErrProof, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %v", ErrProof, err)
	}
	return &hashStore{f: f, onDisk: st.Size() / tlog.HashSize}, func() { f.Close() }, nil
}

// history returns the checkpoints of dir signed by one of the trusted keys
// vs, oldest first, with their signed notes. A log whose signing key
// changed holds checkpoints of several keys (key.pub lists them all);
// those signed by none of vs are left out — a proof made from the rest is
// still against a checkpoint a trusted key signed, and CheckProof checks
// it with the same keys. A checkpoint that names a trusted key but whose
// signature does not verify, or that does not parse, is an error: that is
// tampering, not a key the caller did not give.
func history(dir string, vs []note.Verifier) ([]Checkpoint, [][]byte, error) {
	if len(vs) == 0 {
		return nil, nil, fmt.Errorf("%w: no verifier key", ErrProof)
	}
	data, err := os.ReadFile(filepath.Join(dir, checkpointsFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read checkpoints: %v", ErrProof, err)
	}
	notes, err := SplitCheckpoints(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrProof, err)
	}
	var cps []Checkpoint
	var msgs [][]byte
	for i, n := range notes {
		cp, p := openWith(n, vs, fmt.Sprintf("%s note %d", checkpointsFile, i+1))
		if p != nil {
			if p.Kind == KindUnknownKey {
				continue
			}
			return nil, nil, fmt.Errorf("%w: %v", ErrProof, p)
		}
		cps, msgs = append(cps, cp), append(msgs, n)
	}
	if len(cps) == 0 && len(notes) > 0 {
		return nil, nil, fmt.Errorf("%w: no checkpoint of %s is signed by the given key(s)", ErrProof, checkpointsFile)
	}
	return cps, msgs, nil
}

// recordLine returns the stored line of record index.
func recordLine(dir string, index int64) ([]byte, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.Start > index {
			continue
		}
		f, err := os.Open(s.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProof, err)
		}
		defer f.Close()
		sc := newLineScanner(f)
		for n := s.Start; ; n++ {
			line, _, complete, err := sc.next()
			if errors.Is(err, io.EOF) || (err == nil && !complete) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrProof, err)
			}
			if n == index {
				return bytes.Clone(line), nil
			}
		}
		break
	}
	return nil, fmt.Errorf("%w: no record %d", ErrProof, index)
}

// ProveInclusion proves that record index is in the tree of the first
// checkpoint of dir that covers it (atLatest: the latest checkpoint).
// Only checkpoints signed by one of the trusted keys vs count (all of
// key.pub for a log whose signing key changed). The proof is checked with
// vs before it is returned.
func ProveInclusion(dir string, index int64, vs []note.Verifier, atLatest bool) (*Proof, error) {
	cps, msgs, err := history(dir, vs)
	if err != nil {
		return nil, err
	}
	pick := -1
	for i, cp := range cps {
		if cp.Size > index {
			pick = i
			if !atLatest {
				break
			}
		}
	}
	if index < 0 || pick < 0 {
		return nil, fmt.Errorf("%w: no checkpoint covers record %d yet", ErrProof, index)
	}
	line, err := recordLine(dir, index)
	if err != nil {
		return nil, err
	}
	hr, done, err := fileHashes(dir)
	if err != nil {
		return nil, err
	}
	defer done()
	rp, err := tlog.ProveRecord(cps[pick].Size, index, hr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProof, err)
	}
	p := &Proof{Format: ProofFormat, Type: ProofInclusion, Index: index, Record: string(line),
		Checkpoint: string(msgs[pick]), Hashes: rp}
	if _, err := CheckProof(mustJSON(p), vs); err != nil {
		return nil, fmt.Errorf("%w: the log's stored hashes do not agree with its checkpoint (run audit verify): %v", ErrProof, err)
	}
	return p, nil
}

// ProveConsistency proves that the checkpoint of size newSize (0: the latest)
// extends the one of size oldSize; both must be in the checkpoint history
// and signed by one of the trusted keys vs (they may be different keys).
func ProveConsistency(dir string, oldSize, newSize int64, vs []note.Verifier) (*Proof, error) {
	cps, msgs, err := history(dir, vs)
	if err != nil {
		return nil, err
	}
	oi, ni := -1, -1
	for i, cp := range cps {
		if cp.Size == oldSize && oi < 0 {
			oi = i
		}
		if (newSize == 0 || cp.Size == newSize) && cp.Size >= oldSize {
			ni = i
		}
	}
	if oi < 0 || ni < 0 {
		return nil, fmt.Errorf("%w: no checkpoints of sizes %d and %d in the history", ErrProof, oldSize, newSize)
	}
	hr, done, err := fileHashes(dir)
	if err != nil {
		return nil, err
	}
	defer done()
	tp, err := tlog.ProveTree(cps[ni].Size, cps[oi].Size, hr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProof, err)
	}
	p := &Proof{Format: ProofFormat, Type: ProofConsistency, OldCheckpoint: string(msgs[oi]),
		Checkpoint: string(msgs[ni]), Hashes: tp}
	if _, err := CheckProof(mustJSON(p), vs); err != nil {
		return nil, fmt.Errorf("%w: stored hashes disagree with the checkpoints: %v", ErrProof, err)
	}
	return p, nil
}

func mustJSON(p *Proof) []byte {
	b, _ := json.MarshalIndent(p, "", "  ")
	return append(b, '\n')
}

// Marshal renders the proof file.
func (p *Proof) Marshal() []byte { return mustJSON(p) }

// ProofResult is what a checked proof established.
type ProofResult struct {
	Type       string
	Record     *Record // inclusion
	Checkpoint Checkpoint
	Old        Checkpoint // consistency
}

// CheckProof checks a proof file offline against trusted verifier keys.
func CheckProof(data []byte, vs []note.Verifier) (*ProofResult, error) {
	var p Proof
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: parse proof: %v", ErrProof, err)
	}
	if p.Format != ProofFormat {
		return nil, fmt.Errorf("%w: unknown format %q", ErrProof, p.Format)
	}
	if len(p.Hashes) > 130 {
		return nil, fmt.Errorf("%w: proof too long", ErrProof)
	}
	open := func(msg string) (Checkpoint, error) {
		var last error = ErrUnknownKey
		for _, v := range vs {
			cp, err := OpenCheckpoint([]byte(msg), v)
			if err == nil {
				return cp, nil
			}
			last = err
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrProof, last)
	}
	cp, err := open(p.Checkpoint)
	if err != nil {
		return nil, err
	}
	res := &ProofResult{Type: p.Type, Checkpoint: cp}
	switch p.Type {
	case ProofInclusion:
		if p.Index < 0 || p.Index >= cp.Size {
			return nil, fmt.Errorf("%w: record %d is not below checkpoint size %d", ErrProof, p.Index, cp.Size)
		}
		r, err := ParseRecord([]byte(p.Record))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProof, err)
		}
		if r.Index != p.Index {
			return nil, fmt.Errorf("%w: record says index %d, proof says %d", ErrProof, r.Index, p.Index)
		}
		if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, p.Index, tlog.RecordHash([]byte(p.Record))); err != nil {
			return nil, fmt.Errorf("%w: record %d is not in the tree of size %d: %v", ErrProof, p.Index, cp.Size, err)
		}
		res.Record = r
	case ProofConsistency:
		old, err := open(p.OldCheckpoint)
		if err != nil {
			return nil, err
		}
		if old.Origin != cp.Origin {
			return nil, fmt.Errorf("%w: checkpoints of different logs (%q, %q)", ErrProof, old.Origin, cp.Origin)
		}
		if old.Size > cp.Size {
			return nil, fmt.Errorf("%w: old checkpoint (%d) is larger than new (%d)", ErrProof, old.Size, cp.Size)
		}
		if err := tlog.CheckTree(p.Hashes, cp.Size, cp.Root, old.Size, old.Root); err != nil {
			return nil, fmt.Errorf("%w: tree %d does not extend tree %d: %v", ErrProof, cp.Size, old.Size, err)
		}
		res.Old = old
	default:
		return nil, fmt.Errorf("%w: unknown proof type %q", ErrProof, p.Type)
	}
	return res, nil
}
