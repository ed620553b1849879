package demo

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/idp"
)

// TourOptions for Tour.
type TourOptions struct {
	Dir       string // the demo's data directory
	Port      int    // the demo's HTTPS port
	Downloads int    // how many files to fetch (default 60: the night rule trips above 50)
	Out       io.Writer
}

// ErrTour is wrapped by every way the tour can find the demo misbehaving.
var ErrTour = errors.New("demo tour")

// Tour walks through the anomaly story against a running demo (started
// with --at 02:00 so that it is night): alice signs in with her password
// and TOTP, downloads many files, the bulk-download rule fires, the demo's
// webhook receiver gets the signed alert, her session is blocked and the
// next request is refused. It returns an error wrapping ErrTour naming the
// first step that did not happen.
func Tour(ctx context.Context, o TourOptions) error {
	if o.Downloads == 0 {
		o.Downloads = 60
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	ca, err := os.ReadFile(filepath.Join(o.Dir, "ca", "ca.pem"))
	if err != nil {
		return fmt.Errorf("%w: the demo's CA: %w", ErrTour, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%w: no certificate in the demo's CA file", ErrTour)
	}
	loop := fmt.Sprintf("127.0.0.1:%d", o.Port)
	hosts := map[string]string{}
	for _, h := range append([]string{"gate"}, Hosts...) {
		hosts[h+".localhost"] = loop
	}
	b := idp.NewBrowser(hosts)
	if tr, ok := b.Client.Transport.(*http.Transport); ok {
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	base := fmt.Sprintf("https://files.localhost:%d", o.Port)

	fmt.Fprintf(out, "1. alice opens %s/ and is sent to the IdP\n", base)
	p, err := b.Get(base + "/")
	if err != nil {
		return fmt.Errorf("%w: open files: %w", ErrTour, err)
	}
	p, err = b.SignIn(p, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if err != nil {
		return fmt.Errorf("%w: sign in: %w", ErrTour, err)
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "report-01.pdf") {
		return fmt.Errorf("%w: after sign-in alice should see the file list, got %d at %s", ErrTour, p.Status, p.URL)
	}
	fmt.Fprintf(out, "   signed in with password + TOTP; the file list shows %s\n", p.URL)

	wiki := fmt.Sprintf("https://wiki.localhost:%d/", o.Port)
	fmt.Fprintf(out, "   the wiki needs MFA: %s\n", wiki)
	p, err = b.Get(wiki)
	if err != nil {
		return fmt.Errorf("%w: open the wiki: %w", ErrTour, err)
	}
	if p.Status != http.StatusOK {
		return fmt.Errorf("%w: alice signed in with TOTP should pass the wiki's MFA, got %d at %s", ErrTour, p.Status, p.URL)
	}
	fmt.Fprintf(out, "   %d: her TOTP sign-in counts as MFA (single sign-on, no second login)\n", p.Status)

	fmt.Fprintf(out, "2. alice downloads up to %d files\n", o.Downloads)
	blockedAt := 0
	for i := 1; i <= o.Downloads && ctx.Err() == nil; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/files/report-%02d.pdf", base, i), nil)
		resp, err := b.Client.Do(req)
		if err != nil {
			return fmt.Errorf("%w: download %d: %w", ErrTour, i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			blockedAt = i
			fmt.Fprintf(out, "   download %d refused: %s\n", i, resp.Status)
			break
		}
	}
	if blockedAt == 0 {
		// The block may land just after the last download: the next request shows it.
		time.Sleep(500 * time.Millisecond)
	}

	fmt.Fprintln(out, "3. her next request is refused")
	p, err = b.Get(base + "/")
	if err != nil {
		return fmt.Errorf("%w: request after the downloads: %w", ErrTour, err)
	}
	if p.Status != http.StatusForbidden {
		return fmt.Errorf("%w: after %d downloads at night the session should be blocked, got %d", ErrTour, o.Downloads, p.Status)
	}
	fmt.Fprintf(out, "   %d %s: the access-denied page\n", p.Status, http.StatusText(p.Status))

	fmt.Fprintln(out, "4. the alert reached the demo's webhook receiver")
	alert, err := waitAlert(ctx, filepath.Join(o.Dir, "alerts.jsonl"), 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTour, err)
	}
	fmt.Fprintf(out, "   %s\n", alert)
	return nil
}

// waitAlert waits for the first alert line naming the bulk-download rule.
func waitAlert(ctx context.Context, file string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		if f, err := os.Open(file); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for sc.Scan() {
				var line struct {
					Signature string          `json:"signature"`
					Alert     json.RawMessage `json:"alert"`
				}
				if json.Unmarshal(sc.Bytes(), &line) == nil && strings.Contains(string(line.Alert), "bulk-download-at-night") {
					f.Close()
					if line.Signature == "" {
						return "", errors.New("the alert carries no signature")
					}
					return string(line.Alert), nil
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no bulk-download alert in %s after %s", file, d)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
