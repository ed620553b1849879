package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditBackupCLI(t *testing.T) {
	dir, pub, _ := auditFixture(t)
	dst := filepath.Join(t.TempDir(), "copy")
	code, out, errOut := runCLI("audit", "backup", dir, "--to", "file://"+dst)
	if code != 0 || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCLI("audit", "verify", dst, "--key", pub); code != 0 || !strings.Contains(out, "93 records") {
		t.Fatalf("verify the copy: %d\n%s", code, out)
	}
	// Another log over this copy is refused, with advice.
	other, _, _ := auditFixture(t)
	if code, _, errOut := runCLI("audit", "backup", other, "--to", "file://"+dst); code != 1 || !strings.Contains(errOut, "choose a new target") {
		t.Fatalf("another log over the copy: %d\n%s", code, errOut)
	}
	for _, args := range [][]string{{"audit", "backup", dir}, {"audit", "backup", "--to", "file://" + dst}, {"audit", "backup", dir, "--to", "relative/dir"}, {"audit", "backup", dir, "--to", "s3://u:p@b"}, {"audit", "backup", dir, "--to", "file://" + filepath.Dir(dir)}} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage", args, code)
		}
	}
}
