package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// chrome is one headless Chromium with an empty profile, driven over the
// DevTools protocol. Every step has a deadline; a failed step saves a
// screenshot and the page text before failing the test.
type chrome struct {
	t         *testing.T
	ctx       context.Context
	artifacts string

	mu   sync.Mutex
	docs []string // URLs of every document request (redirects included)
}

// newChrome starts Chromium trusting exactly the leaf certificates that
// Gatehouse serves for names (by their public-key hashes: the local CA is
// not installed in any system store).
func newChrome(t *testing.T, s *stack, names ...string) *chrome {
	t.Helper()
	bin := testenv.NeedBinary(t, "chromium")
	spki := s.leafSPKIs(names...)
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,MediaRouter,OptimizationHints"),
		chromedp.Flag("host-resolver-rules", "MAP *.localhost 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	c := &chrome{t: t, ctx: ctx, artifacts: filepath.Join(testenv.RepoRoot(t), "test-artifacts")}
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	// Start the browser and record navigations. The first action must run
	// on ctx itself (the browser lives as long as the context of its first
	// action), so a watchdog bounds it instead of a derived deadline.
	watchdog := time.AfterFunc(90*time.Second, cancel)
	err := chromedp.Do(ctx, chromedp.Navigate("about:blank"))
	if !watchdog.Stop() {
		err = fmt.Errorf("no answer within 90s (%v)", err)
	}
	if err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument && e.Request != nil {
			c.mu.Lock()
			c.docs = append(c.docs, e.Request.URL)
			c.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	if err := os.MkdirAll(c.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// leafSPKIs handshakes with Gatehouse for each name and returns the
// base64 SHA-256 of each served leaf's SubjectPublicKeyInfo, checking the
// chain against the local CA on the way.
func (s *stack) leafSPKIs(names ...string) []string {
	s.t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
			fmt.Sprintf("127.0.0.1:%d", s.port), &tls.Config{ServerName: n, RootCAs: s.ca, MinVersion: tls.VersionTLS12})
		if err != nil {
			s.t.Fatalf("TLS handshake for %s: %v", n, err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		_ = conn.Close()
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		h := base64.StdEncoding.EncodeToString(sum[:])
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// step runs one bounded browser action.
func (c *chrome) step(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.fail("%s: %v", what, err)
	}
}

// open navigates to u and waits for the final page (after redirects).
func (c *chrome) open(u string) int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		c.fail("open %s: %v", u, err)
	}
	return resp.Status
}

// submit clicks the button sel and waits for the page it leads to.
func (c *chrome) submit(sel string) int64 {
	c.t.Helper()
	status, err := c.trySubmit(sel)
	if err != nil {
		c.fail("submit %s: %v", sel, err)
	}
	return status
}

// trySubmit is submit that returns the error, with the CSP directive that
// blocked the navigation, if one did.
func (c *chrome) trySubmit(sel string) (int64, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__cspViolation = "";
document.addEventListener("securitypolicyviolation", (e) => { window.__cspViolation = e.violatedDirective + " blocked " + e.blockedURI; });`)); err != nil {
		return 0, err
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		if v, verr := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__cspViolation || ""`)); verr == nil && v != "" {
			err = fmt.Errorf("%w (Content-Security-Policy %s)", err, v)
		}
		return 0, err
	}
	if resp == nil {
		return 0, nil
	}
	return resp.Status, nil
}

// fill types v into the field sel.
func (c *chrome) fill(sel, v string) {
	c.t.Helper()
	c.step("fill "+sel, 30*time.Second, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), v))
}

// location is the current page's URL.
func (c *chrome) location() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		c.fail("location: %v", err)
	}
	return u
}

// text is the visible text of the page.
func (c *chrome) text() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		c.fail("page text: %v", err)
	}
	return s
}

// html is the page's markup.
func (c *chrome) html() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		c.fail("page html: %v", err)
	}
	return s
}

// expectAt fails unless the page is at a URL starting with prefix.
func (c *chrome) expectAt(prefix string) {
	c.t.Helper()
	if u := c.location(); !strings.HasPrefix(u, prefix) {
		c.fail("at %s, want %s...", u, prefix)
	}
}

// expectText fails unless the page text contains every one of want.
func (c *chrome) expectText(want ...string) string {
	c.t.Helper()
	txt := c.text()
	for _, w := range want {
		if !strings.Contains(txt, w) {
			c.fail("page %s does not say %q", c.location(), w)
		}
	}
	return txt
}

// shot saves a full-page PNG as test-artifacts/NAME.png.
func (c *chrome) shot(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.fail("screenshot %s: %v", name, err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		c.fail("screenshot %s is not a PNG", name)
	}
	p := filepath.Join(c.artifacts, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot %s (%d bytes)", p, len(png))
}

// mark returns a position in the navigation record; since(mark) lists the
// document URLs requested after it.
func (c *chrome) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.docs)
}

func (c *chrome) since(mark int) []string {
	// Events are delivered by the tab's reader; the navigation has
	// finished, so its requests have been seen.
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.docs[mark:]...)
}

// fail saves what the browser shows, then fails the test.
func (c *chrome) fail(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if !errors.Is(c.ctx.Err(), context.Canceled) {
		ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
		defer cancel()
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			name := strings.NewReplacer("/", "_", " ", "_").Replace(c.t.Name()) + "-failure.png"
			_ = os.WriteFile(filepath.Join(c.artifacts, name), png, 0o644)
		}
		if txt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err == nil {
			msg += "\npage text:\n" + txt
		}
		c.mu.Lock()
		msg += "\nnavigations:\n  " + strings.Join(c.docs, "\n  ")
		c.mu.Unlock()
	}
	c.t.Fatal(msg)
}
