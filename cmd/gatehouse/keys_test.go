package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authn"
)

func TestKeysGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "generate", "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	k, err := audit.LoadSigningKey(filepath.Join(dir, "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "audit.pub"))
	if strings.TrimSpace(string(pub)) != k.Verifier {
		t.Fatalf("audit.pub %q does not match the signing key %q", pub, k.Verifier)
	}
	if _, err := audit.LoadEncryptionKey(filepath.Join(dir, "encryption.key")); err != nil {
		t.Fatal(err)
	}
	pemb, _ := os.ReadFile(filepath.Join(dir, "assertion.pem"))
	if _, err := authn.ParseAssertionKey(pemb); err != nil {
		t.Fatal(err)
	}
	sk, _ := os.ReadFile(filepath.Join(dir, "session.key"))
	if len(strings.TrimSpace(string(sk))) < 32 {
		t.Fatalf("session key too short: %q", sk)
	}
	for _, f := range []string{"audit.key", "session.key", "assertion.pem", "encryption.key"} {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	// A second run must not overwrite.
	if code := run(context.Background(), []string{"keys", "generate", "--out", dir}, &out, &errb); code != 1 {
		t.Fatalf("second run exit %d, want 1 (files exist)", code)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "audit.key"))
	k2, _ := audit.ParseSigningKey(string(again))
	if k2.Verifier != k.Verifier {
		t.Fatal("the audit key was replaced without --force")
	}
	if code := run(context.Background(), []string{"keys", "generate", "--out", dir, "--force"}, &out, &errb); code != 0 {
		t.Fatalf("--force exit %d", code)
	}
	if code := run(context.Background(), []string{"keys", "generate"}, &out, &errb); code != exitUsage {
		t.Fatalf("missing --out: exit %d", code)
	}
}
