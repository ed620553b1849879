package idp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Launch runs test/idp (under repoRoot) outside of a test, for `gatehouse
// demo`: on the given loopback port (0: a free one) until ctx ends. It
// returns once the IdP printed its issuer line.
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
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	cmd := exec.CommandContext(ctx, node, "idp.js")
	cmd.Dir = dir
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
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start test IdP: %w", err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "issuer="); ok {
				found <- strings.TrimSpace(v)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case issuer := <-found:
		return &Provider{Issuer: issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret}, cmd, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("test IdP did not start within 30s: %s", stderr.String())
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}
