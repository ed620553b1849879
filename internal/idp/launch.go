package idp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
)

// startTimeout bounds one start of the IdP. Node loads oidc-provider and
// generates an RSA key before it listens: well under a second on an idle
// machine, but CI runs it beside race-instrumented test binaries and a
// browser on two cores.
const startTimeout = 60 * time.Second

// Launch runs test/idp (under repoRoot) outside of a test, for `gatehouse
// demo`: on the given loopback port (0: a free one) until ctx ends. It
// returns once the IdP printed its issuer line. With port 0 a start that
// fails (the free port was taken meanwhile, or the IdP exited or hung) is
// retried on another port, up to three attempts.
func Launch(ctx context.Context, repoRoot string, port int, o Options) (*Provider, *exec.Cmd, error) {
	dir := filepath.Join(repoRoot, "test", "idp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		return nil, nil, fmt.Errorf("test IdP not installed in %s (run scripts/deps/20-idp.sh): %w", dir, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, nil, fmt.Errorf("test IdP needs node: %w", err)
	}
	if o.ClientID == "" {
		o.ClientID = "gatehouse"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "gatehouse-secret"
	}
	attempts := 1
	if port == 0 {
		attempts = 3
	}
	var errs []error
	for i := 0; i < attempts; i++ {
		p := port
		if p == 0 {
			if p, err = freePort(); err != nil {
				return nil, nil, err
			}
		}
		prov, cmd, err := launchOnce(ctx, node, dir, p, o)
		if err == nil {
			return prov, cmd, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("attempt %d on port %d: %w", i+1, p, err))
	}
	return nil, nil, errors.Join(errs...)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the test IdP: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launchOnce starts the IdP on port and waits for its issuer line, its
// exit or startTimeout, whichever comes first.
func launchOnce(ctx context.Context, node, dir string, port int, o Options) (*Provider, *exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, node, "idp.js")
	cmd.Dir = dir
	dieWithParent(cmd)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("IDP_PORT=%d", port),
		"IDP_CLIENT_ID="+o.ClientID,
		"IDP_CLIENT_SECRET="+o.ClientSecret,
		"IDP_REDIRECT_URIS="+strings.Join(o.RedirectURIs, " "),
		"IDP_POST_LOGOUT_REDIRECT_URIS="+strings.Join(o.PostLogoutRedirects, " "),
		"IDP_ALICE_TOTP_SECRET="+AliceTOTP,
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	var stderr syncbuf.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start test IdP: %w", err)
	}
	// found carries the issuer, or "" when stdout ended without one (the
	// IdP exited).
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "issuer="); ok {
				found <- strings.TrimSpace(v)
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		found <- ""
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case issuer := <-found:
		if issuer != "" {
			return &Provider{Issuer: issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret}, cmd, nil
		}
		werr := cmd.Wait()
		return nil, nil, fmt.Errorf("test IdP exited after %s (%v): %s", time.Since(began).Round(time.Millisecond), werr, stderr.String())
	case <-timer.C:
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("test IdP did not start within %s: %s", startTimeout, stderr.String())
	case <-ctx.Done():
		_ = cmd.Wait()
		return nil, nil, ctx.Err()
	}
}
