package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// cutClosingCheckpoint leaves the fixture log as a crash would if its last
// ~50 records had never been signed: closing checkpoint and audit_stop gone.
func cutClosingCheckpoint(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "checkpoints")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := audit.SplitCheckpoints(b)
	if err != nil || len(notes) < 3 {
		t.Fatalf("checkpoints: %d %v", len(notes), err)
	}
	os.WriteFile(p, bytes.Join(notes[:len(notes)-1], nil), 0o644)
	os.WriteFile(filepath.Join(dir, "checkpoint"), notes[len(notes)-2], 0o644)
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.jsonl"))
	last := segs[len(segs)-1]
	seg, _ := os.ReadFile(last)
	lines := bytes.SplitAfter(bytes.TrimSuffix(seg, []byte("\n")), []byte("\n"))
	if !bytes.Contains(lines[len(lines)-1], []byte(`"audit_stop"`)) {
		t.Fatal("no audit_stop last")
	}
	os.WriteFile(last, bytes.Join(lines[:len(lines)-1], nil), 0o640)
}

func TestAuditVerifyUnsignedRecordsCLI(t *testing.T) {
	dir, pub, _ := auditFixture(t)
	cutClosingCheckpoint(t, dir)
	// The unsigned records run on ~50 minutes after the latest checkpoint:
	// beyond the default --max-unsigned-age.
	code, out, _ := runCLI("audit", "verify", dir, "--key", pub)
	if code != 1 || !strings.Contains(out, "records not covered by any signed checkpoint") || !strings.Contains(out, "max-unsigned-age") {
		t.Fatalf("verify with the default age bound: %d\n%s", code, out)
	}
	code, out, _ = runCLI("audit", "verify", dir, "--key", pub, "--max-unsigned-age", "0")
	if code != 0 || !strings.Contains(out, "records after the latest checkpoint are NOT covered by a signed checkpoint") ||
		!strings.Contains(out, "they match the stored hashes file, which is not signed") {
		t.Fatalf("verify without an age bound: %d\n%s", code, out)
	}
	os.Remove(filepath.Join(dir, "hashes"))
	code, out, _ = runCLI("audit", "verify", dir, "--key", pub, "--max-unsigned-age", "0")
	if code != 0 || !strings.Contains(out, "no stored hashes to compare them with") || strings.Contains(out, "match the stored hashes") {
		t.Fatalf("verify without stored hashes: %d\n%s", code, out)
	}
}

func TestAuditReportUnsignedRecordsCLI(t *testing.T) {
	dir, pub, _ := auditFixture(t)
	cutClosingCheckpoint(t, dir)
	if code, _, errs := runCLI("audit", "report", dir, "--key", pub, "--format", "json"); code != 1 || !strings.Contains(errs, "does not verify") {
		t.Fatalf("report with the default age bound: %d %s", code, errs)
	}
	code, out, errs := runCLI("audit", "report", dir, "--key", pub, "--format", "html", "--max-unsigned-age", "0")
	if code != 0 || !strings.Contains(out, "records are NOT covered by a signed checkpoint") || strings.Contains(out, "All 92 records") {
		t.Fatalf("report: %d %s\n%s", code, errs, out)
	}
}
