package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestInclusionProof(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 40)
	v := verifierOf(t, k)
	for _, idx := range []int64{0, 1, 17, 41} {
		for _, latest := range []bool{false, true} {
			p, err := ProveInclusion(dir, idx, v, latest)
			if err != nil {
				t.Fatalf("prove %d: %v", idx, err)
			}
			res, err := CheckProof(p.Marshal(), []note.Verifier{v})
			if err != nil || res.Record.Index != idx {
				t.Fatalf("check proof %d: %+v %v", idx, res, err)
			}
		}
	}
	if _, err := ProveInclusion(dir, 42, v, true); !errors.Is(err, ErrProof) {
		t.Fatalf("prove beyond the log: %v", err)
	}
	// A proof with an altered record, or checked with another key, fails.
	p, _ := ProveInclusion(dir, 17, v, true)
	p.Record = string(bytes.Replace([]byte(p.Record), []byte("GET"), []byte("PUT"), 1))
	if _, err := CheckProof(p.Marshal(), []note.Verifier{v}); !errors.Is(err, ErrProof) {
		t.Fatalf("altered record: %v", err)
	}
	p, _ = ProveInclusion(dir, 17, v, true)
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
	cps, _, err := history(dir, v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ProveConsistency(dir, cps[1].Size, 0, v)
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
	fcps, fmsgs, _ := history(fork, v)
	p.Checkpoint = string(fmsgs[len(fmsgs)-1])
	if fcps[len(fcps)-1].Size <= cps[1].Size {
		t.Fatal("fork too small")
	}
	if _, err := CheckProof(p.Marshal(), []note.Verifier{v}); !errors.Is(err, ErrProof) {
		t.Fatalf("forked checkpoint accepted: %v", err)
	}
}

func FuzzCheckProof(f *testing.F) {
	dir := f.TempDir()
	k := testKey(f, "audit.test")
	writeLog(f, dir, k, 12)
	v := verifierOf(f, k)
	p, err := ProveInclusion(dir, 5, v, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Marshal())
	cps, _, _ := history(dir, v)
	c, err := ProveConsistency(dir, cps[0].Size, 0, v)
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
