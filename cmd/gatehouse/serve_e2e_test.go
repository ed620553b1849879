package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const serveYAML = `listen: %s
admin_listen: %s
admin_token: 0123456789abcdef-admin
log: { level: error }
tls: { mode: local, local_dir: ./ca }
audit: { dir: ./audit, signing_key_file: ./audit.key }
routes:
  - name: wiki
    host: wiki.localhost
    upstream: %s
    public: true
`

// TestServeSIGHUPBrokenConfigKeepsServing runs the real `gatehouse serve`
// (every registered builder, local CA, audit log), breaks its config file
// and sends the process a real SIGHUP: the old config keeps serving and
// /metrics counts the failed reload.
func TestServeSIGHUPBrokenConfigKeepsServing(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "wiki %s", r.URL.Path)
	}))
	defer up.Close()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	rego := "package gatehouse.authz\n\nallow if input.route.name == \"wiki\"\n"
	if err := os.WriteFile(filepath.Join(dir, "policies", "authz.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "gatehouse-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "audit.key"), []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	https, admin := freePort(t), freePort(t)
	path := filepath.Join(dir, "gatehouse.yaml")
	good := fmt.Sprintf(serveYAML, https, admin, up.URL)
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path, "--watch=false"}, io.Discard, &stderr) }()

	waitReady := func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case code := <-done:
				t.Fatalf("serve exited %d: %s", code, stderr.String())
			default:
			}
			if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("serve never became ready")
	}
	waitReady()

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, https)
		},
	}}
	fetch := func() string {
		t.Helper()
		resp, err := client.Get("https://wiki.localhost/a/./b//c")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	if got := fetch(); got != "200 wiki /a/b/c" {
		t.Fatalf("through the proxy: %q", got)
	}

	broken := strings.Replace(good, "upstream: "+up.URL, "upstream: htp://broken", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	metric := `gatehouse_config_reloads_total{result="failure"} 1`
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for time.Now().Before(deadline) && !strings.Contains(body, metric) {
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	if !strings.Contains(body, metric) {
		t.Fatalf("/metrics does not show the failed reload")
	}
	if got := fetch(); got != "200 wiki /a/b/c" {
		t.Fatalf("after a broken reload: %q", got)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exit %d: %s", code, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not drain and exit")
	}
}
