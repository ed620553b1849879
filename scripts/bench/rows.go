package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/gatehouse-dev/gatehouse/internal/demo"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"time"
)

// row is one Gatehouse configuration measured against the bare proxy.
type row struct {
	name string
	path string
	// conf adds to the base config (YAML, rendered with rowData).
	conf string
	// policy is the Rego served (package gatehouse.authz).
	policy string
	// needsRedis starts a redis-server for the row.
	needsRedis bool
	// durability is audit.durability (default batch).
	durability string
	// headers returns what each request carries (a session cookie).
	headers func(ctx context.Context, e *env, inst *instance) (http.Header, error)
}

const allowAll = `package gatehouse.authz

default allow := true
`

const appRoute = `
routes:
  - name: files
    host: app.localhost
    upstream: {{.Upstream}}
`

const oidcConf = `
oidc:
  issuer: {{.Issuer}}
  client_id: gatehouse
  client_secret: gatehouse-secret
  scopes: [openid, email, profile, groups]
  claims: { groups: groups, roles: realm_access.roles }
mfa:
  acr_any: [urn:gatehouse:mfa]
  step_up_acr: urn:gatehouse:mfa
`

const anomalyConf = `
anomaly:
  timezone: Asia/Hong_Kong
  rules:
    - name: bulk-download-at-night
      when: night
      window: 1h
      downloads_over: 1000000
      action: [alert, block_session]
    - name: unusual-volume
      window: 1h
      requests_over: 100000000
      action: [alert]
`

// The rows, cumulative up to anomaly-redis: each adds one stage's real work
// to the one before; audited-always is the policy row with durability
// always. Every row writes the signed audit log (batch mode unless said):
// Gatehouse has no way to serve unaudited.
var rows = []row{
	{name: "public", path: "/", policy: allowAll, conf: `
routes:
  - name: files
    host: app.localhost
    upstream: {{.Upstream}}
    public: true
`},
	{name: "authenticated", path: "/", policy: allowAll, conf: oidcConf + appRoute, headers: login},
	{name: "policy", path: "/", policy: cookbook, conf: oidcConf + appRoute, headers: login},
	{name: "anomaly-memory", path: "/", policy: cookbook, conf: oidcConf + appRoute + anomalyConf, headers: login},
	{name: "anomaly-redis", path: "/", policy: cookbook, needsRedis: true, conf: oidcConf + appRoute + anomalyConf + `
  store: redis
redis:
  addr: {{.RedisAddr}}
`, headers: login},
	// Last: its fsync per request slows the disk for the rows after it
	// for half a minute or more (anomaly-redis read 0.57–0.59 of the bare
	// proxy right after it, 0.65–0.70 before it or on its own).
	{name: "audited-always", path: "/", policy: cookbook, durability: "always", conf: oidcConf + appRoute, headers: login},
}

// cookbook marks rows that serve examples/policies (copied in).
const cookbook = "<cookbook>"

func rowByName(name string) (row, bool) {
	for _, r := range rows {
		if r.name == name {
			return r, true
		}
	}
	return row{}, false
}

type rowData struct {
	Dir, Upstream, Port, AdminPort, CertFile, KeyFile, RedisAddr, Issuer, Durability string
}

const baseConf = `listen: 127.0.0.1:{{.Port}}
admin_listen: 127.0.0.1:{{.AdminPort}}
admin_token_file: {{.Dir}}/admin.token
external_url: https://gate.localhost:{{.Port}}
tls:
  mode: files
  cert_file: {{.CertFile}}
  key_file: {{.KeyFile}}
log:
  level: error
policy:
  dir: {{.Dir}}/policies
  # The timeout is wall-clock time; saturating 2 shared cores queues
  # evaluations, and the default 50ms would deny a few (fail closed).
  timeout: 500ms
audit:
  dir: {{.Dir}}/audit
  signing_key_file: {{.Dir}}/keys/audit.key
  durability: {{.Durability}}
session:
  secret_files: [{{.Dir}}/keys/session.key]
`

// instance is one running Gatehouse process.
type instance struct {
	port, adminPort string
	dir, logPath    string
	pid             int
	headers         http.Header
	stop            func()
}

func startGatehouse(ctx context.Context, gh string, e *env, r row) (*instance, error) {
	dir := filepath.Join(e.dir, r.name)
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	aport, err := freePort()
	if err != nil {
		return nil, err
	}
	d := rowData{Dir: dir, Upstream: e.upstream, Port: port, AdminPort: aport, CertFile: e.certFile, KeyFile: e.keyFile, Durability: r.durability}
	if d.Durability == "" {
		d.Durability = "batch"
	}
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if r.headers != nil {
		var cbs []string
		for _, h := range []string{"gate", "app"} {
			cbs = append(cbs, fmt.Sprintf("https://%s.localhost:%s/.gatehouse/callback", h, port))
		}
		prov, cmd, err := idp.Launch(ctx, e.root, 0, idp.Options{RedirectURIs: cbs})
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		d.Issuer = prov.Issuer
	}
	if r.needsRedis {
		addr, stop, err := startRedis(ctx, dir)
		if err != nil {
			cleanup()
			return nil, err
		}
		cleanups = append(cleanups, stop)
		d.RedisAddr = addr
	}
	policy := r.policy
	if policy == cookbook {
		policy = ""
		if err := demo.CopyTree(filepath.Join(e.root, "examples", "policies"), filepath.Join(dir, "policies")); err != nil {
			cleanup()
			return nil, err
		}
	}
	var conf strings.Builder
	if err := template.Must(template.New("c").Parse(baseConf+r.conf)).Execute(&conf, d); err != nil {
		return nil, err
	}
	files := map[string]string{
		"gatehouse.yaml": conf.String(),
		"admin.token":    "bench-admin-token-0123456789abcdef\n",
	}
	if policy != "" {
		files["policies/bench.rego"] = policy
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	if out, err := exec.CommandContext(ctx, gh, "keys", "generate", "--out", filepath.Join(dir, "keys")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("keys generate: %v: %s", err, out)
	}
	logPath := filepath.Join(dir, "gatehouse.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, gh, "serve", "--config", filepath.Join(dir, "gatehouse.yaml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, err
	}
	inst := &instance{port: port, adminPort: aport, dir: dir, logPath: logPath, pid: cmd.Process.Pid,
		stop: func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait(); logf.Close(); cleanup() }}
	if err := waitReady(ctx, "http://127.0.0.1:"+aport+"/readyz"); err != nil {
		inst.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("gatehouse not ready: %w\n%s", err, log)
	}
	fmt.Fprintf(os.Stderr, "row %s: gatehouse pid %d, admin http://127.0.0.1:%s (token %s/admin.token)\n", r.name, inst.pid, aport, dir)
	if r.headers != nil {
		h, err := r.headers(ctx, e, inst)
		if err != nil {
			inst.stop()
			return nil, err
		}
		inst.headers = h
	}
	return inst, nil
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Errorf("readyz: %s", resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return last
}
