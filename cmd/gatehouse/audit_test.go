package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// auditFixture writes a real log (two users, allows and denies, sealed
// personal fields) and the key files; it returns dir, key.pub path and the
// encryption key path.
func auditFixture(t *testing.T) (dir, pub, enc string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "audit")
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.cli.test")
	if err != nil {
		t.Fatal(err)
	}
	k, err := audit.ParseSigningKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	pub = filepath.Join(base, "audit.pub")
	os.WriteFile(pub, []byte(vkey+"\n"), 0o644)
	enc = filepath.Join(base, "enc.key")
	os.WriteFile(enc, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600)
	ek, err := audit.LoadEncryptionKey(enc)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)
	n := 0
	clock := func() time.Time { n++; return start.Add(time.Duration(n) * time.Minute) }
	// Checkpoints only where the fixture says (open, the Sync, close): the
	// interval's ticker runs on real time and would add one on a slow run.
	l, err := audit.Open(context.Background(), audit.Options{Dir: dir, Key: k, SegmentSize: 4096, EncryptionKey: ek, Clock: clock,
		CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	l.Append(t.Context(), &audit.Record{Type: audit.TypeLogin, Subject: "u-ana", Email: "ana@example.com", MFA: &yes})
	for i := range 90 {
		r := &audit.Record{Type: audit.TypeDecision, Subject: "u-ana", Email: "ana@example.com", Route: "files",
			Host: "files.example.com", Method: "GET", Path: fmt.Sprintf("/f/%d", i), Outcome: audit.OutcomeAllow, ClientIP: "203.0.113.9"}
		if i%3 == 0 {
			r.Subject, r.Email, r.Outcome, r.Reasons = "u-bob", "bob@example.com", audit.OutcomeDeny, []string{"not in group"}
		}
		if _, err := l.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		if i == 40 {
			if err := l.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	return dir, pub, enc
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditVerifyCLI(t *testing.T) {
	dir, pub, _ := auditFixture(t)
	code, out, _ := runCLI("audit", "verify", dir, "--key", pub)
	if code != 0 || !strings.Contains(out, "OK ") || !strings.Contains(out, "93 records") || strings.Contains(out, "UNTRUSTED") {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	code, out, _ = runCLI("audit", "verify", dir)
	if code != 0 || !strings.Contains(out, "UNTRUSTED") {
		t.Fatalf("verify without --key must warn: %d\n%s", code, out)
	}
	// Tamper with one record: exit 1 naming segment, line and index.
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.jsonl"))
	b, _ := os.ReadFile(segs[1])
	os.WriteFile(segs[1], bytes.Replace(b, []byte(`"allow"`), []byte(`"deny" `), 1), 0o640)
	code, out, _ = runCLI("audit", "verify", "--key", pub, dir)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, filepath.Base(segs[1])) || !strings.Contains(out, "line ") {
		t.Fatalf("tampered verify: %d\n%s", code, out)
	}
	if code, _, _ := runCLI("audit", "verify"); code != exitUsage {
		t.Fatalf("no dir: exit %d", code)
	}
}

func TestAuditVerifyTrustedCheckpointCLI(t *testing.T) {
	dir, pub, _ := auditFixture(t)
	published := filepath.Join(t.TempDir(), "published")
	b, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	os.WriteFile(published, b, 0o644)
	if code, out, _ := runCLI("audit", "verify", dir, "--key", pub, "--checkpoint", published); code != 0 {
		t.Fatalf("verify with trusted checkpoint: %d %s", code, out)
	}
	// Roll back: drop the last segment and the checkpoints that cover it.
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.jsonl"))
	os.Remove(segs[len(segs)-1])
	// The history keeps its first checkpoint (the log's opening one, which
	// the remaining records still match); an empty history would be caught
	// on its own.
	os.Remove(filepath.Join(dir, "checkpoint"))
	hist, _ := os.ReadFile(filepath.Join(dir, "checkpoints"))
	notes, err := audit.SplitCheckpoints(hist)
	if err != nil || len(notes) < 2 {
		t.Fatalf("checkpoint history: %d notes, %v", len(notes), err)
	}
	os.WriteFile(filepath.Join(dir, "checkpoints"), notes[0], 0o644)
	// Its records run on long after that checkpoint: the default
	// --max-unsigned-age catches it; without the bound it looks intact.
	if code, out, _ := runCLI("audit", "verify", dir, "--key", pub); code != 1 || !strings.Contains(out, "max-unsigned-age") {
		t.Fatalf("rolled-back log, default age bound: %d %s", code, out)
	}
	if code, out, _ := runCLI("audit", "verify", dir, "--key", pub, "--max-unsigned-age", "0"); code != 0 {
		t.Fatalf("rolled-back log alone, no age bound, should look intact: %d %s", code, out)
	}
	code, out, _ := runCLI("audit", "verify", dir, "--key", pub, "--checkpoint", published, "--max-unsigned-age", "0")
	if code != 1 || !strings.Contains(out, "rolled back") {
		t.Fatalf("rollback not caught: %d %s", code, out)
	}
}

func TestAuditProveCLI(t *testing.T) {
	dir, pub, _ := auditFixture(t)
	proof := filepath.Join(t.TempDir(), "p.json")
	if code, _, errs := runCLI("audit", "prove", dir, "--index", "42", "--key", pub, "--out", proof); code != 0 {
		t.Fatalf("prove: %d %s", code, errs)
	}
	code, out, _ := runCLI("audit", "check-proof", proof, "--key", pub)
	if code != 0 || !strings.Contains(out, "OK: record 42") {
		t.Fatalf("check-proof: %d %s", code, out)
	}
	b, _ := os.ReadFile(proof)
	os.WriteFile(proof, bytes.Replace(b, []byte(`/f/`), []byte(`/g/`), 1), 0o644)
	if code, out, _ := runCLI("audit", "check-proof", proof, "--key", pub); code != 1 {
		t.Fatalf("altered proof accepted: %d %s", code, out)
	}
	hist, _ := os.ReadFile(filepath.Join(dir, "checkpoints"))
	notes, err := audit.SplitCheckpoints(hist)
	if err != nil || len(notes) < 2 {
		t.Fatalf("want 2+ checkpoints: %d %v", len(notes), err)
	}
	first, _ := audit.ParseCheckpointText(string(notes[0][:bytes.Index(notes[0], []byte("\n\n"))+1]))
	code, out, _ = runCLI("audit", "prove", dir, "--consistency", fmt.Sprint(first.Size), "--key", pub)
	if code != 0 {
		t.Fatalf("consistency proof: %d", code)
	}
	os.WriteFile(proof, []byte(out), 0o644)
	if code, out, _ := runCLI("audit", "check-proof", proof, "--key", pub); code != 0 || !strings.Contains(out, "extends") {
		t.Fatalf("check consistency: %d %s", code, out)
	}
	if code, _, _ := runCLI("audit", "check-proof", proof); code != exitUsage {
		t.Fatal("check-proof without --key must be a usage error")
	}
}

func TestAuditSearchAndShredCLI(t *testing.T) {
	dir, pub, enc := auditFixture(t)
	code, out, _ := runCLI("audit", "search", dir, "--user", "bob@example.com", "--decision", "deny", "--encryption-key", enc)
	if code != 0 || strings.Count(out, "\n") != 30 || !strings.Contains(out, `"client_ip":"203.0.113.9"`) {
		t.Fatalf("search: %d lines=%d\n%.400s", code, strings.Count(out, "\n"), out)
	}
	// Without the key, personal fields stay sealed; the subject still matches.
	code, out, _ = runCLI("audit", "search", dir, "--user", "u-bob")
	if code != 0 || strings.Count(out, "\n") != 30 || strings.Contains(out, "203.0.113.9") || !strings.Contains(out, `"sealed"`) {
		t.Fatalf("search without key: %d\n%.400s", code, out)
	}
	code, out, _ = runCLI("audit", "search", dir, "--route", "files", "--from", "2026-11-01", "--to", "2026-11-02")
	if code != 0 || strings.Count(out, "\n") == 0 || strings.Contains(out, `"time":"2026-10`) {
		t.Fatalf("search by time: %d\n%.300s", code, out)
	}
	// Shred October: the October records lose their personal fields, the log still verifies.
	code, out, _ = runCLI("audit", "shred", dir, "--before", "2026-11-01")
	if code != 0 || !strings.Contains(out, "2026-10") {
		t.Fatalf("shred: %d %s", code, out)
	}
	if code, out, _ := runCLI("audit", "verify", dir, "--key", pub); code != 0 {
		t.Fatalf("verify after shred: %s", out)
	}
	_, out, _ = runCLI("audit", "search", dir, "--user", "u-ana", "--to", "2026-11-01", "--encryption-key", enc)
	if strings.Contains(out, "ana@example.com") || !strings.Contains(out, `"sealed"`) {
		t.Fatalf("shredded period still readable:\n%.300s", out)
	}
	_, out, _ = runCLI("audit", "search", dir, "--user", "u-ana", "--from", "2026-11-01", "--encryption-key", enc)
	if !strings.Contains(out, "ana@example.com") {
		t.Fatalf("November unreadable after shredding October:\n%.300s", out)
	}
}

func TestAuditReportCLI(t *testing.T) {
	dir, pub, enc := auditFixture(t)
	for _, format := range []string{"html", "csv", "json"} {
		code, out, errs := runCLI("audit", "report", dir, "--key", pub, "--from", "2026-10-01", "--to", "2026-12-01", "--format", format, "--encryption-key", enc)
		if code != 0 || !strings.Contains(out, "bob@example.com") {
			t.Fatalf("report %s: %d %s\n%.300s", format, code, errs, out)
		}
	}
	// No period: everything.
	code, out, _ := runCLI("audit", "report", dir, "--key", pub, "--format", "json")
	if code != 0 || !strings.Contains(out, `"decisions": 90`) {
		t.Fatalf("report without a period: %d\n%.600s", code, out)
	}
	code, out, _ = runCLI("audit", "report", dir, "--key", pub, "--from", "2026-10-01", "--user", "bob@example.com", "--format", "json", "--encryption-key", enc)
	if code != 0 || !strings.Contains(out, `"data_subject": "bob@example.com"`) || strings.Contains(out, "ana@example.com") {
		t.Fatalf("data-subject report: %d\n%.500s", code, out)
	}
	// A broken log is refused unless --unverified, and then it says so.
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.jsonl"))
	os.Remove(segs[1])
	if code, _, errs := runCLI("audit", "report", dir, "--key", pub, "--from", "2026-10-01"); code != 1 || !strings.Contains(errs, "refusing") {
		t.Fatalf("report on broken log: %d %s", code, errs)
	}
	code, out, _ = runCLI("audit", "report", dir, "--key", pub, "--from", "2026-10-01", "--unverified")
	if code != 0 || !strings.Contains(out, "NOT VERIFIED") {
		t.Fatalf("--unverified report: %d", code)
	}
}
