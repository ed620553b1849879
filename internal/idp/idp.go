// Package idp starts the real OpenID Providers the integration tests sign in
// against: test/idp (npm oidc-provider, users with and without a second
// factor, amr/acr) and Dex (no amr/acr at all). It also has a TOTP
// generator for the test IdP's second factor and a tiny form-filling
// browser for driving login pages over plain HTTP.
package idp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// The test IdP's users (test/idp/idp.js).
const (
	AliceUser     = "alice"
	AlicePassword = "alice-password"
	AliceTOTP     = "JBSWY3DPEHPK3PXP"
	BobUser       = "bob"
	BobPassword   = "bob-password"
	MFAACR        = "urn:gatehouse:mfa"
	PasswordACR   = "urn:gatehouse:pwd"
)

// Provider is a running IdP.
type Provider struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

// Options for Start.
type Options struct {
	ClientID            string // default "gatehouse"
	ClientSecret        string // default "gatehouse-secret"
	RedirectURIs        []string
	PostLogoutRedirects []string
}

// Start runs test/idp on a free loopback port until the test ends. A
// missing node or npm install fails the test (skips under -short).
func Start(t testing.TB, o Options) *Provider {
	t.Helper()
	node := testenv.NeedBinary(t, "node")
	dir := filepath.Join(testenv.RepoRoot(t), "test", "idp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		testenv.Missing(t, "test/idp/node_modules (run scripts/deps/20-idp.sh)")
	}
	if o.ClientID == "" {
		o.ClientID = "gatehouse"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "gatehouse-secret"
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(node, "idp.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("IDP_PORT=%d", port),
		"IDP_CLIENT_ID="+o.ClientID,
		"IDP_CLIENT_SECRET="+o.ClientSecret,
		"IDP_REDIRECT_URIS="+strings.Join(o.RedirectURIs, " "),
		"IDP_POST_LOGOUT_REDIRECT_URIS="+strings.Join(o.PostLogoutRedirects, " "),
		"IDP_ALICE_TOTP_SECRET="+AliceTOTP,
	)
	issuer := waitLine(t, cmd, "issuer=", 30*time.Second)
	return &Provider{Issuer: issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret}
}

// waitLine starts cmd and waits for a stdout line starting with prefix;
// it returns the rest of the line. The process is killed when t ends.
func waitLine(t testing.TB, cmd *exec.Cmd, prefix string, timeout time.Duration) string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				found <- v
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case v := <-found:
		return strings.TrimSpace(v)
	case <-time.After(timeout):
		t.Fatalf("%s did not print %q within %s; stderr:\n%s", cmd.Path, prefix, timeout, stderr.String())
	}
	return ""
}

// WaitHTTP polls url until it answers 200 or timeout passes.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := newGet(ctx, url)
		resp, err := defaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (last error %v)", url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	_, err := l.w.Write(q)
	return len(p), err
}
