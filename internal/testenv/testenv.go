// Package testenv finds the real peers that integration tests talk to
// (oidc-provider, Dex, Pebble, redis-server, nginx, Chromium, s3rver) and starts
// them on loopback. scripts/install-deps.sh installs them; `make test` runs
// it first. A test may skip a missing peer only under -short: in `make test`
// a missing peer is a failure, never a silent skip.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot returns the repository's top folder.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ToolsDir is where scripts/install-deps.sh puts built peers (pebble, dex).
func ToolsDir(t testing.TB) string { return filepath.Join(RepoRoot(t), ".tools", "bin") }

// NeedBinary returns the path of a peer program, looked up in .tools/bin and
// then $PATH. If it is missing the test is skipped under -short and fails
// otherwise, naming the script that installs it.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(t), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, name+" not found (run scripts/install-deps.sh)")
	return ""
}

// Missing skips under -short and fails otherwise.
func Missing(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s", why)
	}
	t.Fatalf("required test peer missing: %s", why)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
