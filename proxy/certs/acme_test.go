package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gatehouse-dev/gatehouse/internal/syncbuf"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// The ACME tests run a real Pebble (scripts/deps/30-pebble.sh builds it),
// which validates every challenge for real: it resolves the name through
// a small DNS server of the test (everything under gatehouse.test is
// 127.0.0.1) and connects to the test's HTTP and HTTPS listeners, which
// are served by the Manager's HTTPHandler and TLSConfig, exactly as the
// proxy serves them.

const testZone = "gatehouse.test."

// acmeEnv is Pebble plus the two challenge listeners, not yet served.
type acmeEnv struct {
	directory string
	mgmt      string
	caRoot    string // PEM file trusted for Pebble's own HTTPS
	httpLn    net.Listener
	tlsLn     net.Listener
	stop      func()

	httpHits atomic.Int64 // HTTP-01 answers with status 200
	alpnHits atomic.Int64 // TLS-ALPN-01 handshakes answered
}

// startDNS answers A 127.0.0.1 for every name in testZone (and nothing
// else, no AAAA), over TCP as Pebble asks.
func startDNS(t *testing.T) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA && dns.IsSubDomain(testZone, strings.ToLower(q.Name)) {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func startPebble(t *testing.T) *acmeEnv {
	t.Helper()
	bin := testenv.NeedBinary(t, "pebble")
	dir := t.TempDir()

	// Pebble's own HTTPS certificate, from a throwaway CA the client trusts
	// through acme.ca_root.
	ca, err := openLocalCA(filepath.Join(dir, "ca"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.issue([]string{"localhost"}, []netipAddr{mustAddr("127.0.0.1")}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "pebble.pem"), filepath.Join(dir, "pebble.key")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvCert.Certificate[0]}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))

	env := &acmeEnv{caRoot: ca.certPath}
	if env.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if env.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	// The DNS server holds its port before Pebble's are picked: a port
	// FreePort released could otherwise go to it (both on one port).
	dnsAddr := startDNS(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env.mgmt = listen
	for env.mgmt == listen || env.mgmt == dnsAddr {
		env.mgmt = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	}
	if listen == dnsAddr {
		t.Fatalf("pebble and its DNS server were given one port (%s)", listen)
	}
	env.directory = "https://" + listen + "/dir"
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        env.mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       env.httpLn.Addr().(*net.TCPAddr).Port,
		"tlsPort":                        env.tlsLn.Addr().(*net.TCPAddr).Port,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	confJSON, _ := json.Marshal(conf)
	confFile := filepath.Join(dir, "pebble-config.json")
	write(t, confFile, confJSON)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-config", confFile, "-dnsserver", dnsAddr)
	testenv.DieWithParent(cmd)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out := &syncbuf.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start pebble: %v", err)
	}
	var once sync.Once
	env.stop = func() { once.Do(func() { cancel(); _ = cmd.Wait() }) }
	t.Cleanup(func() {
		env.stop()
		env.httpLn.Close()
		env.tlsLn.Close()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})

	// Wait for the directory.
	client := env.client(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(env.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up at %s: %v\n%s", env.directory, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return env
}

// client talks to Pebble's HTTPS endpoints.
func (e *acmeEnv) client(t *testing.T) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, e.caRoot)}}}
}

// pebbleRoot fetches the root Pebble issues under, from its management port.
func (e *acmeEnv) pebbleRoot(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := e.client(t).Get("https://" + e.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if resp.StatusCode != http.StatusOK || !pool.AppendCertsFromPEM(body) {
		t.Fatalf("pebble /roots/0: %d %q", resp.StatusCode, body)
	}
	return pool
}

// serve runs the challenge listeners with m, counting challenge answers.
func (e *acmeEnv) serve(t *testing.T, m *Manager) {
	t.Helper()
	h := m.HTTPHandler(nil)
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && rec.code == http.StatusOK {
			e.httpHits.Add(1)
		}
	})}
	cfg := m.TLSConfig()
	get := cfg.GetCertificate
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := get(hello)
		if err == nil && slices.Contains(hello.SupportedProtos, acmeTLS1) {
			e.alpnHits.Add(1)
		}
		return c, err
	}
	tlsSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello over acme") })}
	go httpSrv.Serve(e.httpLn)
	go tlsSrv.Serve(tls.NewListener(e.tlsLn, cfg))
	t.Cleanup(func() { httpSrv.Close(); tlsSrv.Close() })
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func (e *acmeEnv) options(t *testing.T, storage string, hosts ...string) Options {
	return Options{
		Mode:  ModeACME,
		Hosts: hosts,
		ACME: ACMEOptions{
			Email: "ops@gatehouse.test", Directory: e.directory, CARoot: e.caRoot, Storage: storage,
			ListenHost:  "127.0.0.1",
			HTTPPort:    e.httpLn.Addr().(*net.TCPAddr).Port,
			TLSALPNPort: e.tlsLn.Addr().(*net.TCPAddr).Port,
		},
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
	}
}

// verifyServed handshakes with the HTTPS listener and checks the chain up
// to roots for name.
func (e *acmeEnv) verifyServed(t *testing.T, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	leaf, err := handshake(t, e.tlsLn.Addr().String(), name, roots)
	if err != nil {
		t.Fatalf("handshake %s against Pebble's root: %v", name, err)
	}
	return leaf
}

func TestACMEPebble(t *testing.T) {
	env := startPebble(t)
	storage := t.TempDir()
	name := "app." + strings.TrimSuffix(testZone, ".")
	m, err := New(context.Background(), env.options(t, storage, name))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	env.serve(t, m)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Sync(ctx); err != nil {
		t.Fatalf("obtain from Pebble: %v", err)
	}
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("Ready after Sync: %v", err)
	}
	if env.httpHits.Load()+env.alpnHits.Load() == 0 {
		t.Fatal("certificate obtained without any challenge being answered")
	}
	roots := env.pebbleRoot(t)
	leaf := env.verifyServed(t, name, roots)
	if !slices.Equal(leaf.DNSNames, []string{name}) {
		t.Errorf("leaf names %v", leaf.DNSNames)
	}
	// An HTTPS request through the listener works end to end.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name}, ForceAttemptHTTP2: true,
	}}
	resp, err := hc.Get("https://" + env.tlsLn.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello over acme" || resp.ProtoMajor != 2 {
		t.Errorf("GET = %s %q", resp.Proto, body)
	}
	// Unknown names are refused, not sent to the CA.
	if _, err := handshake(t, env.tlsLn.Addr().String(), "other."+strings.TrimSuffix(testZone, "."), roots); err == nil {
		t.Error("handshake for an unconfigured name succeeded")
	}
	// Plain HTTP is redirected to HTTPS.
	req, _ := http.NewRequest("GET", "http://"+env.httpLn.Addr().String()+"/x?y=1", nil)
	req.Host = name
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://"+name+"/x?y=1" {
		t.Errorf("plain HTTP: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A host added by a config reload is obtained too.
	added := "added." + strings.TrimSuffix(testZone, ".")
	if err := m.SetHosts(ctx, []string{name, added}); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatalf("obtain added host: %v", err)
	}
	env.verifyServed(t, added, roots)

	// A restart loads the certificate from storage: no new order (Pebble
	// is stopped), the same certificate is served.
	m.Close()
	env.stop()
	m2, err := New(context.Background(), env.options(t, storage, name))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Sync(ctx); err != nil {
		t.Fatalf("restart with stored certificate: %v", err)
	}
	got, err := m2.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Certificate[0], leaf.Raw) {
		t.Error("restart served a different certificate than the stored one")
	}
}

func TestACMEChallenges(t *testing.T) {
	for _, tc := range []struct {
		challenge     string
		noHTTP, noTLS bool
	}{
		{"http-01", false, true},
		{"tls-alpn-01", true, false},
	} {
		t.Run(tc.challenge, func(t *testing.T) {
			env := startPebble(t)
			name := strings.ReplaceAll(tc.challenge, "-", "") + "." + strings.TrimSuffix(testZone, ".")
			o := env.options(t, t.TempDir(), name)
			o.ACME.DisableHTTPChallenge, o.ACME.DisableTLSALPNChallenge = tc.noHTTP, tc.noTLS
			m, err := New(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			env.serve(t, m)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := m.Sync(ctx); err != nil {
				t.Fatalf("obtain with %s: %v", tc.challenge, err)
			}
			httpHits, alpnHits := env.httpHits.Load(), env.alpnHits.Load()
			switch tc.challenge {
			case "http-01":
				if httpHits == 0 || alpnHits != 0 {
					t.Fatalf("http-01: %d HTTP answers, %d TLS-ALPN answers", httpHits, alpnHits)
				}
			case "tls-alpn-01":
				if alpnHits == 0 || httpHits != 0 {
					t.Fatalf("tls-alpn-01: %d TLS-ALPN answers, %d HTTP answers", alpnHits, httpHits)
				}
			}
			env.verifyServed(t, name, env.pebbleRoot(t))
		})
	}
}

type netipAddr = netip.Addr

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
