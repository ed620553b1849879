package report

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// TestHTMLReportInChromium renders the HTML report in headless Chromium,
// checks that the charts are laid out, and saves a screenshot as
// test-artifacts/audit-report.png.
func TestHTMLReportInChromium(t *testing.T) {
	bin := testenv.NeedBinary(t, "chromium")
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{From: base, To: base.Add(24 * time.Hour), Generated: base.Add(25 * time.Hour)}
	if err := Render(f, Build(fixture(), integ, opts), "html"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(filepath.Join(dir, "profile")), chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-background-networking", true))
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	watchdog := time.AfterFunc(60*time.Second, cancel)
	defer watchdog.Stop()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("open report in chromium: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll("svg rect")).filter(r => r.getBoundingClientRect().width > 0).length`))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if title != "Gatehouse access and security report" || bars < 10 {
		t.Fatalf("title %q, %d visible bars", title, bars)
	}
	out := filepath.Join(testenv.RepoRoot(t), "test-artifacts")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "audit-report.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", filepath.Join(out, "audit-report.png"), len(png))
}
