package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/config"
)

// testCerts is a CertSource with one self-signed certificate.
type testCerts struct {
	cert tls.Certificate
	pool *x509.CertPool
}

func newTestCerts(t *testing.T, names ...string) *testCerts {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &testCerts{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: pool}
}

func (c *testCerts) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.cert}, MinVersion: tls.VersionTLS12}
}

func (c *testCerts) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			_, _ = io.WriteString(w, "challenge")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// client talks to addr whatever the URL's host, over TLS trusting c.
func (c *testCerts) client(addr string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: c.pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// runServer starts s.Run and waits until it listens; the returned func
// stops it and returns Run's error.
func runServer(t *testing.T, s *Server) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	select {
	case <-s.Started():
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server did not start")
	}
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-errc
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestRunTLSHTTP2RedirectAdmin(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	certs := newTestCerts(t, "app.example.com", "public.example.com")
	cfg := baseConfig(up.URL)
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.AdminToken = goodToken
	var closed bool
	s, err := New(context.Background(), cfg, Options{Certs: certs, Builders: []Builder{func(_ context.Context, w *Wiring) error {
		w.Auth, w.Authz, w.Recorder = &fakeAuth{id: alice}, allowAll(), &fakeRecorder{}
		w.OnClose(func(context.Context) error { closed = true; return nil })
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runServer(t, s)
	a := s.Addrs()
	c := certs.client(a.HTTPS)
	resp, err := c.Get("https://app.example.com/x/../y")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS: %d %s over %s", resp.StatusCode, b, resp.Proto)
	}
	if s := decodeSeen(t, string(b)); s.Path != "/y" || s.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("upstream saw %+v", s)
	}

	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+a.HTTP+"/a//b?q=1", nil)
	req.Host = "app.example.com:80"
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(a.HTTPS)
	if want := "https://app.example.com:" + port + "/a/b?q=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("redirect: %d %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	req, _ = http.NewRequest("GET", "http://"+a.HTTP+"/", nil)
	req.Host = "elsewhere.example.com"
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("redirect for an unknown host: %d, want 404", resp.StatusCode)
	}
	resp, err = hc.Get("http://" + a.HTTP + "/.well-known/acme-challenge/tok")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "challenge" {
		t.Errorf("ACME challenge not passed to the cert source: %q", b)
	}

	resp, err = http.Get("http://" + a.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz while running: %d %s", resp.StatusCode, b)
	}
	if err := stop(); err != nil {
		t.Errorf("Run returned %v", err)
	}
	if !closed {
		t.Error("close hooks did not run")
	}
}

func TestGracefulDrain(t *testing.T) {
	arrived := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		time.Sleep(500 * time.Millisecond)
		_, _ = io.WriteString(w, "finished")
	}))
	defer up.Close()
	certs := newTestCerts(t, "app.example.com")
	cfg := baseConfig(up.URL)
	cfg.Timeouts.Shutdown = config.Duration(5 * time.Second)
	s, err := New(context.Background(), cfg, Options{Certs: certs, Builders: []Builder{func(_ context.Context, w *Wiring) error {
		w.Auth, w.Authz, w.Recorder = &fakeAuth{id: alice}, allowAll(), &fakeRecorder{}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runServer(t, s)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := certs.client(s.Addrs().HTTPS).Get("https://app.example.com/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{string(b), err}
	}()
	<-arrived
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	r := <-done
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request during shutdown: %q, %v", r.body, r.err)
	}
	if _, err := net.DialTimeout("tcp", s.Addrs().HTTPS, time.Second); err == nil {
		t.Error("still listening after shutdown")
	}
}

const reloadYAML = `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
admin_token: 0123456789abcdef-admin
tls:
  mode: local
  local_dir: ./ca
routes:
%s`

func routeYAML(name, host, upstream string) string {
	return fmt.Sprintf("  - name: %s\n    host: %s\n    upstream: %s\n    public: true\n", name, host, upstream)
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func reloadServer(t *testing.T, upstream string) (*Server, *httptest.Server, *fakeRecorder, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("one", "one.example.com", upstream)))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &fakeRecorder{}
	s, front := newTestServer(t, cfg, stages{authz: allowAll(), rec: rec})
	return s, front, rec, path
}

func TestReloadBrokenConfigKeepsServing(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	logger, logs := observedLogger()
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("one", "one.example.com", up.URL)))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &fakeRecorder{}
	s, front := newTestServer(t, cfg, stages{authz: allowAll(), rec: rec, logger: logger})

	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("two", "two.example.com", "htp://broken")))
	gen, err := s.Reload(context.Background())
	if err == nil || gen != 1 {
		t.Fatalf("broken config accepted: gen %d, err %v", gen, err)
	}
	if !strings.Contains(err.Error(), path+":") || !strings.Contains(err.Error(), "routes[0].upstream") {
		t.Errorf("error does not name file:line: field: %v", err)
	}
	if resp, _ := get(t, front, "one.example.com", "/", nil); resp.StatusCode != 200 {
		t.Errorf("old config stopped serving: %d", resp.StatusCode)
	}
	if got := seriesValue(t, s, "gatehouse_config_reloads_total", map[string]string{"result": "failure"}); got != 1 {
		t.Errorf("failed reloads metric = %v", got)
	}
	failed := logs.FilterMessageSnippet("config reload failed").All()
	if len(failed) != 1 || !strings.Contains(fmt.Sprint(failed[0].ContextMap()["errors"]), path+":") {
		t.Errorf("failure log = %+v", failed)
	}

	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("two", "two.example.com", up.URL)))
	if gen, err := s.Reload(context.Background()); err != nil || gen != 2 {
		t.Fatalf("good reload: gen %d, %v", gen, err)
	}
	if resp, _ := get(t, front, "two.example.com", "/", nil); resp.StatusCode != 200 {
		t.Errorf("new route not served: %d", resp.StatusCode)
	}
	if resp, _ := get(t, front, "one.example.com", "/", nil); resp.StatusCode != 404 {
		t.Errorf("removed route still served: %d", resp.StatusCode)
	}
	var results []string
	for _, ev := range rec.Events() {
		if ev.Type == EventReload {
			results = append(results, fmt.Sprint(ev.Fields["result"]))
		}
	}
	if strings.Join(results, ",") != "failure,success" {
		t.Errorf("reload events = %v", results)
	}
}

func TestReloadHookRefusal(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("one", "one.example.com", up.URL)))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	// A two-phase stage commits only when every hook accepted the config:
	// a reload refused by a later stage leaves it as it was.
	committed := "one"
	s, front := newTestServer(t, cfg, stages{authz: allowAll(), rec: &fakeRecorder{}, extra: func(w *Wiring) {
		w.OnReloadPrepare(func(_ context.Context, c *config.Config) (func(), error) {
			name := c.Routes[0].Name
			return func() { committed = name }, nil
		})
		w.OnReload(func(_ context.Context, c *config.Config) error {
			seen = append(seen, c.Routes[0].Name)
			if c.Routes[0].Name == "bad" {
				return errFake
			}
			return nil
		})
	}})
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("bad", "bad.example.com", up.URL)))
	if _, err := s.Reload(context.Background()); err == nil {
		t.Fatal("reload refused by a hook was applied")
	}
	if resp, _ := get(t, front, "one.example.com", "/", nil); resp.StatusCode != 200 {
		t.Errorf("old config not serving: %d", resp.StatusCode)
	}
	if committed != "one" {
		t.Errorf("a prepared stage was committed by a refused reload: %q", committed)
	}
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("two", "two.example.com", up.URL)))
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if committed != "two" || strings.Join(seen, ",") != "bad,two" {
		t.Errorf("after an accepted reload: committed %q, hooks saw %v", committed, seen)
	}
}

func TestReloadAdminAPIAndWatch(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	s, front, _, path := reloadServer(t, up.URL)
	h := s.AdminHandler()

	writeConfig(t, path, "listen: [broken")
	if code, body := adminDo(t, h, "POST", "/api/v1/reload", goodToken); code != http.StatusUnprocessableEntity || !strings.Contains(body, path) {
		t.Errorf("admin reload of a broken file: %d %s", code, body)
	}
	if code, _ := adminDo(t, h, "POST", "/api/v1/reload", ""); code != http.StatusUnauthorized {
		t.Errorf("admin reload without token: %d", code)
	}
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("two", "two.example.com", up.URL)))
	if code, body := adminDo(t, h, "POST", "/api/v1/reload", goodToken); code != 200 || !strings.Contains(body, `"generation":2`) {
		t.Errorf("admin reload: %d %s", code, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- s.WatchConfig(ctx) }()
	time.Sleep(200 * time.Millisecond) // let the watcher start
	writeConfig(t, path, fmt.Sprintf(reloadYAML, routeYAML("three", "three.example.com", up.URL)))
	deadline := time.Now().Add(10 * time.Second)
	for s.state.Load().generation != 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if resp, _ := get(t, front, "three.example.com", "/", nil); resp.StatusCode != 200 {
		t.Errorf("watched change not applied: %d (generation %d)", resp.StatusCode, s.state.Load().generation)
	}
	cancel()
	if err := <-werr; err != nil {
		t.Errorf("WatchConfig: %v", err)
	}
}

func TestReloadProxyErrorNamesLine(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	s, front, _, path := reloadServer(t, up.URL)
	body := strings.Replace(fmt.Sprintf(reloadYAML, routeYAML("one", "one.example.com", up.URL)), "0123456789abcdef-admin", "short", 1)
	writeConfig(t, path, body)
	if _, err := config.Load(path); err != nil {
		// config validation checks the length itself: then it must say where.
		if !strings.Contains(err.Error(), path+":3: admin_token") {
			t.Fatalf("config.Load = %v", err)
		}
		return
	}
	_, err := s.Reload(context.Background())
	if !errors.Is(err, ErrAdminToken) || !strings.Contains(err.Error(), path+":3: admin_token: ") {
		t.Fatalf("Reload = %v, want %s:3: admin_token: ...", err, path)
	}
	if resp, _ := get(t, front, "one.example.com", "/", nil); resp.StatusCode != 200 {
		t.Errorf("old config stopped serving: %d", resp.StatusCode)
	}
}

func TestTimeouts(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	certs := newTestCerts(t, "app.example.com")
	cfg := baseConfig(up.URL)
	cfg.Timeouts.UpstreamHeader = config.Duration(200 * time.Millisecond)
	cfg.Timeouts.ReadHeader = config.Duration(300 * time.Millisecond)
	s, err := New(context.Background(), cfg, Options{Certs: certs, Builders: []Builder{func(_ context.Context, w *Wiring) error {
		w.Auth, w.Authz, w.Recorder = &fakeAuth{id: alice}, allowAll(), &fakeRecorder{}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, s)

	start := time.Now()
	resp, err := certs.client(s.Addrs().HTTPS).Get("https://app.example.com/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || time.Since(start) > 2*time.Second {
		t.Errorf("slow upstream: %d after %v, want 502 after ~200ms", resp.StatusCode, time.Since(start))
	}

	// A client that never finishes its headers is cut after read_header.
	c, err := tls.Dial("tcp", s.Addrs().HTTPS, &tls.Config{RootCAs: certs.pool, ServerName: "app.example.com", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example.com\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start = time.Now()
	_, err = c.Read(make([]byte, 1))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("half-sent headers: read err %v after %v, want the connection closed after ~300ms", err, time.Since(start))
	}
}

func TestNewLogger(t *testing.T) {
	for _, l := range []config.Log{{}, {Format: "json", Level: "debug"}, {Format: "console", Level: "warn"}} {
		lg, err := NewLogger(l)
		if err != nil {
			t.Fatalf("%+v: %v", l, err)
		}
		want := l.Level != "warn"
		if got := lg.Core().Enabled(zapcore.InfoLevel); got != want {
			t.Errorf("%+v: info enabled = %v", l, got)
		}
		_ = lg.Sync()
	}
	if _, err := NewLogger(config.Log{Level: "loud"}); err == nil {
		t.Error("bad level accepted")
	}
}

// TestRunFailedStartClosesStages: when a listener cannot be bound, Run
// fails at once and still runs the close hooks (the audit log's stop record
// and final checkpoint), instead of exiting with them pending.
func TestRunFailedStartClosesStages(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ name, listen, admin string }{
		{"https", taken.Addr().String(), ""},
		{"admin", "127.0.0.1:0", taken.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, _ := echoUpstream(t, nil)
			cfg := baseConfig(up.URL)
			cfg.Listen, cfg.AdminListen, cfg.AdminToken = tc.listen, tc.admin, goodToken
			closed := 0
			s, err := New(context.Background(), cfg, Options{Certs: newTestCerts(t, "app.example.com"), Builders: []Builder{func(_ context.Context, w *Wiring) error {
				w.Auth, w.Authz, w.Recorder = &fakeAuth{id: alice}, allowAll(), &fakeRecorder{}
				w.OnClose(func(context.Context) error { closed++; return nil })
				return nil
			}}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Run(context.Background())
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "listen" {
				t.Fatalf("Run = %v, want a listen error", err)
			}
			if closed != 1 {
				t.Errorf("close hooks ran %d times, want 1", closed)
			}
		})
	}
}
