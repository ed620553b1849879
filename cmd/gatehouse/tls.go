package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy/certs"
)

// This file wires proxy/certs into the server: config.TLS becomes
// certs.Options, and tlsCertSource adds the config-aware Reload that
// proxy.CertReloader asks for (certs knows nothing of config).

// tlsCertSource is a certs.Manager seen as proxy.CertSource and
// proxy.CertReloader.
type tlsCertSource struct {
	*certs.Manager
}

// newTLSCertSource builds the certificate manager for cfg. onReload, if
// set, hears about each reload of changed certificate files (metrics).
func newTLSCertSource(ctx context.Context, cfg *config.Config, log *zap.Logger, onReload func(error)) (*tlsCertSource, error) {
	opts, err := tlsOptionsFromConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	opts.OnReload = onReload
	m, err := certs.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &tlsCertSource{Manager: m}, nil
}

// Reload follows a new config: the set of host names may have changed
// (routes added or removed), and certificate files are checked at once.
// Changes to the tls section itself need a restart (the proxy warns).
func (s *tlsCertSource) Reload(ctx context.Context, cfg *config.Config) error {
	if err := s.SetHosts(ctx, tlsHostsFromConfig(cfg)); err != nil {
		return err
	}
	return s.Manager.Reload()
}

// tlsOptionsFromConfig converts the tls section (plus the listen addresses
// that answer ACME challenges) to certs.Options.
func tlsOptionsFromConfig(cfg *config.Config, log *zap.Logger) (certs.Options, error) {
	httpsHost, httpsPort, err := listenHostPort(cfg.Listen, 8443)
	if err != nil {
		return certs.Options{}, fmt.Errorf("listen %q: %w", cfg.Listen, err)
	}
	var httpPort int
	if cfg.HTTPListen != "" {
		if _, httpPort, err = listenHostPort(cfg.HTTPListen, 0); err != nil {
			return certs.Options{}, fmt.Errorf("http_listen %q: %w", cfg.HTTPListen, err)
		}
	}
	t := cfg.TLS
	return certs.Options{
		Mode:  t.Mode,
		Hosts: tlsHostsFromConfig(cfg),
		ACME: certs.ACMEOptions{
			Email:       t.ACME.Email,
			Directory:   t.ACME.Directory,
			CARoot:      t.ACME.CARoot,
			Storage:     t.ACME.Storage,
			ListenHost:  httpsHost,
			HTTPPort:    httpPort,
			TLSALPNPort: httpsPort,
			// Without a plain-HTTP listener HTTP-01 cannot be answered.
			DisableHTTPChallenge: cfg.HTTPListen == "",
		},
		CertFile:  t.CertFile,
		KeyFile:   t.KeyFile,
		LocalDir:  t.LocalDir,
		HTTPSPort: httpsPort,
		Logger:    log,
	}, nil
}

// tlsHostsFromConfig is every name that needs a certificate: each route
// host and the host of external_url.
func tlsHostsFromConfig(cfg *config.Config) []string {
	var hosts []string
	for _, r := range cfg.Routes {
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
	}
	if u, err := url.Parse(cfg.ExternalURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

// listenHostPort splits a listen address; "" gives def as the port.
func listenHostPort(addr string, def int) (string, int, error) {
	if addr == "" {
		return "", def, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}
