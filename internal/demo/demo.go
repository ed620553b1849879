// Package demo prepares `gatehouse demo`: the whole system on loopback. It
// starts the three sample apps (internal/demoapps), the real test OpenID
// Provider (test/idp, npm oidc-provider, with a password+TOTP user and a
// password-only user), a webhook receiver for anomaly alerts, and writes a
// gatehouse.yaml that puts every app behind login with the policy cookbook,
// the signed audit log and the anomaly rules. The caller then serves that
// config exactly as `gatehouse serve` would.
//
// Host names are *.localhost, which curl and browsers resolve to loopback,
// so nobody edits /etc/hosts.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/demoapps"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
)

// Options for Prepare.
type Options struct {
	Dir      string // data directory, e.g. data/demo
	RepoRoot string // where test/idp and examples/ are
	Port     int    // HTTPS port on 127.0.0.1 (admin is Port+1)
	// Keys makes the key files under dir (the demo runs `gatehouse keys
	// generate` through this, so it needs no import of cmd).
	Keys     func(ctx context.Context, dir string) error
	Timezone string // anomaly.timezone
}

// Env is a prepared demo: the config to serve and what to print.
type Env struct {
	ConfigPath string
	Dir        string
	Port       int
	AdminPort  int
	Issuer     string
	Apps       map[string]string // name -> upstream URL
	AlertsFile string
	closers    []func()
}

// Close stops everything Prepare started.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// Hosts are the demo's route hosts.
var Hosts = []string{"chat", "files", "wiki"}

// Prepare starts the peers and writes the config. ctx bounds their lives.
func Prepare(ctx context.Context, o Options) (*Env, error) {
	if o.Port == 0 {
		o.Port = 8443
	}
	if o.Timezone == "" {
		o.Timezone = "Asia/Hong_Kong"
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Port: o.Port, AdminPort: o.Port + 1, Apps: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	for _, p := range []int{e.Port, e.AdminPort} {
		if err := portFree(p); err != nil {
			return nil, fmt.Errorf("demo: port %d is busy (another demo running? use --port): %w", p, err)
		}
	}
	for _, sub := range []string{"policies", "audit", "keys", "ca"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "session.key")); errors.Is(err, fs.ErrNotExist) {
		if err := o.Keys(ctx, filepath.Join(dir, "keys")); err != nil {
			return nil, fmt.Errorf("demo: keys: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("demo-admin-token-change-me-0123456789\n"), 0o600); err != nil {
		return nil, err
	}
	if err := CopyTree(filepath.Join(o.RepoRoot, "examples", "policies"), filepath.Join(dir, "policies")); err != nil {
		return nil, fmt.Errorf("demo: policies: %w", err)
	}
	for _, name := range Hosts {
		a, err := demoapps.Start(ctx, name)
		if err != nil {
			return nil, err
		}
		e.Apps[name] = a.URL
		e.closers = append(e.closers, func() { _ = a.Close() })
	}
	hook, err := startAlertReceiver(filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		return nil, err
	}
	e.AlertsFile = filepath.Join(dir, "alerts.jsonl")
	e.closers = append(e.closers, hook.close)

	var redirects, logouts []string
	for _, h := range append([]string{"gate"}, Hosts...) {
		base := fmt.Sprintf("https://%s.localhost:%d", h, e.Port)
		redirects = append(redirects, base+"/.gatehouse/callback")
		logouts = append(logouts, base+"/", base+"/.gatehouse/logged-out")
	}
	prov, cmd, err := idp.Launch(ctx, o.RepoRoot, 0, idp.Options{RedirectURIs: redirects, PostLogoutRedirects: logouts})
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	e.Issuer = prov.Issuer

	var conf strings.Builder
	err = configTmpl.Execute(&conf, map[string]any{
		"Dir": dir, "Port": e.Port, "AdminPort": e.AdminPort, "Issuer": prov.Issuer,
		"ClientID": prov.ClientID, "ClientSecret": prov.ClientSecret, "Apps": e.Apps,
		"Webhook": hook.url, "Timezone": o.Timezone, "MFAACR": idp.MFAACR,
	})
	if err != nil {
		return nil, err
	}
	e.ConfigPath = filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(e.ConfigPath, []byte(conf.String()), 0o600); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

func portFree(p int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return err
	}
	return l.Close()
}

// CopyTree copies the files under src to dst (the policy cookbook, with
// its tests: a reload runs them).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
}

type alertReceiver struct {
	url   string
	close func()
}

// startAlertReceiver is the demo's stand-in for a chat-ops webhook: every
// alert body is appended, one per line, to file.
func startAlertReceiver(file string) (*alertReceiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !json.Valid(body) {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		line := map[string]any{"received": time.Now().UTC().Format(time.RFC3339), "signature": r.Header.Get("X-Gatehouse-Signature"), "alert": json.RawMessage(body)}
		b, _ := json.Marshal(line)
		_, _ = f.Write(append(b, '\n'))
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(l) }()
	return &alertReceiver{url: "http://" + l.Addr().String() + "/alerts", close: func() { _ = srv.Close() }}, nil
}

// KeysWith returns a Keys func that runs `self keys generate --out DIR`.
func KeysWith(self string) func(ctx context.Context, dir string) error {
	return func(ctx context.Context, dir string) error {
		out, err := exec.CommandContext(ctx, self, "keys", "generate", "--out", dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s keys generate: %w: %s", self, err, out)
		}
		return nil
	}
}

var configTmpl = template.Must(template.New("demo").Parse(`# Written by gatehouse demo. Every app is behind login; wiki needs MFA.
listen: 127.0.0.1:{{.Port}}
admin_listen: 127.0.0.1:{{.AdminPort}}
admin_token_file: {{.Dir}}/admin.token
external_url: https://gate.localhost:{{.Port}}
tls:
  mode: local
  local_dir: {{.Dir}}/ca
oidc:
  issuer: {{.Issuer}}
  client_id: {{.ClientID}}
  client_secret: {{.ClientSecret}}
  scopes: [openid, email, profile, groups]
  claims: { groups: groups, roles: realm_access.roles }
mfa:
  amr_any: [otp, mfa]
  acr_any: [{{.MFAACR}}]
  step_up_acr: {{.MFAACR}}
  max_age: 12h
session:
  secret_files: [{{.Dir}}/keys/session.key]
policy:
  dir: {{.Dir}}/policies
audit:
  dir: {{.Dir}}/audit
  signing_key_file: {{.Dir}}/keys/audit.key
  durability: always
  encryption_key_file: {{.Dir}}/keys/encryption.key
  backup: { url: "file://{{.Dir}}/audit-backup", interval: 1m }
identity:
  assertion: { key_file: {{.Dir}}/keys/assertion.pem }
anomaly:
  timezone: {{.Timezone}}
  night: "22:00-06:00"
  state_file: {{.Dir}}/anomaly.state
  rules:
    - name: bulk-download-at-night
      when: night
      window: 1h
      downloads_over: 50
      action: [alert, block_session]
    - name: unusual-volume
      window: 1h
      above_baseline: 5
      action: [alert, step_up]
  alerts:
    - webhook: { url: {{.Webhook}}, secret: demo-webhook-secret }
log:
  format: console
  level: info
routes:
  - name: chat
    host: chat.localhost
    upstream: {{index .Apps "chat"}}
    websockets: true
  - name: files
    host: files.localhost
    upstream: {{index .Apps "files"}}
    downloads: { paths: ["/files/*"] }
  - name: wiki
    host: wiki.localhost
    upstream: {{index .Apps "wiki"}}
    mfa: required
`))
