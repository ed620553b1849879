package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/internal/idp/idptest"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// End-to-end tests of authn through the real pipeline: the registered
// builder (buildAuthn) from a YAML config loaded by config.Load, the real
// test IdP (npm oidc-provider), an echo upstream, the admin API, and a real
// nginx for forward-auth.

const authnAdminToken = "authn-admin-token-0123456789abcdef"

// mfaPathAuthz allows everything and requires MFA under /admin (policy's
// require_mfa).
type mfaPathAuthz struct{}

func (mfaPathAuthz) Decide(_ context.Context, req *Request, _ Identity, _ Risk) (Decision, error) {
	return Decision{Allow: true, RequireMFA: strings.HasPrefix(req.Path, "/admin"), Revision: "test"}, nil
}

type authnE2E struct {
	s     *Server
	front *httptest.Server
	admin *httptest.Server
	rec   *fakeRecorder
	b     *idp.Browser
	seen  *[]seen
	p     *idp.Provider
	cert  *exampleCert
	// cfgPath is the instance's gatehouse.yaml (replica loads it again).
	cfgPath string
}

// exampleCert is a self-signed certificate for *.example.com.
type exampleCert struct {
	cert            tls.Certificate
	pool            *x509.CertPool
	certPEM, keyPEM []byte
}

func newExampleCert(t *testing.T) *exampleCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "*.example.com"},
		DNSNames: []string{"*.example.com", "example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	c := &exampleCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pool:    x509.NewCertPool(),
	}
	c.cert, err = tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	c.pool.AddCert(leaf)
	return c
}

func newAuthnE2E(t *testing.T, extraYAML string) *authnE2E {
	t.Helper()
	return newAuthnE2EWith(t, extraYAML, false)
}

// buildAuthnInstance is the builder of an e2e instance: with audited, a
// real audit log from the config (buildAudit) records the events.
func buildAuthnInstance(t *testing.T, audited bool) func(w *Wiring) {
	return func(w *Wiring) {
		if audited {
			if err := buildAudit(context.Background(), w); err != nil {
				t.Fatalf("build audit: %v", err)
			}
		}
		if err := buildAuthn(context.Background(), w); err != nil {
			t.Fatalf("build authn: %v", err)
		}
	}
}

// newAuthnE2EWith is newAuthnE2E; with audited, events go to a real audit
// log (audit.dir in the instance's directory) instead of e.rec (nil).
func newAuthnE2EWith(t *testing.T, extraYAML string, audited bool) *authnE2E {
	t.Helper()
	p := idptest.Start(t, idp.Options{RedirectURIs: []string{"https://gate.example.com/.gatehouse/callback"},
		PostLogoutRedirects: []string{"https://gate.example.com/.gatehouse/signed-out"}})
	up, seenReqs := echoUpstream(t, nil)
	dir := t.TempDir()
	key := make([]byte, 48)
	_, _ = rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "session.key"), []byte(base64.RawURLEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
admin_token: %q
external_url: https://gate.example.com
oidc:
  issuer: %s
  client_id: %s
  client_secret: %s
  scopes: [openid, email, profile, groups]
  claims: { roles: realm_access.roles }
mfa:
  amr_any: [otp]
  acr_any: [%s]
  step_up_acr: %s
  max_age: 12h
session:
  secret_files: [./session.key]
identity:
  headers: { user: X-Auth-User, email: X-Auth-Email, groups: X-Auth-Groups, roles: X-Auth-Roles }
  assertion: { header: X-Identity-Assertion }
routes:
  - { name: chat, host: chat.example.com, upstream: %q }
  - { name: secure, host: secure.example.com, upstream: %q, mfa: required }
%s`, authnAdminToken, p.Issuer, p.ClientID, p.ClientSecret, idp.MFAACR, idp.MFAACR, up.URL, up.URL, extraYAML)
	if audited {
		skey, _, err := note.GenerateKey(rand.Reader, "audit.authn.test")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "audit.key"), []byte(skey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		yaml += "audit: { dir: ./audit, signing_key_file: ./audit.key, durability: always }\n"
	}
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rec := &fakeRecorder{}
	st := stages{authz: mfaPathAuthz{}, rec: rec, extra: buildAuthnInstance(t, audited)}
	if audited {
		rec, st.rec = nil, nil
	}
	s, front := newTestServer(t, cfg, st)
	_ = front
	tc := newExampleCert(t)
	tlsFront := httptest.NewUnstartedServer(s)
	tlsFront.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
	tlsFront.StartTLS()
	t.Cleanup(tlsFront.Close)
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	addr := tlsFront.Listener.Addr().String()
	b := idp.NewBrowser(map[string]string{"gate.example.com": addr, "chat.example.com": addr, "secure.example.com": addr})
	b.Trust(tc.pool)
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	return &authnE2E{s: s, front: tlsFront, admin: admin, rec: rec, b: b, seen: seenReqs, p: p, cert: tc, cfgPath: cfgPath}
}

func (e *authnE2E) get(t *testing.T, u string) *idp.Page {
	t.Helper()
	p, err := e.b.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return p
}

func (e *authnE2E) signIn(t *testing.T, u, user, pw, totp string) *idp.Page {
	t.Helper()
	p := e.get(t, u)
	out, err := e.b.SignIn(p, user, pw, totp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *authnE2E) lastSeen(t *testing.T) seen {
	t.Helper()
	if len(*e.seen) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return (*e.seen)[len(*e.seen)-1]
}

func TestLoginThroughProxy(t *testing.T) {
	e := newAuthnE2E(t, "")
	page := e.signIn(t, "https://chat.example.com/channels/town?x=1", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if page.Status != 200 || page.URL.String() != "https://chat.example.com/channels/town?x=1" {
		t.Fatalf("after login: %s %d %s", page.URL, page.Status, page.Body)
	}
	got := e.lastSeen(t)
	if got.Header.Get("X-Auth-User") != "alice" || got.Header.Get("X-Auth-Email") != "alice@example.com" ||
		got.Header.Get("X-Auth-Groups") != "staff,finance" || got.Header.Get("X-Auth-Roles") != "admin,staff" {
		t.Errorf("identity headers upstream: %v", got.Header)
	}
	// The upstream verifies the assertion with the published keys.
	jwks := e.get(t, "https://chat.example.com/.gatehouse/jwks.json")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(jwks.Body), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v %s", err, jwks.Body)
	}
	tok, err := jwt.ParseSigned(got.Header.Get("X-Identity-Assertion"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		jwt.Claims
		Email string `json:"email"`
		MFA   bool   `json:"mfa"`
	}
	if err := tok.Claims(set.Keys[0].Key, &claims); err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if err := claims.Validate(jwt.Expected{Issuer: "https://gate.example.com", AnyAudience: jwt.Audience{"chat"}, Subject: "alice", Time: time.Now()}); err != nil || !claims.MFA {
		t.Errorf("assertion claims %+v: %v", claims, err)
	}
	// No Gatehouse cookie reaches the app; a client cannot spoof identity.
	req, _ := http.NewRequest("GET", "https://chat.example.com/spoof", nil)
	req.Header.Set("X-Auth-User", "root")
	req.Header.Set("X-Identity-Assertion", "forged")
	req.AddCookie(&http.Cookie{Name: "app_pref", Value: "dark"})
	if _, err := e.b.Do(req); err != nil {
		t.Fatal(err)
	}
	got = e.lastSeen(t)
	if got.Header.Get("X-Auth-User") != "alice" || got.Header.Get("X-Identity-Assertion") == "forged" {
		t.Errorf("spoofed headers reached the upstream: %v", got.Header)
	}
	if c := got.Header.Get("Cookie"); strings.Contains(c, "_gatehouse") || !strings.Contains(c, "app_pref=dark") {
		t.Errorf("Cookie upstream: %q", c)
	}
	if e.rec.count("login") != 1 {
		t.Errorf("login events: %+v", e.rec.Events())
	}
	for _, ev := range e.rec.Events() {
		if ev.Type == "login" && (ev.Subject != "alice" || ev.ClientIP != "127.0.0.1" || ev.SessionID == "") {
			t.Errorf("login event %+v", ev)
		}
	}
}

func TestStepUpThroughProxy(t *testing.T) {
	e := newAuthnE2E(t, "")
	page := e.signIn(t, "https://chat.example.com/", "dana", "dana-password", "")
	if page.Status != 200 || e.lastSeen(t).Header.Get("X-Auth-User") != "dana" {
		t.Fatalf("dana: %d %s", page.Status, page.Body)
	}
	// Policy says require_mfa under /admin: step-up, then the same URL.
	page = e.signIn(t, "https://chat.example.com/admin/users?page=2", "dana", "dana-password", idp.AliceTOTP)
	if page.Status != 200 || page.URL.String() != "https://chat.example.com/admin/users?page=2" || e.lastSeen(t).RequestURI != "/admin/users?page=2" {
		t.Fatalf("after step-up: %s %d", page.URL, page.Status)
	}
	n := 0
	for _, ev := range e.rec.Events() {
		if ev.Type == EventDecision && ev.Outcome == OutcomeStepUp {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d step_up decisions recorded, want 1", n)
	}
	// An API client without MFA gets RFC 9470, not a redirect.
	e2 := newAuthnE2E(t, "")
	e2.signIn(t, "https://chat.example.com/", idp.BobUser, idp.BobPassword, "")
	req, _ := http.NewRequest("GET", "https://chat.example.com/admin/api", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := e2.b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
		t.Errorf("API step-up: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestMFARouteWithoutMFAThroughProxy(t *testing.T) {
	e := newAuthnE2E(t, "")
	e.b.Visited()
	page := e.signIn(t, "https://secure.example.com/", idp.BobUser, idp.BobPassword, "")
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "did not provide") {
		t.Fatalf("bob on an mfa: required route: %d %s", page.Status, page.Body)
	}
	page = e.get(t, "https://secure.example.com/")
	auths := 0
	for _, v := range e.b.Visited() {
		if strings.HasPrefix(v, e.p.Issuer+"/auth?") {
			auths++
		}
	}
	if page.Status != http.StatusForbidden || auths != 1 {
		t.Errorf("revisit %d, %d IdP round trips (want 1: no loop)", page.Status, auths)
	}
	for _, s := range *e.seen {
		if s.Host == "secure.example.com" || strings.Contains(s.Header.Get("X-Auth-User"), "bob") && s.Path == "/" {
			t.Errorf("the upstream was reached without MFA: %+v", s)
		}
	}
}

// replica starts a second Gatehouse from the same gatehouse.yaml (same
// IdP, session keys and Redis) and returns a browser holding e's cookies
// pointed at it, and its admin server.
func (e *authnE2E) replica(t *testing.T) (*idp.Browser, *httptest.Server) {
	t.Helper()
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t, cfg, stages{authz: mfaPathAuthz{}, rec: &fakeRecorder{}, extra: func(w *Wiring) {
		if err := buildAuthn(context.Background(), w); err != nil {
			t.Fatalf("build authn: %v", err)
		}
	}})
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	front := httptest.NewUnstartedServer(s)
	front.TLS = &tls.Config{Certificates: []tls.Certificate{e.cert.cert}}
	front.StartTLS()
	t.Cleanup(front.Close)
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	addr := front.Listener.Addr().String()
	b := idp.NewBrowser(map[string]string{"gate.example.com": addr, "chat.example.com": addr, "secure.example.com": addr})
	b.Trust(e.cert.pool)
	for _, h := range []string{"gate.example.com", "chat.example.com", "secure.example.com"} {
		u := mustParseURL(t, "https://"+h+"/")
		b.Client.Jar.SetCookies(u, e.b.Client.Jar.Cookies(u))
	}
	return b, admin
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// statusOf is the status of an API-style GET of u with b's cookies.
func statusOf(t *testing.T, b *idp.Browser, u string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func adminRevoke(t *testing.T, admin *httptest.Server, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", admin.URL+"/api/v1/sessions/revoke", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+authnAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke %s: %d", body, resp.StatusCode)
	}
}

// TestRevokeAcrossReplicasThroughProxy: two Gatehouse instances share a
// real redis-server (cookie sessions, revocation list in Redis, answered
// from each instance's local view). A revocation on one is refused there
// at once and on the other within a second.
func TestRevokeAcrossReplicasThroughProxy(t *testing.T) {
	addr, _ := anomalyRedis(t)
	e := newAuthnE2E(t, fmt.Sprintf("redis: { addr: %q }\n", addr))
	e.signIn(t, "https://chat.example.com/", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	bb, adminB := e.replica(t)
	const u = "https://chat.example.com/"
	if a, b := statusOf(t, e.b, u), statusOf(t, bb, u); a != 200 || b != 200 {
		t.Fatalf("before revocation: A %d, B %d", a, b)
	}
	// By user, on B: refused on B at once, on A within a second.
	adminRevoke(t, adminB, `{"user":"alice"}`)
	if code := statusOf(t, bb, u); code != 401 {
		t.Errorf("the instance that revoked still serves the session: %d", code)
	}
	start := time.Now()
	for statusOf(t, e.b, u) != 401 {
		if time.Since(start) > time.Second {
			t.Fatal("the other instance still serves the revoked user after 1s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("user revocation refused on the other instance after %v", time.Since(start))

	// By session id, on A, for a fresh login: the same on the other side.
	e.b = idp.NewBrowser(map[string]string{"gate.example.com": e.front.Listener.Addr().String(),
		"chat.example.com": e.front.Listener.Addr().String(), "secure.example.com": e.front.Listener.Addr().String()})
	e.b.Trust(e.cert.pool)
	time.Sleep(5 * time.Millisecond) // a session created after the user revocation
	e.signIn(t, u, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	bb, _ = e.replica(t)
	if a, b := statusOf(t, e.b, u), statusOf(t, bb, u); a != 200 || b != 200 {
		t.Fatalf("new session: A %d, B %d", a, b)
	}
	var sid string
	for _, ev := range e.rec.Events() {
		if ev.Type == "login" {
			sid = ev.SessionID
		}
	}
	if sid == "" {
		t.Fatal("no login recorded")
	}
	adminRevoke(t, e.admin, fmt.Sprintf(`{"session":%q}`, sid))
	if code := statusOf(t, e.b, u); code != 401 {
		t.Errorf("the instance that revoked still serves the session: %d", code)
	}
	start = time.Now()
	for statusOf(t, bb, u) != 401 {
		if time.Since(start) > time.Second {
			t.Fatal("the other instance still serves the revoked session after 1s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("session revocation refused on the other instance after %v", time.Since(start))
	// The checks were answered from the local view, and operators can see it.
	resp, err := http.Get(adminB.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "gatehouse_authn_revocation_view_fresh 1") {
		t.Errorf("revocation view not reported fresh in /metrics:\n%s", authnMetricLines(string(body)))
	}
}

func authnMetricLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "gatehouse_authn_revocation") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestRevokeThroughAdminAPI(t *testing.T) {
	e := newAuthnE2E(t, "")
	e.signIn(t, "https://chat.example.com/", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	call := func(body string) int {
		req, _ := http.NewRequest("POST", e.admin.URL+"/api/v1/sessions/revoke", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+authnAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call(`{"user":"alice","session":"x"}`); code != 400 {
		t.Errorf("both user and session: %d", code)
	}
	if code := call(`{"user":"alice"}`); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	req, _ := http.NewRequest("GET", "https://chat.example.com/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := e.b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("after revocation: %d", resp.StatusCode)
	}
	if e.rec.count("session_revoked") != 1 {
		t.Errorf("revocation not audited: %+v", e.rec.Events())
	}
}

// TestForwardAuthWithNginx puts a real nginx (auth_request) in front of an
// app, asking Gatehouse's /.gatehouse/auth.
func TestForwardAuthWithNginx(t *testing.T) {
	nginx := testenv.NeedBinary(t, "nginx")
	e := newAuthnE2E(t, "  - { name: wiki, host: wiki.example.com, upstream: \"http://127.0.0.1:1\", path_charset: nfkc }\n"+
		"  - { name: wiki-public, host: wiki.example.com, path_prefix: /pub, public: true, upstream: \"http://127.0.0.1:1\" }\n")
	up, seenReqs := echoUpstream(t, nil)
	port := testenv.FreePort(t)
	dir := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	gh := e.front.Listener.Addr().String()
	conf := fmt.Sprintf(`worker_processes 1;
error_log %[1]s/logs/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  absolute_redirect off;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl default_server;
    ssl_reject_handshake on;
    return 444;
  }
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[1]s/cert.pem;
    ssl_certificate_key %[1]s/key.pem;
    server_name wiki.example.com;
    location = /.gatehouse/auth {
      internal;
      proxy_pass https://%[3]s;
      proxy_ssl_server_name on;
      proxy_ssl_name $host;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host;
      proxy_set_header X-Original-URL https://wiki.example.com$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
    location /.gatehouse/ {
      proxy_pass https://%[3]s;
      proxy_ssl_server_name on;
      proxy_ssl_name $host;
      proxy_set_header Host $host;
    }
    location @login {
      return 302 $gh_login;
    }
    location / {
      auth_request /.gatehouse/auth;
      auth_request_set $gh_user $upstream_http_x_auth_user;
      auth_request_set $gh_assertion $upstream_http_x_identity_assertion;
      auth_request_set $gh_cookie $upstream_http_x_gatehouse_cookie;
      auth_request_set $gh_login $upstream_http_location;
      error_page 401 = @login;
      proxy_set_header X-Auth-User $gh_user;
      proxy_set_header X-Identity-Assertion $gh_assertion;
      proxy_set_header Cookie $gh_cookie;
      proxy_pass %[4]s;
    }
  }
}
`, dir, port, gh, up.URL)
	_ = os.WriteFile(filepath.Join(dir, "cert.pem"), e.cert.certPEM, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "key.pem"), e.cert.keyPEM, 0o644)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-g", "daemon off;")
	testenv.DieWithParent(cmd)
	out, err := os.Create(filepath.Join(dir, "logs", "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers too (SIGKILL would orphan them).
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
	})
	nginxAddr := fmt.Sprintf("127.0.0.1:%d", port)
	eventually(t, func() bool {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.cert.pool, ServerName: "wiki.example.com"}}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+nginxAddr+"/.gatehouse/jwks.json", nil)
		req.Host = "wiki.example.com" // another Host meets the default server's 444
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	b := idp.NewBrowser(map[string]string{"gate.example.com": gh, "wiki.example.com": nginxAddr})
	b.Trust(e.cert.pool)
	page, err := b.Get("https://wiki.example.com/page/Home?rev=3")
	if err != nil {
		t.Fatal(err)
	}
	page, err = b.SignIn(page, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != 200 || page.URL.String() != "https://wiki.example.com/page/Home?rev=3" {
		logs, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
		t.Fatalf("through nginx: %s %d %s\nnginx: %s", page.URL, page.Status, page.Body, logs)
	}
	last := (*seenReqs)[len(*seenReqs)-1]
	if last.Header.Get("X-Auth-User") != "alice" || last.Header.Get("X-Identity-Assertion") == "" {
		t.Errorf("nginx upstream headers: %v", last.Header)
	}
	// The app behind nginx never holds the session cookie (a bearer
	// credential for every route): nginx sends X-Gatehouse-Cookie instead.
	if c := last.Header.Get("Cookie"); strings.Contains(c, "_gatehouse") {
		t.Errorf("the app behind nginx got Gatehouse's cookie: %q", c)
	}
	// The route's path_charset holds behind nginx: a look-alike path
	// (/ａdmin, full-width a) is refused for a signed-in user too.
	seenBefore := len(*seenReqs)
	if la, err := b.Get("https://wiki.example.com/%EF%BD%81dmin"); err != nil || la.Status != http.StatusForbidden || len(*seenReqs) != seenBefore {
		t.Errorf("look-alike path through nginx: %v %v, upstream requests %d -> %d", la, err, seenBefore, len(*seenReqs))
	}
	// Without a session nginx gets 401 and sends the browser to sign in.
	anon := idp.NewBrowser(map[string]string{"gate.example.com": gh, "wiki.example.com": nginxAddr})
	anon.Trust(e.cert.pool)
	anon.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p2, err := anon.Get("https://wiki.example.com/secret")
	if err != nil {
		t.Fatal(err)
	}
	if p2.Status != 302 || !strings.HasPrefix(p2.Header.Get("Location"), "https://wiki.example.com/.gatehouse/start?rd=") {
		t.Errorf("anonymous through nginx: %d %v", p2.Status, p2.Header)
	}
	// A public prefix does not open the rest of the host: nginx forwards
	// the raw URI, so forward-auth judges the path the app will resolve.
	pub, err := anon.Get("https://wiki.example.com/pub/page")
	if err != nil || pub.Status != 200 {
		t.Errorf("public page through nginx: %v %v", pub, err)
	}
	for _, raw := range []string{"/pub/../secret", "/pub/%2e%2e/secret", "/pub/..%2Fsecret"} {
		req, _ := http.NewRequest(http.MethodGet, "https://wiki.example.com"+raw, nil)
		req.URL.Opaque = "//wiki.example.com" + raw // sent as written, not cleaned
		resp, err := anon.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("anonymous %s through nginx: 200", raw)
		}
	}
	for _, s := range *seenReqs {
		if strings.Contains(s.Path, "secret") || strings.Contains(s.RequestURI, "secret") {
			t.Errorf("anonymous request reached the app behind nginx: %s", s.RequestURI)
		}
	}
}
