package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestServeAndCheckHelp(t *testing.T) {
	for _, name := range []string{"serve", "check"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{name, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: exit %d, stderr %s", name, code, errb.String())
		}
		if !strings.Contains(out.String(), "Usage: gatehouse "+name) || !strings.Contains(out.String(), "-config") ||
			!strings.Contains(out.String(), "Exit codes") {
			t.Errorf("%s --help output:\n%s", name, out.String())
		}
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), []string{name, "--nope"}, &out, &errb); code != exitUsage {
			t.Errorf("%s --nope: exit %d, want %d", name, code, exitUsage)
		}
	}
}

const checkOK = `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tls:
  mode: local
  local_dir: ./ca
routes:
  - name: wiki
    host: wiki.localhost
    upstream: http://127.0.0.1:1
    public: true
`

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	rego := "package gatehouse.authz\n\nallow if input.route.name == \"wiki\"\n"
	if err := os.WriteFile(filepath.Join(dir, "policies", "authz.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(checkOK), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check", "--config", good}, &out, &errb); code != 0 {
		t.Fatalf("check good: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "ok (1 routes)") {
		t.Errorf("check good output %q", out.String())
	}

	bad := filepath.Join(dir, "bad.yaml")
	broken := strings.Replace(checkOK, "http://127.0.0.1:1", "htp://x", 1) + "  - name: two\n    host: two.localhost\n    upstream: http://127.0.0.1:1\n    mfa: sometimes\n    public: true\n"
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"check", "--config", bad}, &out, &errb); code != 1 {
		t.Fatalf("check bad: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want every error, got %q", errb.String())
	}
	for _, want := range []string{bad + ":9: routes[0].upstream: ", bad + ":14: routes[1].mfa: "} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, errb.String())
		}
	}
}

type countingReloader struct{ n atomic.Int64 }

func (c *countingReloader) Reload(context.Context) (int64, error) { return c.n.Add(1), nil }

// TestSIGHUPReloads sends a real SIGHUP to this process: the signal wiring of
// serve turns it into a Reload.
func TestSIGHUPReloads(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &countingReloader{}
	go reloadOnSignal(ctx, r, hup)
	for i := int64(1); i <= 2; i++ {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for r.n.Load() < i && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if r.n.Load() != i {
			t.Fatalf("after %d SIGHUPs, %d reloads", i, r.n.Load())
		}
	}
}
