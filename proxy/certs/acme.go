package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// acmeState is mode acme: one certmagic Config with its own cache (not the
// package default), one ACME issuer, file storage.
type acmeState struct {
	hosts  *hostsRef
	cache  *certmagic.Cache
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	log    *zap.Logger
	cancel context.CancelFunc
	ctx    context.Context // for background management; cancelled by close
}

func newACMESource(_ context.Context, hs *hostsRef, opts Options, log *zap.Logger) (*acmeState, error) {
	a := opts.ACME
	if a.Directory == "" {
		return nil, errors.New("tls mode acme: acme.directory is empty")
	}
	if a.Storage == "" {
		return nil, errors.New("tls mode acme: acme.storage is empty")
	}
	if a.DisableHTTPChallenge && a.DisableTLSALPNChallenge {
		return nil, errors.New("tls mode acme: both the HTTP-01 and the TLS-ALPN-01 challenge are disabled")
	}
	var roots *x509.CertPool
	if a.CARoot != "" {
		var err error
		if roots, err = loadRoots(a.CARoot); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(a.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("tls acme.storage %s: %w", a.Storage, err)
	}
	clog := log.Named("certmagic")
	st := &acmeState{hosts: hs, log: log}
	st.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return st.cfg, nil },
		Logger:           clog,
	})
	st.cfg = certmagic.New(st.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: a.Storage},
		Logger:  clog,
	})
	st.issuer = certmagic.NewACMEIssuer(st.cfg, certmagic.ACMEIssuer{
		CA:                      a.Directory,
		Email:                   a.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		ListenHost:              a.ListenHost,
		AltHTTPPort:             a.HTTPPort,
		AltTLSALPNPort:          a.TLSALPNPort,
		DisableHTTPChallenge:    a.DisableHTTPChallenge,
		DisableTLSALPNChallenge: a.DisableTLSALPNChallenge,
		CertObtainTimeout:       a.ObtainTimeout,
		Logger:                  clog,
	})
	st.cfg.Issuers = []certmagic.Issuer{st.issuer}
	// Background management outlives New's ctx; close ends it.
	st.ctx, st.cancel = context.WithCancel(context.Background())
	names := hs.get().names
	if err := st.cfg.ManageAsync(st.ctx, names); err != nil {
		st.close()
		return nil, fmt.Errorf("tls acme: manage %v: %w", names, err)
	}
	return st, nil
}

// loadRoots reads a PEM bundle from a file path or from the text itself.
func loadRoots(s string) (*x509.CertPool, error) {
	data := []byte(s)
	what := "inline PEM"
	if !strings.Contains(s, "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(s); err != nil {
			return nil, fmt.Errorf("tls acme.ca_root %s: %w", s, err)
		}
		what = s
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls acme.ca_root %s: no PEM certificate found", what)
	}
	return pool, nil
}

// getCertificate answers TLS-ALPN-01 challenges and serves managed
// certificates, for configured names only.
func (s *acmeState) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, fmt.Errorf("%w: no SNI", ErrUnknownServerName)
	}
	if _, err := s.hosts.get().match(hello.ServerName); err != nil {
		return nil, err
	}
	if slices.Contains(hello.SupportedProtos, acmeTLS1) {
		s.log.Info("tls-alpn-01 challenge", zap.String("sni", hello.ServerName))
	}
	return s.cfg.GetCertificate(hello)
}

// sync obtains (or loads from storage) a certificate for every name.
func (s *acmeState) sync(ctx context.Context) error {
	names := s.hosts.get().names
	if err := s.cfg.ManageSync(ctx, names); err != nil {
		return fmt.Errorf("tls acme: obtain %v: %w", names, err)
	}
	return nil
}

// ready reports whether every name has a certificate in the cache.
func (s *acmeState) ready() error {
	for _, n := range s.hosts.get().names {
		if len(s.cache.AllMatchingCertificates(n)) == 0 {
			return fmt.Errorf("%w: %s (ACME order pending)", ErrNoCertificate, n)
		}
	}
	return nil
}

// setHosts starts managing added names and stops renewing removed ones.
func (s *acmeState) setHosts(ctx context.Context, old, hs hostSet) error {
	var added []string
	for _, n := range hs.names {
		if !slices.Contains(old.names, n) {
			added = append(added, n)
		}
	}
	if len(added) > 0 {
		if err := s.cfg.ManageAsync(s.ctx, added); err != nil {
			return fmt.Errorf("tls acme: manage %v: %w", added, err)
		}
	}
	var removed []certmagic.SubjectIssuer
	for _, n := range old.names {
		if !slices.Contains(hs.names, n) {
			removed = append(removed, certmagic.SubjectIssuer{Subject: n})
		}
	}
	s.cache.RemoveManaged(removed)
	return nil
}

func (s *acmeState) close() {
	s.cancel()
	s.cache.Stop()
}
