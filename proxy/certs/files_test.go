package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// writePair issues a leaf for names from ca and writes it to dir/cert.pem and
// dir/key.pem (through a rename, as operators and cert tools do).
func writePair(t *testing.T, ca *localCA, dir string, names ...string) *x509.Certificate {
	t.Helper()
	c, err := ca.issue(names, nil, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	write(t, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return c.Leaf
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func testCA(t *testing.T) *localCA {
	t.Helper()
	ca, err := openLocalCA(t.TempDir(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestFilesLoadErrorsNameTheFile(t *testing.T) {
	ca := testCA(t)
	dir := t.TempDir()
	writePair(t, ca, dir, "a.example.com")
	other := t.TempDir()
	writePair(t, ca, other, "a.example.com")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	tests := []struct {
		name, cert, key, mention string
		is                       error
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), key, "nope.pem", fs.ErrNotExist},
		{"missing key", cert, filepath.Join(dir, "nokey.pem"), "nokey.pem", fs.ErrNotExist},
		{"garbage cert", garbage, key, "garbage.pem", nil},
		{"mismatched key", cert, filepath.Join(other, "key.pem"), filepath.Join(other, "key.pem"), nil},
	}
	for _, tt := range tests {
		_, err := New(context.Background(), Options{Mode: ModeFiles, CertFile: tt.cert, KeyFile: tt.key, Hosts: []string{"a.example.com"}})
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: error %q does not name %s", tt.name, err, tt.mention)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: error %v is not %v", tt.name, err, tt.is)
		}
	}
}

func TestFilesReloadKeepsLastGood(t *testing.T) {
	ca := testCA(t)
	dir := t.TempDir()
	first := writePair(t, ca, dir, "a.example.com")
	var mu sync.Mutex
	var results []error
	m, err := New(context.Background(), Options{
		Mode: ModeFiles, CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
		Hosts: []string{"a.example.com", "b.example.com"}, ReloadInterval: 20 * time.Millisecond,
		OnReload: func(err error) { mu.Lock(); results = append(results, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	addr := serveTLS(t, m)
	served := func(sni string) *x509.Certificate {
		t.Helper()
		leaf, err := handshake(t, addr, sni, roots)
		if err != nil {
			t.Fatalf("handshake %s: %v", sni, err)
		}
		return leaf
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("not within 5s: %s", what)
	}
	lastResult := func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(results) == 0 {
			return 0, nil
		}
		return len(results), results[len(results)-1]
	}
	if !served("a.example.com").Equal(first) {
		t.Fatal("not serving the loaded pair")
	}
	if _, err := handshake(t, addr, "evil.com", roots); err == nil {
		t.Fatal("unconfigured SNI was served")
	}

	// A new valid pair replaces the old one.
	second := writePair(t, ca, dir, "a.example.com", "b.example.com")
	eventually("new pair served", func() bool {
		leaf, err := handshake(t, addr, "b.example.com", roots)
		return err == nil && leaf.Equal(second)
	})
	if _, err := lastResult(); err != nil {
		t.Fatalf("last reload after a valid pair reported %v", err)
	}

	// A broken key: reported, and the last good pair keeps serving.
	n0, _ := lastResult()
	write(t, filepath.Join(dir, "key.pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	eventually("broken key reported", func() bool { n, err := lastResult(); return n > n0 && err != nil })
	if got := served("a.example.com"); !got.Equal(second) {
		t.Fatal("broken pair replaced the last good one")
	}
	time.Sleep(60 * time.Millisecond) // several polls: still the last good pair, reported once
	if n, _ := lastResult(); n != n0+1 {
		t.Errorf("broken pair reported %d times, want once", n-n0)
	}
	if got := served("b.example.com"); !got.Equal(second) {
		t.Fatal("broken pair replaced the last good one")
	}

	// Reload (SIGHUP) reports the broken pair now, without waiting.
	write(t, filepath.Join(dir, "key.pem"), []byte("still not a key"))
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "key.pem") {
		t.Fatalf("Reload with a broken key = %v, want an error naming key.pem", err)
	}
	if err := m.Reload(); err == nil {
		t.Fatal("second Reload of the same broken files reported success")
	}

	// Repaired: picked up.
	third := writePair(t, ca, dir, "a.example.com")
	eventually("repaired pair served", func() bool {
		leaf, err := handshake(t, addr, "a.example.com", roots)
		return err == nil && leaf.Equal(third)
	})
}
