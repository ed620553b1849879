package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// The apps nginx serves, on 127.0.0.2 and Gatehouse's own port number (so
// that the URLs forward-auth is asked about carry external_url's port, as
// when both listen on :443 of different machines).
const (
	legacyName = "legacy.localhost"
	vaultName  = "vault.localhost" // mfa: required
	nginxIP    = "127.0.0.2"
)

// nginxConf is an nginx in front of a legacy app, asking Gatehouse's
// forward-auth endpoint about every request (auth_request), copying the
// identity headers it answers to the app, sending browsers to sign in on a
// 401, and passing /.gatehouse/ (sign-in callback, sign-out) to Gatehouse
// with the original Host, so the session cookie is the app host's own.
var nginxConf = template.Must(template.New("nginx").Parse(`# written by test/e2e
daemon off;
master_process off;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 64; }
http {
  access_log {{.Dir}}/access.log;
  client_body_temp_path {{.Dir}}/tmp/body;
  proxy_temp_path {{.Dir}}/tmp/proxy;
  fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
  uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
  scgi_temp_path {{.Dir}}/tmp/scgi;
  proxy_ssl_verify on;
  proxy_ssl_trusted_certificate {{.CA}};
  proxy_ssl_server_name on;
  # one upstream TLS session per name: a session resumed for another
  # name would bring that name's certificate
  proxy_ssl_session_reuse off;

  server {
    listen {{.IP}}:{{.Port}} ssl;
    server_name {{.Hosts}};
    ssl_certificate {{.Dir}}/nginx.crt;
    ssl_certificate_key {{.Dir}}/nginx.key;

    location = /_gatehouse_auth {
      internal;
      proxy_pass https://127.0.0.1:{{.Gatehouse}}/.gatehouse/auth;
      proxy_ssl_name {{.Central}};
      proxy_set_header Host {{.Central}}:{{.Gatehouse}};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL https://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }

    location /.gatehouse/ {
      proxy_pass https://127.0.0.1:{{.Gatehouse}};
      proxy_ssl_name $host;
      proxy_set_header Host $http_host;
      proxy_set_header X-Real-IP $remote_addr;
    }

    location / {
      auth_request /_gatehouse_auth;
      auth_request_set $gh_user $upstream_http_x_gatehouse_user;
      auth_request_set $gh_email $upstream_http_x_gatehouse_email;
      auth_request_set $gh_groups $upstream_http_x_gatehouse_groups;
      auth_request_set $gh_roles $upstream_http_x_gatehouse_roles;
      auth_request_set $gh_assertion $upstream_http_x_gatehouse_assertion;
      auth_request_set $gh_login $upstream_http_location;
      proxy_set_header X-Gatehouse-User $gh_user;
      proxy_set_header X-Gatehouse-Email $gh_email;
      proxy_set_header X-Gatehouse-Groups $gh_groups;
      proxy_set_header X-Gatehouse-Roles $gh_roles;
      proxy_set_header X-Gatehouse-Assertion $gh_assertion;
      error_page 401 = @signin;
      proxy_pass {{.App}};
    }

    location @signin {
      return 302 $gh_login;
    }
  }
}
`))

// legacyApp is the app behind nginx: it echoes the identity headers it
// got as JSON and counts its requests.
type legacyApp struct {
	url  string
	hits atomic.Int64
}

func startLegacyApp(t *testing.T) *legacyApp {
	t.Helper()
	a := &legacyApp{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"path":      r.URL.Path,
			"user":      r.Header.Get("X-Gatehouse-User"),
			"email":     r.Header.Get("X-Gatehouse-Email"),
			"groups":    r.Header.Get("X-Gatehouse-Groups"),
			"roles":     r.Header.Get("X-Gatehouse-Roles"),
			"assertion": r.Header.Get("X-Gatehouse-Assertion"),
		})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	a.url = "http://" + l.Addr().String()
	return a
}

// startNginx runs nginx with nginxConf on nginxIP and Gatehouse's port
// until t ends and returns the certificate it serves (self-signed for
// names).
func startNginx(t *testing.T, s *stack, app string, names ...string) *x509.Certificate {
	t.Helper()
	bin := testenv.NeedBinary(t, "nginx")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, dir, names...)
	port := s.port
	var b bytes.Buffer
	if err := nginxConf.Execute(&b, map[string]any{
		"Dir": dir, "CA": s.caFile, "IP": nginxIP, "Port": port, "Hosts": strings.Join(names, " "), "Gatehouse": s.port,
		"Central": centralName, "App": app,
	}); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	testenv.DieWithParent(cmd)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx error log:\n%s", errorLog())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(nginxIP, fmt.Sprint(port)), time.Second)
		if err == nil {
			_ = c.Close()
			for _, n := range names {
				s.dial[n] = nginxIP
			}
			return cert
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, errorLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening after 10s:\n%s", errorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// selfSigned writes nginx.crt and nginx.key for names into dir.
func selfSigned(t *testing.T, dir string, names ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestNginxAuthRequest puts two apps behind a real nginx whose
// auth_request asks Gatehouse's /.gatehouse/auth; nginx listens on
// 127.0.0.2 with Gatehouse's port number, so the URLs it asks about carry
// external_url's port:
//
//   - without a session nginx gets 401 and sends the browser to sign in
//     on the app's own host; the app is never reached, spoofed identity
//     headers or not;
//   - after a real sign-in (test IdP, password + TOTP) through nginx, the
//     app gets alice's identity headers and a signed assertion that
//     verifies against Gatehouse's JWKS, never the client's copies;
//   - a path the policy keeps from bob is 403 at nginx, and recorded;
//   - a route with mfa: required lets alice in (she has MFA) and sends
//     bob (password only) back to the IdP, never to the app;
//   - a session cookie copied before sign-out no longer works after it.
func TestNginxAuthRequest(t *testing.T) {
	testenv.NeedBinary(t, "nginx") // before starting anything
	app := startLegacyApp(t)
	pol, err := filepath.Abs(filepath.Join("testdata", "policies"))
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{
		Routes: []route{
			{Name: "legacy", Host: legacyName, Upstream: app.url},
			{Name: "vault", Host: vaultName, Upstream: app.url, MFA: "required"},
		},
		PolicyDir: pol,
	})
	ncert := startNginx(t, s, app.url, legacyName, vaultName)
	base := s.url(legacyName, "")
	nport := s.port

	// No session: 401 from forward-auth, which nginx turns into a redirect
	// to sign in on the app's host. Identity headers sent by the client
	// change nothing.
	noRedirect := &http.Client{Transport: s.transport(ncert), Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", base+"/reports?q=1", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("X-Gatehouse-User", "alice")
	req.Header.Set("X-Gatehouse-Email", "alice@example.com")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Host != fmt.Sprintf("%s:%d", legacyName, nport) || loc.Path != "/.gatehouse/start" {
		t.Fatalf("no session: %d Location %q, want 302 to %s/.gatehouse/start", resp.StatusCode, resp.Header.Get("Location"), base)
	}
	if rd := loc.Query().Get("rd"); rd != base+"/reports?q=1" {
		t.Errorf("sign-in returns to %q, want %q", rd, base+"/reports?q=1")
	}
	if n := app.hits.Load(); n != 0 {
		t.Fatalf("the app was reached %d times without a session", n)
	}
	// The forward-auth contract itself, as nginx sees it: 401 + Location.
	code, hdr := forwardAuth(t, s, base+"/reports", nil)
	if code != http.StatusUnauthorized || !strings.Contains(hdr.Get("Location"), "/.gatehouse/start") {
		t.Fatalf("forward-auth without a session: %d Location %q, want 401 with the sign-in URL", code, hdr.Get("Location"))
	}

	// A real sign-in through nginx: alice lands on the page she asked for,
	// and the app sees who she is.
	b := s.browser(ncert)
	p, err := b.Get(base + "/reports?q=1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.URL.String(), s.idp.Issuer) {
		t.Fatalf("sign-in did not reach the IdP: at %s (%d)", p.URL, p.Status)
	}
	p, err = b.SignIn(p, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != 200 || p.URL.String() != base+"/reports?q=1" {
		t.Fatalf("after sign-in: %d at %s\n%s", p.Status, p.URL, p.Body)
	}
	got := decodeEcho(t, p.Body)
	if got["user"] != idp.AliceUser || got["email"] != "alice@example.com" || !strings.Contains(got["groups"], "finance") {
		t.Fatalf("identity headers at the app: %v", got)
	}
	verifyAssertion(t, s, got["assertion"], "legacy", idp.AliceUser)

	// The session cookie is the app host's own (set through nginx).
	lu, _ := url.Parse(base + "/")
	var session *http.Cookie
	for _, c := range b.Client.Jar.Cookies(lu) {
		if strings.Contains(c.Name, "gatehouse") && !strings.Contains(c.Name, "bind") {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session cookie for %s: %v", lu, b.Client.Jar.Cookies(lu))
	}
	// Spoofed headers from a signed-in client are replaced, not merged.
	req, _ = http.NewRequest("GET", base+"/again", nil)
	req.Header.Set("X-Gatehouse-User", "mallory")
	req.Header.Set("X-Gatehouse-Groups", "admins")
	req.Header.Set("X-Gatehouse-Roles", "superuser")
	p, err = b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeEcho(t, p.Body); got["user"] != idp.AliceUser || strings.Contains(got["groups"], "admins") || strings.Contains(got["roles"], "superuser") || !strings.Contains(got["roles"], "admin") {
		t.Fatalf("spoofed headers reached the app: %v", got)
	}
	// Alice is in finance: /finance is hers.
	if p, err = b.Get(base + "/finance/q3"); err != nil || p.Status != 200 {
		t.Fatalf("alice /finance: %v %d", err, statusOf(p))
	}

	// bob (no finance group) signs in in another browser: /finance is 403
	// at nginx, and the denial is in the audit log.
	bb := s.browser(ncert)
	p, err = bb.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = bb.SignIn(p, idp.BobUser, idp.BobPassword, ""); err != nil || p.Status != 200 {
		t.Fatalf("bob sign-in: %v %d", err, statusOf(p))
	}
	if got := decodeEcho(t, p.Body); got["user"] != idp.BobUser {
		t.Fatalf("bob at the app: %v", got)
	}
	before := app.hits.Load()
	if p, err = bb.Get(base + "/finance/q3"); err != nil || p.Status != http.StatusForbidden {
		t.Fatalf("bob /finance: %v %d, want 403", err, statusOf(p))
	}
	if app.hits.Load() != before {
		t.Fatal("a denied request reached the app")
	}
	var denied bool
	for _, r := range s.auditRecords() {
		if r.Type == audit.TypeDecision && r.Subject == idp.BobUser && r.Outcome == audit.OutcomeDeny &&
			strings.HasPrefix(r.Path, "/finance") && slices.Contains(r.Reasons, "legacy.finance_only") {
			denied = true
		}
	}
	if !denied {
		t.Error("no audit record of bob's forward-auth denial")
	}

	// The vault route says mfa: required. Alice (signed in with a second
	// factor) gets in by single sign-on; the assertion is for the vault.
	vault := s.url(vaultName, "/")
	if p, err = b.Get(vault); err != nil || p.Status != 200 {
		t.Fatalf("alice at the vault: %v %d", err, statusOf(p))
	}
	got = decodeEcho(t, p.Body)
	if got["user"] != idp.AliceUser {
		t.Fatalf("alice at the vault: %v", got)
	}
	verifyAssertion(t, s, got["assertion"], "vault", idp.AliceUser)
	// bob, password only, is sent to the IdP for a fresh sign-in with a
	// second factor; the vault never sees him.
	before = app.hits.Load()
	p, err = bb.Get(vault)
	if err != nil {
		t.Fatal(err)
	}
	if app.hits.Load() != before || !strings.HasPrefix(p.URL.String(), s.idp.Issuer) {
		t.Errorf("bob (no MFA) at the mfa: required vault: %d at %s, app reached %v (forward-auth did not apply the route's mfa: required)\n%s",
			p.Status, p.URL, app.hits.Load() != before, p.Body)
	} else if _, ok := p.FormWith("password"); !ok {
		t.Errorf("the IdP did not ask bob to sign in again:\n%s", p.Body)
	}

	// Sign-out through nginx; the cookie copied before no longer opens
	// anything.
	p, err = b.Get(base + "/.gatehouse/logout")
	if err != nil {
		t.Fatal(err)
	}
	f, ok := p.FormWith("csrf")
	if !ok {
		t.Fatalf("no sign-out form:\n%s", p.Body)
	}
	if _, err = b.Submit(p, f, nil); err != nil {
		t.Fatal(err)
	}
	code, _ = forwardAuth(t, s, base+"/reports", session)
	if code != http.StatusUnauthorized {
		t.Fatalf("forward-auth with a cookie copied before sign-out: %d, want 401", code)
	}
	req, _ = http.NewRequest("GET", base+"/reports", nil)
	req.AddCookie(session)
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("nginx with a cookie copied before sign-out: %d, want 302 to sign in", resp.StatusCode)
	}
}

// forwardAuth asks /.gatehouse/auth directly, as nginx does, about u.
func forwardAuth(t *testing.T, s *stack, u string, cookie *http.Cookie) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.external+"/.gatehouse/auth", nil)
	req.Header.Set("X-Original-URL", u)
	req.Header.Set("X-Original-Method", "GET")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	c := &http.Client{Transport: s.transport(), Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func decodeEcho(t *testing.T, body string) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not the app's answer: %v\n%s", err, body)
	}
	return m
}

func statusOf(p *idp.Page) int {
	if p == nil {
		return 0
	}
	return p.Status
}

// verifyAssertion checks the upstream assertion with go-jose against the
// keys Gatehouse publishes at /.gatehouse/jwks.json.
func verifyAssertion(t *testing.T, s *stack, token, route, sub string) {
	t.Helper()
	if token == "" {
		t.Fatal("no assertion reached the app")
	}
	c := &http.Client{Transport: s.transport(), Timeout: 10 * time.Second}
	resp, err := c.Get(s.external + "/.gatehouse/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("assertion: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatalf("assertion has %d signatures", len(tok.Headers))
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		t.Fatalf("assertion key %q is not in the JWKS", tok.Headers[0].KeyID)
	}
	var claims jwt.Claims
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Subject: sub, AnyAudience: jwt.Audience{route}, Time: time.Now()}, 5*time.Second); err != nil {
		t.Errorf("assertion for route %s: iss %s sub %s aud %v: %v", route, claims.Issuer, claims.Subject, claims.Audience, err)
	}
	if claims.Expiry == nil || claims.IssuedAt == nil || claims.Expiry.Time().Sub(claims.IssuedAt.Time()) > time.Minute {
		t.Errorf("assertion lifetime iat %v exp %v, want at most 60s", claims.IssuedAt, claims.Expiry)
	}
}
