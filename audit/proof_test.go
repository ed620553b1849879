package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestInclusionProof(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 40)
	v := verifierOf(t, k)
	vs := []note.Verifier{v}
	for _, idx := range []int64{0, 1, 17, 41} {
		for _, latest := range []bool{false, true} {
			p, err := ProveInclusion(dir, idx, vs, latest)
			if err != nil {
				t.Fatalf("prove %d: %v", idx, err)
			}
			res, err := CheckProof(p.Marshal(), []note.Verifier{v})
			if err != nil || res.Record.Index != idx {
				t.Fatalf("check proof %d: %+v %v", idx, res, err)
			}
		}
	}
	if _, err := ProveInclusion(dir, 42, vs, true); !errors.Is(err, ErrProof) {
		t.Fatalf("prove beyond the log: %v", err)
	}
	// A proof with an altered record, or checked with another key, fails.
	p, _ := ProveInclusion(dir, 17, vs, true)
	p.Record = string(bytes.Replace([]byte(p.Record), []byte("GET"), []byte("PUT"), 1))
	if _, err := CheckProof(p.Marshal(), []note.Verifier{v}); !errors.Is(err, ErrProof) {
		t.Fatalf("altered record: %v", err)
	}
	p, _ = ProveInclusion(dir, 17, vs, true)
	if _, err := CheckProof(p.Marshal(), []note.Verifier{verifierOf(t, testKey(t, "audit.test"))}); !errors.Is(err, ErrProof) {
		t.Fatalf("other key: %v", err)
	}
	p.Hashes[0][3] ^= 1
	if _, err := CheckProof(p.Marshal(), []note.Verifier{v}); !errors.Is(err, ErrProof) {
		t.Fatalf("altered proof hash: %v", err)
	}
}

func TestConsistencyProof(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 40)
	v := verifierOf(t, k)
	vs := []note.Verifier{v}
	cps, _, err := history(dir, vs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ProveConsistency(dir, cps[1].Size, 0, vs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := CheckProof(p.Marshal(), []note.Verifier{v})
	if err != nil || res.Old.Size != cps[1].Size || res.Checkpoint.Size != cps[len(cps)-1].Size {
		t.Fatalf("check consistency: %+v %v", res, err)
	}
	// A checkpoint of a forked log does not extend the real one.
	fork := t.TempDir()
	writeLog(t, fork, k, 45)
	fcps, fmsgs, _ := history(fork, vs)
	p.Checkpoint = string(fmsgs[len(fmsgs)-1])
	if fcps[len(fcps)-1].Size <= cps[1].Size {
		t.Fatal("fork too small")
	}
	if _, err := CheckProof(p.Marshal(), []note.Verifier{v}); !errors.Is(err, ErrProof) {
		t.Fatalf("forked checkpoint accepted: %v", err)
	}
}

// keyChangedLog writes a log signed by k1, then reopens it with k2 (a key
// change) and appends more; it returns the size of the last checkpoint k1
// signed.
func keyChangedLog(t *testing.T, dir string, k1, k2 *Key) int64 {
	t.Helper()
	writeLog(t, dir, k1, 5)
	old, _, err := history(dir, []note.Verifier{verifierOf(t, k1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := openTest(t, dir, k2, nil)
	for i := range 3 {
		if _, err := l.Append(ctx, decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return old[len(old)-1].Size
}

// After a key change the history holds checkpoints of both keys: proofs
// are made against the checkpoints of the keys given, and a checkpoint
// that names a given key but does not verify still stops the prover.
func TestProveAcrossKeyChange(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := testKey(t, "audit.test"), testKey(t, "audit.test")
	v1, v2 := verifierOf(t, k1), verifierOf(t, k2)
	oldSize := keyChangedLog(t, dir, k1, k2)
	both := []note.Verifier{v1, v2}
	cases := []struct {
		name    string
		vs      []note.Verifier
		index   int64
		latest  bool
		signer  note.Verifier // key of the checkpoint proved against; nil: no proof
		minSize int64
	}{
		{"old record, first checkpoint, both keys", both, 2, false, v1, 3},
		{"old record, latest checkpoint, both keys", both, 2, true, v2, oldSize + 1},
		{"new record, both keys", both, oldSize + 1, false, v2, oldSize + 2},
		{"old record, old key only", []note.Verifier{v1}, 2, true, v1, 3},
		{"old record, new key only", []note.Verifier{v2}, 2, false, v2, oldSize + 1},
		{"new record, old key only", []note.Verifier{v1}, oldSize + 1, false, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ProveInclusion(dir, c.index, c.vs, c.latest)
			if c.signer == nil {
				if !errors.Is(err, ErrProof) {
					t.Fatalf("proved record %d with a key that signed no checkpoint covering it: %v", c.index, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("prove %d: %v", c.index, err)
			}
			res, err := CheckProof(p.Marshal(), []note.Verifier{c.signer})
			if err != nil || res.Record.Index != c.index || res.Checkpoint.Size < c.minSize {
				t.Fatalf("check proof of %d with the expected key: %+v %v", c.index, res, err)
			}
		})
	}
	// Consistency from the old key's last checkpoint to the new key's latest.
	p, err := ProveConsistency(dir, oldSize, 0, both)
	if err != nil {
		t.Fatal(err)
	}
	res, err := CheckProof(p.Marshal(), both)
	if err != nil || res.Old.Size != oldSize || res.Checkpoint.Size <= oldSize {
		t.Fatalf("consistency across the key change: %+v %v", res, err)
	}
	if _, err := ProveConsistency(dir, oldSize, 0, []note.Verifier{v2}); !errors.Is(err, ErrProof) {
		t.Fatalf("consistency from a checkpoint the given key did not sign: %v", err)
	}

	// A k1 checkpoint altered after signing is tampering, not an unknown
	// key: with k1 trusted the prover refuses; with only k2 it is skipped.
	path := filepath.Join(dir, checkpointsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := SplitCheckpoints(data)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(notes[0], []byte("\ntime 2"), []byte("\ntime 1"), 1)
	if bytes.Equal(bad, notes[0]) {
		t.Fatalf("no time line in %q", notes[0])
	}
	writeFile(t, path, bytes.Replace(data, notes[0], bad, 1))
	if _, err := ProveInclusion(dir, oldSize+1, both, false); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), string(KindBadSignature)) {
		t.Fatalf("altered checkpoint of a trusted key skipped: %v", err)
	}
	if _, err := ProveInclusion(dir, oldSize+1, []note.Verifier{v2}, false); err != nil {
		t.Fatalf("new key only, old checkpoints skipped: %v", err)
	}
}

func FuzzCheckProof(f *testing.F) {
	dir := f.TempDir()
	k := testKey(f, "audit.test")
	writeLog(f, dir, k, 12)
	v := verifierOf(f, k)
	vs := []note.Verifier{v}
	p, err := ProveInclusion(dir, 5, vs, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Marshal())
	cps, _, _ := history(dir, vs)
	c, err := ProveConsistency(dir, cps[0].Size, 0, vs)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.Marshal())
	f.Add([]byte(`{"format":"gatehouse-audit-proof/v1","type":"inclusion","index":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := CheckProof(data, []note.Verifier{v})
		if err == nil && res.Type == ProofInclusion {
			// Anything accepted must really be a record of the log.
			var q Proof
			json.Unmarshal(data, &q)
			if line, lerr := recordLine(dir, q.Index); lerr != nil || string(line) != q.Record {
				t.Fatalf("accepted a proof of a record not in the log: %q", q.Record)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	src := f.TempDir()
	k := testKey(f, "audit.test")
	writeLog(f, src, k, 8)
	seg, _ := os.ReadFile(segPaths(f, src)[0])
	cps, _ := os.ReadFile(filepath.Join(src, checkpointsFile))
	f.Add(seg, cps)
	f.Add([]byte("{}\n"), []byte("x\n\n— y z\n"))
	f.Add([]byte(`{"v":1,"index":0}`+"\n"), []byte{})
	v := verifierOf(f, k)
	base := f.TempDir()
	var runs int
	f.Fuzz(func(t *testing.T, segment, checkpoints []byte) {
		runs++
		dir := filepath.Join(base, strconv.Itoa(runs))
		defer os.RemoveAll(dir)
		os.MkdirAll(filepath.Join(dir, segmentsDir), 0o750)
		os.WriteFile(filepath.Join(dir, segmentsDir, segmentName(0)), segment, 0o640)
		os.WriteFile(filepath.Join(dir, checkpointsFile), checkpoints, 0o640)
		sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{v}})
		if err == nil && sum.Latest.Size > 0 {
			// Only the real records can satisfy a real signed checkpoint.
			n := int(sum.Latest.Size)
			got, want := bytes.SplitAfter(segment, []byte("\n")), bytes.SplitAfter(seg, []byte("\n"))
			if len(got) < n || len(want) < n || !bytes.Equal(bytes.Join(got[:n], nil), bytes.Join(want[:n], nil)) {
				t.Fatalf("verified altered records against a signed checkpoint: %+v", sum)
			}
		}
	})
}
