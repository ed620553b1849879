package main

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// The adapter must satisfy the proxy's seams.
var (
	_ proxy.CertSource   = (*tlsCertSource)(nil)
	_ proxy.CertReloader = (*tlsCertSource)(nil)
)

func TestTLSOptionsFromConfig(t *testing.T) {
	cfg := &config.Config{
		Listen: "127.0.0.1:8443", HTTPListen: ":8080", ExternalURL: "https://gate.example.com:8443/",
		TLS:    config.TLS{Mode: "acme", ACME: config.ACME{Email: "it@example.com", Directory: "https://ca.example/dir", CARoot: "/r.pem", Storage: "/s"}},
		Routes: []config.Route{{Host: "chat.example.com"}, {Host: "wiki.example.com"}},
	}
	o, err := tlsOptionsFromConfig(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"chat.example.com", "wiki.example.com", "gate.example.com"}; !slices.Equal(o.Hosts, want) {
		t.Errorf("Hosts = %v, want %v", o.Hosts, want)
	}
	a := o.ACME
	if o.Mode != "acme" || a.Email != "it@example.com" || a.Directory != "https://ca.example/dir" || a.CARoot != "/r.pem" || a.Storage != "/s" {
		t.Errorf("ACME options not carried over: %+v", o)
	}
	if a.ListenHost != "127.0.0.1" || a.TLSALPNPort != 8443 || a.HTTPPort != 8080 || a.DisableHTTPChallenge || o.HTTPSPort != 8443 {
		t.Errorf("challenge ports: %+v, https %d", a, o.HTTPSPort)
	}
	cfg.HTTPListen = ""
	if o, _ := tlsOptionsFromConfig(cfg, zap.NewNop()); !o.ACME.DisableHTTPChallenge {
		t.Error("HTTP-01 enabled without an http_listen")
	}
	cfg.Listen = "nonsense"
	if _, err := tlsOptionsFromConfig(cfg, zap.NewNop()); err == nil {
		t.Error("bad listen accepted")
	}
}

func TestTLSCertSourceReloadFollowsRoutes(t *testing.T) {
	cfg := &config.Config{
		TLS:    config.TLS{Mode: "local", LocalDir: filepath.Join(t.TempDir(), "ca")},
		Routes: []config.Route{{Host: "old.localhost"}},
	}
	s, err := newTLSCertSource(context.Background(), cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(name string) error {
		_, err := s.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		return err
	}
	if err := get("old.localhost"); err != nil {
		t.Fatal(err)
	}
	next := *cfg
	next.Routes = []config.Route{{Host: "new.localhost"}}
	if err := s.Reload(context.Background(), &next); err != nil {
		t.Fatal(err)
	}
	if err := get("new.localhost"); err != nil {
		t.Errorf("new route host after reload: %v", err)
	}
	if err := get("old.localhost"); err == nil {
		t.Error("removed route host still served after reload")
	}
}
