package idp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// fakeIdP writes a repository root whose test/idp/idp.js is script.
func fakeIdP(t *testing.T, script string) string {
	t.Helper()
	testenv.NeedBinary(t, "node")
	root := t.TempDir()
	dir := filepath.Join(root, "test", "idp")
	if err := os.MkdirAll(filepath.Join(dir, "node_modules", "oidc-provider"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "idp.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLaunchRetriesAnIdPThatExits(t *testing.T) {
	root := fakeIdP(t, `console.error("boom on " + process.env.IDP_PORT); process.exit(3);`)
	began := time.Now()
	_, _, err := Launch(context.Background(), root, 0, Options{RedirectURIs: []string{"http://127.0.0.1/cb"}})
	if err == nil {
		t.Fatal("Launch succeeded with an IdP that exits")
	}
	if d := time.Since(began); d > startTimeout/2 {
		t.Errorf("an exiting IdP was noticed after %s, not at once", d)
	}
	msg := err.Error()
	for _, want := range []string{"attempt 1", "attempt 2", "attempt 3", "boom on", "exited"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestLaunchSecondAttemptSucceeds(t *testing.T) {
	// The first start fails (a marker file is created), the second prints
	// its issuer line.
	root := fakeIdP(t, `
import fs from 'node:fs';
if (!fs.existsSync('tried')) { fs.writeFileSync('tried', ''); process.exit(1); }
console.log('issuer=http://127.0.0.1:' + process.env.IDP_PORT);
setInterval(() => {}, 1000);
`)
	if err := os.WriteFile(filepath.Join(root, "test", "idp", "package.json"), []byte(`{"type":"module"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, cmd, err := Launch(ctx, root, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Issuer, "http://127.0.0.1:") || p.ClientID != "gatehouse" {
		t.Errorf("provider %+v", p)
	}
	cancel()
	_ = cmd.Wait()
}

func TestLaunchFixedPortIsOneAttempt(t *testing.T) {
	root := fakeIdP(t, `process.exit(1);`)
	_, _, err := Launch(context.Background(), root, 1, Options{})
	if err == nil || strings.Contains(err.Error(), "attempt 2") {
		t.Fatalf("a fixed port is tried once: %v", err)
	}
}
