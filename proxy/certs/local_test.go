package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// handshake connects to addr with SNI serverName, trusting roots, and
// returns the verified chain's leaf.
func handshake(t *testing.T, addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{ServerName: serverName, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN = %q, want h2", st.NegotiatedProtocol)
	}
	return st.PeerCertificates[0], nil
}

// serveTLS runs a TLS listener on loopback with m's config.
func serveTLS(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func caPool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", path)
	}
	return p
}

func newLocal(t *testing.T, dir string, hosts ...string) *Manager {
	t.Helper()
	m, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: dir, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func TestLocalCAPersistsAndIsReused(t *testing.T) {
	dir := t.TempDir()
	m1 := newLocal(t, dir, "chat.localhost")
	if m1.CACertPath() != filepath.Join(dir, "ca.pem") {
		t.Fatalf("CACertPath = %q", m1.CACertPath())
	}
	for name, want := range map[string]os.FileMode{"ca.pem": 0o644, "ca.key": 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	first, _ := os.ReadFile(m1.CACertPath())
	m1.Close()

	m2 := newLocal(t, dir, "chat.localhost", "wiki.localhost")
	second, _ := os.ReadFile(m2.CACertPath())
	if string(first) != string(second) {
		t.Fatal("a restart made a new CA instead of reusing the old one")
	}
	// A leaf from the second start verifies against the CA file of the first.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(first)
	addr := serveTLS(t, m2)
	if _, err := handshake(t, addr, "wiki.localhost", roots); err != nil {
		t.Fatalf("leaf after restart does not chain to the persisted CA: %v", err)
	}
}

func TestLocalCARefusesBrokenState(t *testing.T) {
	t.Run("key readable by others", func(t *testing.T) {
		dir := t.TempDir()
		newLocal(t, dir).Close()
		os.Chmod(filepath.Join(dir, "ca.key"), 0o644)
		if _, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: dir}); err == nil {
			t.Fatal("CA with a world-readable key was accepted")
		}
	})
	t.Run("key missing", func(t *testing.T) {
		dir := t.TempDir()
		newLocal(t, dir).Close()
		os.Remove(filepath.Join(dir, "ca.key"))
		_, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: dir})
		if err == nil {
			t.Fatal("CA without key accepted (or silently replaced)")
		}
		if _, err := os.Stat(filepath.Join(dir, "ca.key")); err == nil {
			t.Fatal("a new key was written next to the old certificate")
		}
	})
	t.Run("mismatched pair", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		newLocal(t, a).Close()
		newLocal(t, b).Close()
		key, _ := os.ReadFile(filepath.Join(b, "ca.key"))
		os.WriteFile(filepath.Join(a, "ca.key"), key, 0o600)
		if _, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: a}); err == nil {
			t.Fatal("CA cert with another CA's key accepted")
		}
	})
}

func TestLocalLeafPerSNI(t *testing.T) {
	m := newLocal(t, t.TempDir(), "chat.localhost", "*.apps.localhost", "gate.example.com")
	roots := caPool(t, m.CACertPath())
	addr := serveTLS(t, m)
	for _, sni := range []string{"chat.localhost", "gate.example.com", "wiki.apps.localhost", "localhost", "CHAT.localhost"} {
		leaf, err := handshake(t, addr, sni, roots)
		if err != nil {
			t.Errorf("SNI %s: %v", sni, err)
			continue
		}
		if leaf.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("SNI %s: key %v, want ECDSA", sni, leaf.PublicKeyAlgorithm)
		}
		if len(leaf.DNSNames) != 1 {
			t.Errorf("SNI %s: leaf names %v, want exactly the matched entry", sni, leaf.DNSNames)
		}
	}
	// Unknown names and more than one label under a wildcard are refused.
	for _, sni := range []string{"evil.com", "a.b.apps.localhost", "apps.localhost"} {
		if _, err := handshake(t, addr, sni, roots); err == nil {
			t.Errorf("SNI %s: handshake succeeded for a name that is not configured", sni)
		}
	}
	// No SNI (https://127.0.0.1/): the address leaf.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("IP connection: %v", err)
	}
	c.Close()
}

func TestLocalLeafCachedAndRenewed(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	m, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: t.TempDir(), Hosts: []string{"a.localhost"}, LeafValidity: 9 * time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	get := func() *tls.Certificate {
		c, err := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: "a.localhost"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := get()
	if c2 := get(); c2 != c1 {
		t.Fatal("second handshake issued a new leaf instead of using the cache")
	}
	now = now.Add(5 * time.Hour) // 4h of 9h left: still more than a third
	if c3 := get(); c3 != c1 {
		t.Fatal("leaf renewed too early")
	}
	now = now.Add(2 * time.Hour) // 2h left, less than a third
	if c4 := get(); c4 == c1 || !c4.Leaf.NotAfter.After(c1.Leaf.NotAfter) {
		t.Fatal("leaf near expiry was not re-issued")
	}
}

func TestHTTPHandlerRedirects(t *testing.T) {
	m, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: t.TempDir(), Hosts: []string{"chat.localhost"}, HTTPSPort: 8443})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.HTTPHandler(nil)
	tests := []struct {
		host, target, loc string
		code              int
	}{
		{"chat.localhost:8080", "/a/b?x=1", "https://chat.localhost:8443/a/b?x=1", http.StatusPermanentRedirect},
		{"127.0.0.1:8080", "/", "https://127.0.0.1:8443/", http.StatusPermanentRedirect},
		{"[::1]:8080", "/", "https://[::1]:8443/", http.StatusPermanentRedirect},
		{"evil.com", "/", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.target, nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.code || w.Header().Get("Location") != tt.loc {
			t.Errorf("%s%s: %d %q, want %d %q", tt.host, tt.target, w.Code, w.Header().Get("Location"), tt.code, tt.loc)
		}
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	w := httptest.NewRecorder()
	m.HTTPHandler(next).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusTeapot {
		t.Errorf("HTTPHandler(next) did not call next: %d", w.Code)
	}
}

func TestNewRejects(t *testing.T) {
	for name, o := range map[string]Options{
		"mode":          {Mode: "magic"},
		"local no dir":  {Mode: ModeLocal},
		"bad host":      {Mode: ModeLocal, LocalDir: t.TempDir(), Hosts: []string{"a b"}},
		"files no pair": {Mode: ModeFiles},
		"acme wildcard": {Mode: ModeACME, Hosts: []string{"*.example.com"}, ACME: ACMEOptions{Directory: "https://127.0.0.1:1/dir", Storage: t.TempDir()}},
		"acme ip":       {Mode: ModeACME, Hosts: []string{"10.0.0.1"}, ACME: ACMEOptions{Directory: "https://127.0.0.1:1/dir", Storage: t.TempDir()}},
		"acme no dir":   {Mode: ModeACME, Hosts: []string{"a.example.com"}, ACME: ACMEOptions{Storage: t.TempDir()}},
		"acme bad root": {Mode: ModeACME, Hosts: []string{"a.example.com"}, ACME: ACMEOptions{Directory: "https://127.0.0.1:1/dir", Storage: t.TempDir(), CARoot: filepath.Join(t.TempDir(), "none.pem")}},
	} {
		if m, err := New(context.Background(), o); err == nil {
			m.Close()
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
	_, err := New(context.Background(), Options{Mode: ModeLocal, LocalDir: t.TempDir(), Hosts: []string{"a b"}})
	if !errors.Is(err, ErrInvalidName) {
		t.Errorf("bad host error %v is not ErrInvalidName", err)
	}
}

func TestSetHosts(t *testing.T) {
	m := newLocal(t, t.TempDir(), "old.localhost")
	roots := caPool(t, m.CACertPath())
	addr := serveTLS(t, m)
	if _, err := handshake(t, addr, "old.localhost", roots); err != nil {
		t.Fatal(err)
	}
	if err := m.SetHosts(context.Background(), []string{"bad host"}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("SetHosts(bad) = %v", err)
	}
	if _, err := handshake(t, addr, "old.localhost", roots); err != nil {
		t.Fatalf("a rejected SetHosts changed the hosts: %v", err)
	}
	if err := m.SetHosts(context.Background(), []string{"new.localhost"}); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, addr, "new.localhost", roots); err != nil {
		t.Fatalf("added host: %v", err)
	}
	if _, err := handshake(t, addr, "old.localhost", roots); err == nil {
		t.Fatal("removed host still served")
	}
	if _, err := handshake(t, addr, "localhost", roots); err != nil {
		t.Fatalf("localhost dropped by SetHosts: %v", err)
	}
}

func TestLocalCAConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	const n = 4
	cas := make([]*localCA, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := range n {
		go func() { cas[i], errs[i] = openLocalCA(dir, time.Now); done <- i }()
	}
	for range n {
		<-done
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if !cas[i].cert.Equal(cas[0].cert) {
			t.Fatalf("start %d made a different CA than start 0", i)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("local dir holds %d entries, want ca.pem and ca.key only", len(entries))
	}
}
