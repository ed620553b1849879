package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A month whose data key no longer opens its records (here: replaced by
// another month's key file) leaves those records sealed and named on
// stderr; search and report over the rest of the log still work.
func TestAuditSearchUnreadableRecordsCLI(t *testing.T) {
	dir, pub, enc := auditFixture(t)
	nov, err := os.ReadFile(filepath.Join(dir, "keys", "2026-11.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "2026-10.key"), nov, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("audit", "search", dir, "--user", "ana@example.com", "--encryption-key", enc)
	if code != 0 {
		t.Fatalf("search stopped at an unreadable record: %d %s", code, errs)
	}
	if !strings.Contains(out, `"email":"ana@example.com"`) || !strings.Contains(out, `"period":"2026-10"`) {
		t.Fatalf("want November records opened and October ones sealed:\n%.600s", out)
	}
	if !strings.Contains(errs, "personal fields unreadable: unseal record") || !strings.Contains(errs, "does not open with this encryption key") ||
		!strings.Contains(errs, "record(s) with unreadable personal fields") {
		t.Fatalf("unreadable records not reported:\n%s", errs)
	}
	code, out, errs = runCLI("audit", "report", dir, "--key", pub, "--format", "json", "--encryption-key", enc)
	if code != 0 || !strings.Contains(out, "ana@example.com") || !strings.Contains(errs, "unreadable") {
		t.Fatalf("report: %d %.300s\n%s", code, out, errs)
	}
	// An encryption key that opens none of the data keys is still refused.
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	if code, _, errs := runCLI("audit", "search", dir, "--encryption-key", bad); code != 1 || !strings.Contains(errs, "opens none") {
		t.Fatalf("wrong encryption key: %d %s", code, errs)
	}
}
