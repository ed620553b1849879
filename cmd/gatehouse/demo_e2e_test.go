package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/demo"
	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// TestDemoTour runs what the README promises: the real binary's `demo --at
// 02:00` (local CA, the real oidc-provider, sample apps), then the tour
// (sign in with password + TOTP, bulk download at night, blocked, signed
// alert at the webhook), then `audit verify` and `audit report` on the log
// the demo wrote.
func TestDemoTour(t *testing.T) {
	testenv.NeedBinary(t, "node")
	root := testenv.RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "test", "idp", "node_modules", "oidc-provider")); err != nil {
		testenv.Missing(t, "test/idp/node_modules (scripts/deps/20-idp.sh)")
	}
	bin := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(root, "cmd", "gatehouse")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "demo")
	port := testenv.FreePort(t)
	// The admin listener takes port+1: find a pair that is free.
	for i := 0; i < 20 && !pairFree(port); i++ {
		port = testenv.FreePort(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--at", "02:00", "--port", strconv.Itoa(port), "--dir", dir)
	cmd.Dir = root
	// A timeout (and the deferred cancel, which runs before t.Cleanup)
	// interrupts the demo so that it stops its peers, instead of killing it.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Read while the demo still writes (on a failure): guarded.
	var stderr syncbuf.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	printed := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Ctrl-C") {
				printed <- b.String()
			}
		}
	}()
	var text string
	select {
	case text = <-printed:
	case <-time.After(60 * time.Second):
		t.Fatalf("demo printed no instructions in 60s; stderr:\n%s", stderr.String())
	}
	for _, want := range []string{"https://files.localhost:" + strconv.Itoa(port), "ca.pem", "alice", "TOTP", "audit verify", "audit report"} {
		if !strings.Contains(text, want) {
			t.Errorf("instructions lack %q:\n%s", want, text)
		}
	}
	if err := waitReady(ctx, port+1); err != nil {
		t.Fatalf("demo not ready: %v\n%s", err, stderr.String())
	}
	var tour strings.Builder
	if err := demo.Tour(ctx, demo.TourOptions{Dir: dir, Port: port, Out: &tour}); err != nil {
		t.Fatalf("tour: %v\n%s\ndemo stderr:\n%s", err, tour.String(), stderr.String())
	}
	t.Log(tour.String())
	time.Sleep(1500 * time.Millisecond) // a checkpoint covers the last records
	verify := exec.Command(bin, "audit", "verify", filepath.Join(dir, "audit"), "--key", filepath.Join(dir, "keys", "audit.pub"))
	if b, err := verify.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "OK") {
		t.Fatalf("audit verify: %v\n%s", err, b)
	}
	report := filepath.Join(dir, "report.html")
	rep := exec.Command(bin, "audit", "report", filepath.Join(dir, "audit"), "--key", filepath.Join(dir, "keys", "audit.pub"), "--format", "html", "--out", report)
	if b, err := rep.CombinedOutput(); err != nil {
		t.Fatalf("audit report: %v\n%s", err, b)
	}
	html, _ := os.ReadFile(report)
	if !strings.Contains(string(html), "bulk-download-at-night") {
		t.Fatal("the report does not list the anomaly")
	}
	// Stopped, the demo leaves a backup copy that verifies like the log
	// (audit.backup's final run), and its anomaly state (anomaly.state_file).
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	backup := exec.Command(bin, "audit", "verify", filepath.Join(dir, "audit-backup"), "--key", filepath.Join(dir, "keys", "audit.pub"))
	if b, err := backup.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "OK") {
		t.Fatalf("audit verify of the backup: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "anomaly.state")); err != nil {
		t.Errorf("no anomaly state saved: %v", err)
	}
}

func pairFree(p int) bool {
	for _, q := range []int{p, p + 1} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

func waitReady(ctx context.Context, adminPort int) error {
	url := "http://127.0.0.1:" + strconv.Itoa(adminPort) + "/readyz"
	var last error
	for i := 0; i < 300; i++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}
