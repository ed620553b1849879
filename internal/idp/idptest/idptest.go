// Package idptest starts the real OpenID Providers integration tests sign
// in against, for the life of a test: test/idp (via idp.Launch) and Dex. A
// missing peer fails the test (skips only under -short).
package idptest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// Start runs test/idp on a free loopback port until the test ends.
func Start(t testing.TB, o idp.Options) *idp.Provider {
	t.Helper()
	testenv.NeedBinary(t, "node")
	root := testenv.RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "test", "idp", "node_modules", "oidc-provider")); err != nil {
		testenv.Missing(t, "test/idp/node_modules (run scripts/deps/20-idp.sh)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, cmd, err := idp.Launch(ctx, root, 0, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return p
}
