package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/idp"
)

// login signs alice in through the real test IdP (password + TOTP) like a
// browser, and returns the Cookie header her session carries on app.localhost.
func login(ctx context.Context, e *env, inst *instance) (http.Header, error) {
	hosts := map[string]string{"app.localhost": "127.0.0.1:" + inst.port, "gate.localhost": "127.0.0.1:" + inst.port}
	b := idp.NewBrowser(hosts)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.caPEM)
	b.Client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	app := "https://app.localhost:" + inst.port + "/"
	p, err := b.Get(app)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if p, err = b.SignIn(p, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if p.Status != http.StatusOK {
		return nil, fmt.Errorf("login: ended on %s with %d", p.URL, p.Status)
	}
	u, _ := url.Parse(app)
	var parts []string
	for _, c := range b.Client.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("login: no session cookie for %s", app)
	}
	return http.Header{"Cookie": {strings.Join(parts, "; ")}}, nil
}

// startRedis runs a throwaway redis-server on loopback.
func startRedis(ctx context.Context, dir string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server (scripts/deps/00-apt.sh): %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	addr := "127.0.0.1:" + port
	if err := waitTCP(ctx, addr); err != nil {
		_ = cmd.Process.Kill()
		return "", nil, err
	}
	return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}

// loopbackDialer dials every *.localhost name on 127.0.0.1 (as browsers
// and curl do), keeping SNI and Host as in production.
func loopbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
}
