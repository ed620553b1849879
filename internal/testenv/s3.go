package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// StartS3 runs s3rver (test/s3, installed by scripts/deps/21-s3rver.sh), an
// S3-compatible server, on a free loopback port with one empty bucket named
// bucket, until the test ends. It sets AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY to s3rver's fixed credentials and returns the
// server's host:port.
func StartS3(t *testing.T, bucket string) string {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), "test", "s3", "node_modules", ".bin", "s3rver")
	if _, err := os.Stat(bin); err != nil {
		Missing(t, "s3rver not installed (run scripts/install-deps.sh)")
	}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		cmd := exec.Command(bin, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--directory", t.TempDir(),
			"--configure-bucket", bucket, "--silent")
		DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start s3rver: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if listening(addr, exited, 60*time.Second) {
			t.Setenv("AWS_ACCESS_KEY_ID", "S3RVER")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "S3RVER")
			return addr
		}
		_ = cmd.Process.Kill()
		if attempt == 3 {
			t.Fatalf("s3rver did not listen after %d attempts", attempt)
		}
	}
}

// listening reports whether addr accepts a connection within d; false at
// once when the process exited.
func listening(addr string, exited <-chan struct{}, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}
