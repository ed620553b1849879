package proxy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/s3target"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// backupServer serves with audit.backup into base/backup every interval.
func backupServer(t *testing.T, interval time.Duration) (*Server, *config.Config, string, func()) {
	t.Helper()
	up := streamingUpstream(t)
	cfg, base := auditTestConfig(t, up.URL, "batch")
	backupDir := filepath.Join(base, "backup")
	cfg.Audit.Backup = config.AuditBackup{URL: "file://" + backupDir, Interval: config.Duration(interval)}
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), extra: func(w *Wiring) {
		if err := buildAudit(context.Background(), w); err != nil {
			t.Fatalf("build audit: %v", err)
		}
	}})
	t.Cleanup(func() { s.runClose(context.Background()) })
	serve := func() {
		for i := range 5 {
			if resp, _ := get(t, front, "files.example.com", "/doc", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
	}
	return s, cfg, backupDir, serve
}

// sameLog checks that the backup verifies and holds what the log holds.
func sameLog(t *testing.T, logDir, backupDir string) *audit.Summary {
	t.Helper()
	local, err := audit.Verify(logDir, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copied, err := audit.Verify(backupDir, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify backup: %v", err)
	}
	if copied.Records != local.Records || copied.Latest != local.Latest || copied.LastType != local.LastType {
		t.Fatalf("backup %+v, log %+v", copied, local)
	}
	return copied
}

// TestAuditBackup: a serving instance copies its log to audit.backup.url
// while it serves (every interval) and once more at shutdown; the copy
// verifies as a log and holds every record, the stop record included.
func TestAuditBackup(t *testing.T) {
	s, cfg, backupDir, serve := backupServer(t, 50*time.Millisecond)
	serve()
	var during *audit.Summary
	var duringErr error
	eventually(t, func() bool {
		during, duringErr = audit.Verify(backupDir, audit.VerifyOptions{})
		return duringErr == nil && during.Records >= 10 && during.Checkpoints > 0
	})
	if duringErr != nil || during.Records < 10 || during.Checkpoints == 0 {
		t.Fatalf("no verifiable backup while serving: %+v %v", during, duringErr)
	}
	if ok := seriesValue(t, s, "gatehouse_audit_backup_runs_total", map[string]string{"result": "ok"}); ok < 1 {
		t.Errorf("backup runs ok = %v", ok)
	}
	if last := seriesValue(t, s, "gatehouse_audit_backup_last_success_timestamp_seconds", nil); last < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success %v", last)
	}
	if err := s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sameLog(t, cfg.Audit.Dir, backupDir); got.LastType != audit.TypeAuditStop {
		t.Errorf("the final backup lacks the stop record: last %s", got.LastType)
	}
	if _, err := os.Stat(filepath.Join(backupDir, "hashes")); err == nil {
		t.Error("the stored-hashes cache was copied")
	}
	if es, _ := os.ReadDir(filepath.Join(backupDir, "segments")); len(es) == 0 || strings.HasPrefix(es[0].Name(), ".") {
		t.Errorf("backup segments: %v", es)
	}
}

// TestAuditBackupFinalRunOwnDeadline: a shutdown whose deadline the
// request drain used up still makes the final backup. The interval is
// long: only the run at start and the final run happen.
func TestAuditBackupFinalRunOwnDeadline(t *testing.T) {
	s, cfg, backupDir, serve := backupServer(t, time.Hour)
	serve()
	spent, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.runClose(spent)
	if got := sameLog(t, cfg.Audit.Dir, backupDir); got.Records < 10 {
		t.Fatalf("final backup holds %d records", got.Records)
	}
}

// TestAuditBackupToS3: the same through an s3:// URL, against a real
// S3-compatible server (s3rver): after shutdown the bucket holds the
// closed log, byte for byte.
func TestAuditBackupToS3(t *testing.T) {
	addr := testenv.StartS3(t, "audit")
	up := streamingUpstream(t)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	cfg.Audit.Backup = config.AuditBackup{URL: "s3://audit/gw-1?endpoint=" + addr + "&insecure=true", Interval: config.Duration(time.Hour)}
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), extra: func(w *Wiring) {
		if err := buildAudit(context.Background(), w); err != nil {
			t.Fatalf("build audit: %v", err)
		}
	}})
	for range 3 {
		get(t, front, "files.example.com", "/doc", nil)
	}
	if err := s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
	tg, err := s3target.Open(cfg.Audit.Backup.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"checkpoints", "checkpoint", "key.pub", "segments/00000000000000000000.jsonl"} {
		want, err := os.ReadFile(filepath.Join(cfg.Audit.Dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := tg.Read(context.Background(), name)
		if err != nil || !ok || string(got) != string(want) {
			t.Errorf("%s in the bucket: %d bytes (%v %v), want %d", name, len(got), ok, err, len(want))
		}
	}
}
