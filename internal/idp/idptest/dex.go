package idptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// StartDex runs a real Dex (.tools/bin/dex, scripts/deps/40-dex.sh) on a
// free loopback port with an in-memory store, the static password
// connector and one client, until the test ends.
func StartDex(t testing.TB, o idp.Options) *idp.Provider {
	t.Helper()
	bin := testenv.NeedBinary(t, "dex")
	if o.ClientID == "" {
		o.ClientID = "gatehouse"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "gatehouse-secret"
	}
	port := testenv.FreePort(t)
	telemetry := testenv.FreePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d/dex", port)
	hash, err := bcrypt.GenerateFromPassword([]byte(idp.DexPassword), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	var redirects strings.Builder
	for _, u := range o.RedirectURIs {
		fmt.Fprintf(&redirects, "      - %q\n", u)
	}
	cfg := fmt.Sprintf(`issuer: %s
storage:
  type: memory
web:
  http: 127.0.0.1:%d
telemetry:
  http: 127.0.0.1:%d
logger:
  level: warn
oauth2:
  skipApprovalScreen: true
  responseTypes: [code]
enablePasswordDB: true
staticPasswords:
  - email: %q
    hash: %q
    username: carol
    userID: "5a1c3f0e-8d4b-4a5e-9a34-6f1d2c7b8e90"
staticClients:
  - id: %q
    secret: %q
    name: Gatehouse
    redirectURIs:
%s`, issuer, port, telemetry, idp.DexUser, string(hash), o.ClientID, o.ClientSecret, redirects.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "dex.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", path)
	testenv.DieWithParent(cmd)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stdout = idp.LimitWriter(&stderr, 64<<10)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dex: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dex output:\n%s", stderr.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := idp.WaitHTTP(ctx, issuer+"/.well-known/openid-configuration", 60*time.Second); err != nil {
		t.Fatalf("dex: %v\n%s", err, stderr.String())
	}
	return &idp.Provider{Issuer: issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret}
}
