// Package idp runs the real test OpenID Provider, test/idp (npm
// oidc-provider, users with and without a second factor, amr/acr), for the
// demo and the tests (Launch), names its users, and has a TOTP generator
// for its second factor and a tiny form-filling browser for driving login
// pages. Test-only starters, including Dex (no amr/acr at all), are in
// idptest so that the gatehouse binary does not link package testing.
package idp

import (
	"context"
	"fmt"
	"io"
	"time"
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

// Dex's one static user (password connector: no amr, acr or auth_time).
const (
	DexUser     = "carol@example.com"
	DexPassword = "carol-password"
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

// LimitWriter returns a writer that keeps the first n bytes written to w
// and silently drops the rest (a peer's chatty output in a test log).
func LimitWriter(w io.Writer, n int) io.Writer { return &limitedWriter{w: w, n: n} }

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
