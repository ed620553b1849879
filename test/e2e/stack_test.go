package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/demoapps"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/internal/idp/idptest"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/certs"
)

// The demo domain: every name under .localhost resolves to loopback in
// Chromium; Go clients here dial 127.0.0.1 for it (see stack.transport).
const (
	centralName = "gate.localhost"
	filesName   = "files.localhost"
	chatName    = "chat.localhost"
	wikiName    = "wiki.localhost" // mfa: required
)

// route is one extra route of a stack (e.g. the app behind nginx).
type route struct {
	Name, Host, Upstream, MFA string
}

// stack is a whole Gatehouse (proxy.New + Run from a YAML config, every
// registered builder) in front of the demo apps, with the test IdP.
type stack struct {
	t        *testing.T
	dir      string
	port     int    // Gatehouse's HTTPS port on 127.0.0.1
	external string // https://gate.localhost:PORT
	idp      *idp.Provider
	srv      *proxy.Server
	ca       *x509.CertPool
	caFile   string
	auditDir string
	apps     map[string]*demoapps.App
	// dial maps a host name to the loopback address Go clients dial for
	// it (default 127.0.0.1; nginx listens on 127.0.0.2, same port).
	dial map[string]string
}

type stackOptions struct {
	// Extra routes besides files, chat and wiki.
	Routes []route
	// PolicyDir is the policy folder (default: the cookbook in
	// examples/policies).
	PolicyDir string
	// MFAMaxAge is mfa.max_age: how long a second factor counts
	// (default 12h).
	MFAMaxAge time.Duration
}

var configTmpl = template.Must(template.New("cfg").Parse(`# written by test/e2e
listen: "127.0.0.1:{{.Port}}"
admin_listen: "127.0.0.1:0"
admin_token_file: {{.Dir}}/admin.token
external_url: {{.External}}
tls:
  mode: local
  local_dir: {{.Dir}}/ca
oidc:
  issuer: {{.Issuer}}
  client_id: {{.ClientID}}
  client_secret_file: {{.Dir}}/oidc.secret
  scopes: [openid, email, profile, groups]
  claims: { groups: groups, roles: realm_access.roles }
mfa:
  amr_any: [otp, mfa]
  acr_any: ["{{.MFAACR}}"]
  step_up_acr: "{{.MFAACR}}"
  max_age: {{.MFAMaxAge}}
session:
  secret_files: [{{.Dir}}/session.key]
  lifetime: 1h
  idle_timeout: 30m
policy:
  dir: {{.PolicyDir}}
  # The 50ms default fails closed under -race on a busy machine; the
  # timeout itself is tested in policy/.
  timeout: 2s
audit:
  dir: {{.Dir}}/audit
  signing_key_file: {{.Dir}}/audit.key
  durability: always
anomaly:
  timezone: UTC
log:
  level: warn
  format: console
  access: false
timeouts:
  shutdown: 3s
routes:
{{- range .Routes}}
  - name: {{.Name}}
    host: {{.Host}}
    upstream: {{.Upstream}}
{{- if .MFA}}
    mfa: {{.MFA}}
{{- end}}
{{- end}}
`))

// startStack runs the test IdP, the demo apps and Gatehouse until t ends.
func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{t: t, dir: t.TempDir(), apps: map[string]*demoapps.App{}, dial: map[string]string{}}
	s.port = testenv.FreePort(t)
	s.external = fmt.Sprintf("https://%s:%d", centralName, s.port)
	s.idp = idptest.Start(t, idp.Options{
		RedirectURIs:        []string{s.external + "/.gatehouse/callback"},
		PostLogoutRedirects: []string{s.external + "/.gatehouse/signed-out"},
	})
	for _, name := range []string{"files", "chat", "wiki"} {
		app, err := demoapps.Start(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = app.Close() })
		s.apps[name] = app
	}
	routes := []route{
		{Name: "files", Host: filesName, Upstream: s.apps["files"].URL},
		{Name: "chat", Host: chatName, Upstream: s.apps["chat"].URL},
		{Name: "wiki", Host: wikiName, Upstream: s.apps["wiki"].URL, MFA: "required"},
	}
	routes = append(routes, o.Routes...)

	s.writeSecrets()
	if o.MFAMaxAge == 0 {
		o.MFAMaxAge = 12 * time.Hour
	}
	if o.PolicyDir == "" {
		o.PolicyDir = filepath.Join(testenv.RepoRoot(t), "examples", "policies")
	}
	s.auditDir = filepath.Join(s.dir, "audit")
	cfgPath := filepath.Join(s.dir, "gatehouse.yaml")
	var b strings.Builder
	err := configTmpl.Execute(&b, map[string]any{
		"Port": s.port, "Dir": s.dir, "External": s.external, "Issuer": s.idp.Issuer, "ClientID": s.idp.ClientID,
		"MFAACR": idp.MFAACR, "PolicyDir": o.PolicyDir, "MFAMaxAge": o.MFAMaxAge.String(), "Routes": routes,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("load %s: %v\n%s", cfgPath, err, b.String())
	}

	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	var hosts []string
	for _, r := range cfg.Routes {
		hosts = append(hosts, r.Host)
	}
	cm, err := certs.New(ctx, certs.Options{
		Mode: certs.ModeLocal, LocalDir: cfg.TLS.LocalDir, Hosts: append(hosts, centralName),
		HTTPSPort: s.port, Logger: log,
	})
	if err != nil {
		t.Fatalf("certs: %v", err)
	}
	s.caFile = cm.CACertPath()
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	s.ca = x509.NewCertPool()
	if !s.ca.AppendCertsFromPEM(pem) {
		t.Fatalf("no CA certificate in %s", s.caFile)
	}

	srv, err := proxy.New(ctx, cfg, proxy.Options{Logger: log, Certs: cm})
	if err != nil {
		cancel()
		t.Fatalf("proxy.New: %v", err)
	}
	s.srv = srv
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gatehouse Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("gatehouse did not stop within 10s")
		}
		cm.Close()
	})
	select {
	case <-srv.Started():
	case err := <-done:
		t.Fatalf("gatehouse Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("gatehouse did not start within 60s")
	}
	s.waitReady()
	return s
}

// writeSecrets writes the session key, the audit signing key, the admin
// token and the OIDC client secret into the stack's folder.
func (s *stack) writeSecrets() {
	s.t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		s.t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "gatehouse-e2e")
	if err != nil {
		s.t.Fatal(err)
	}
	for name, v := range map[string]string{
		"session.key": hex.EncodeToString(key),
		"audit.key":   skey,
		"admin.token": "e2e-admin-token-0123456789abcdef",
		"oidc.secret": s.idp.ClientSecret,
	} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(v+"\n"), 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
}

// waitReady polls the admin listener's /readyz (the IdP discovery, policy
// compiled, audit log open) for up to 15 s.
func (s *stack) waitReady() {
	s.t.Helper()
	url := "http://" + s.srv.Addrs().Admin + "/readyz"
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			var buf [2048]byte
			n, _ := resp.Body.Read(buf[:])
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, buf[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("gatehouse not ready after 15s: %s", last)
}

// url is https://NAME:PORT + path on Gatehouse's listener.
func (s *stack) url(name, path string) string {
	return fmt.Sprintf("https://%s:%d%s", name, s.port, path)
}

// transport dials 127.0.0.1 (or s.dial's address) for every *.localhost
// name, keeping the port, and trusts the local CA (plus extra roots).
func (s *stack) transport(extra ...*x509.Certificate) *http.Transport {
	pool := s.ca.Clone()
	for _, c := range extra {
		pool.AddCert(c)
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				ip := "127.0.0.1"
				if a, ok := s.dial[host]; ok {
					ip = a
				}
				addr = net.JoinHostPort(ip, port)
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
}

// browser is the test IdP's form browser over s.transport.
func (s *stack) browser(extra ...*x509.Certificate) *idp.Browser {
	b := idp.NewBrowser(nil)
	b.Client.Transport = s.transport(extra...)
	return b
}

// auditRecords reads every record of the stack's audit log (after
// verifying the log) — the audit side of what a test did.
func (s *stack) auditRecords() []*audit.Record {
	s.t.Helper()
	recs, err := readAudit(s.auditDir)
	if err != nil {
		s.t.Fatalf("read audit log: %v", err)
	}
	return recs
}

// readAudit verifies the audit log in dir and returns its records.
func readAudit(dir string) ([]*audit.Record, error) {
	if _, err := audit.Verify(dir, audit.VerifyOptions{}); err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	var out []*audit.Record
	err := audit.Scan(dir, nil, func(r *audit.Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}
