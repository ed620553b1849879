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
	// headers returns what each request carries (a session cookie).
	headers func(ctx context.Context, inst *instance) (http.Header, error)
}

const allowAll = `package gatehouse.authz

default allow := true
`

var rows = []row{
	{name: "public", path: "/", policy: allowAll, conf: `
routes:
  - name: app
    host: app.localhost
    upstream: {{.Upstream}}
    public: true
`},
}

func rowByName(name string) (row, bool) {
	for _, r := range rows {
		if r.name == name {
			return r, true
		}
	}
	return row{}, false
}

type rowData struct {
	Dir, Upstream, Port, AdminPort, CertFile, KeyFile, RedisAddr string
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
audit:
  dir: {{.Dir}}/audit
  signing_key_file: {{.Dir}}/keys/audit.key
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
	d := rowData{Dir: dir, Upstream: e.upstream, Port: port, AdminPort: aport, CertFile: e.certFile, KeyFile: e.keyFile}
	var conf strings.Builder
	if err := template.Must(template.New("c").Parse(baseConf+r.conf)).Execute(&conf, d); err != nil {
		return nil, err
	}
	files := map[string]string{
		"gatehouse.yaml":      conf.String(),
		"policies/bench.rego": r.policy,
		"admin.token":         "bench-admin-token-0123456789abcdef\n",
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
		return nil, err
	}
	inst := &instance{port: port, adminPort: aport, dir: dir, logPath: logPath, pid: cmd.Process.Pid,
		stop: func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait(); logf.Close() }}
	if err := waitReady(ctx, "http://127.0.0.1:"+aport+"/readyz"); err != nil {
		inst.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("gatehouse not ready: %w\n%s", err, log)
	}
	if r.headers != nil {
		h, err := r.headers(ctx, inst)
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
