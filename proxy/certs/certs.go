// Package certs gives Gatehouse's HTTPS listener its certificates, in one of
// three modes:
//
//   - local: a private CA made on first start (ECDSA P-256, crypto/x509) and
//     kept under Options.LocalDir (ca.pem 0644, ca.key 0600), reused on every
//     later start. Leaf certificates for the configured hosts are issued in
//     memory on demand, one per configured name (a wildcard entry gets one
//     wildcard leaf), cached and re-issued before they expire. Operators
//     trust CACertPath() in curl or a browser. For development, the demo and
//     tests.
//   - files: the operator's certificate and key files, loaded at start and
//     reloaded when either file changes; a broken new pair is logged and the
//     last good pair keeps serving.
//   - acme: certmagic with the configured directory, account e-mail, storage
//     and extra trusted root (a private ACME CA), solving HTTP-01 on the
//     plain-HTTP listener (HTTPHandler) and TLS-ALPN-01 on the HTTPS
//     listener (TLSConfig offers acme-tls/1).
//
// Whatever the mode, a handshake for a server name that is not configured
// fails: the proxy never presents, or asks a CA for, a certificate for a
// name it was not told about. Wildcard entries ("*.example.com") cover
// exactly one label.
//
// The package knows nothing of config or proxy: proxy converts config.TLS to
// Options and uses the Manager through TLSConfig and HTTPHandler.
package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Modes of Options.Mode.
const (
	ModeLocal = "local"
	ModeFiles = "files"
	ModeACME  = "acme"
)

// acmeTLS1 is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
const acmeTLS1 = "acme-tls/1"

// Options configure a Manager. The proxy fills them from config.TLS.
type Options struct {
	// Mode is local, files or acme.
	Mode string
	// Hosts are the names (and literal IP addresses) to serve: every route
	// host and the external_url host. "*.example.com" covers one label.
	Hosts []string
	// ACME configures mode acme.
	ACME ACMEOptions
	// CertFile and KeyFile are PEM files for mode files.
	CertFile, KeyFile string
	// ReloadInterval is how often mode files checks its files for a
	// change (default 2s).
	ReloadInterval time.Duration
	// OnReload, if set, is called after each attempt to reload changed
	// files (mode files): err nil means the new pair now serves.
	OnReload func(err error)
	// LocalDir holds the local CA (mode local).
	LocalDir string
	// LeafValidity is the lifetime of local leaf certificates (default 7
	// days; they are re-issued when a third of it is left).
	LeafValidity time.Duration
	// HTTPSPort is the port plain-HTTP requests are redirected to
	// (default 443; the port is left out of the URL when it is 443).
	HTTPSPort int
	// Logger receives the package's logs (and certmagic's); nil discards.
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ACMEOptions configure certmagic's ACME issuer.
type ACMEOptions struct {
	// Email is the ACME account contact.
	Email string
	// Directory is the ACME directory URL.
	Directory string
	// CARoot is an extra root trusted when talking to the ACME server (a
	// private CA): a PEM file path, or PEM text itself.
	CARoot string
	// Storage is the certmagic file storage folder (accounts, certs, keys).
	Storage string
	// ListenHost is the host of the listeners that answer challenges
	// (from http_listen / listen); "" means all interfaces.
	ListenHost string
	// HTTPPort is the port of the plain-HTTP listener that answers
	// HTTP-01 (the port the CA connects to, 80, must be forwarded to it).
	HTTPPort int
	// TLSALPNPort is the port of the HTTPS listener that answers
	// TLS-ALPN-01 (the CA connects to 443).
	TLSALPNPort int
	// DisableHTTPChallenge and DisableTLSALPNChallenge turn a challenge
	// type off (e.g. when port 80 is not reachable).
	DisableHTTPChallenge    bool
	DisableTLSALPNChallenge bool
	// ObtainTimeout bounds one certificate order (default: certmagic's).
	ObtainTimeout time.Duration
}

// source is one mode's way to find a certificate for a handshake.
type source interface {
	getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
	close()
}

// Manager serves certificates to the HTTPS listener and ACME challenges to
// the HTTP listener. It is safe for concurrent use.
type Manager struct {
	opts  Options
	hosts *hostsRef
	log   *zap.Logger
	src   source
	local *localCA   // mode local
	acme  *acmeState // mode acme
	once  sync.Once
}

// New builds the Manager for opts.Mode. In mode local it creates or loads
// the CA; in mode files it loads the pair (an error names the bad file); in
// mode acme it sets certmagic up and starts obtaining certificates in the
// background (Sync waits for them). ctx bounds the start only.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPSPort == 0 {
		opts.HTTPSPort = 443
	}
	hs, err := hostSetFor(opts.Mode, opts.Hosts)
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, hosts: &hostsRef{}, log: opts.Logger.Named("certs")}
	m.hosts.set(hs)
	switch opts.Mode {
	case ModeLocal:
		ca, err := openLocalCA(opts.LocalDir, opts.Now)
		if err != nil {
			return nil, err
		}
		m.local = ca
		m.src = newLocalSource(ca, m.hosts, opts)
		m.log.Info("local CA ready", zap.String("ca", ca.certPath))
	case ModeFiles:
		fs, err := newFileSource(opts, m.hosts, m.log)
		if err != nil {
			return nil, err
		}
		m.src = fs
	case ModeACME:
		as, err := newACMESource(ctx, m.hosts, opts, m.log)
		if err != nil {
			return nil, err
		}
		m.acme = as
		m.src = as
	default:
		return nil, fmt.Errorf("tls mode %q: want local, files or acme", opts.Mode)
	}
	return m, nil
}

// hostSetFor builds the host set of a mode: mode local adds localhost and
// the loopback addresses; mode acme refuses what ACME cannot certify here
// (addresses, and wildcards, which need DNS-01).
func hostSetFor(mode string, hosts []string) (hostSet, error) {
	if mode == ModeLocal {
		hosts = append(append([]string(nil), hosts...), "localhost", "127.0.0.1", "::1")
	}
	hs, err := newHostSet(hosts)
	if err != nil {
		return hostSet{}, fmt.Errorf("tls hosts: %w", err)
	}
	if mode == ModeACME {
		if len(hs.ips) > 0 {
			return hostSet{}, fmt.Errorf("tls mode acme: %v: ACME certificates for IP addresses are not supported", hs.ips)
		}
		if len(hs.names) == 0 {
			return hostSet{}, errors.New("tls mode acme: no host names to obtain certificates for")
		}
		for _, n := range hs.names {
			if strings.HasPrefix(n, "*.") {
				return hostSet{}, fmt.Errorf("tls mode acme: %s: wildcard certificates need the DNS-01 challenge, which is not supported", n)
			}
		}
	}
	return hs, nil
}

// SetHosts replaces the configured hosts (a config reload changed the
// routes). Handshakes for removed names fail from now on; in mode acme,
// added names are obtained in the background and removed ones are no
// longer renewed. An invalid list changes nothing.
func (m *Manager) SetHosts(ctx context.Context, hosts []string) error {
	hs, err := hostSetFor(m.opts.Mode, hosts)
	if err != nil {
		return err
	}
	if m.acme != nil {
		if err := m.acme.setHosts(ctx, m.hosts.get(), hs); err != nil {
			return err
		}
	}
	m.hosts.set(hs)
	return nil
}

// Reload checks the certificate files now (mode files; e.g. on SIGHUP)
// instead of waiting for the next poll. A broken pair is returned as an
// error and the last good one keeps serving. Other modes return nil.
func (m *Manager) Reload() error {
	if fs, ok := m.src.(*fileSource); ok {
		return fs.reloadIfChanged()
	}
	return nil
}

// TLSConfig returns a fresh TLS server config: TLS 1.2 at least, ALPN h2
// and http/1.1 (plus acme-tls/1 in mode acme), certificates chosen per SNI.
func (m *Manager) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if m.acme != nil {
		protos = append(protos, acmeTLS1)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: m.getCertificate,
	}
}

// getCertificate is the handshake entry point, shared by all modes.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := m.src.getCertificate(hello)
	if err != nil {
		m.log.Debug("handshake refused", zap.String("sni", hello.ServerName), zap.Error(err))
		return nil, err
	}
	return cert, nil
}

// HTTPHandler wraps the plain-HTTP listener's handler: in mode acme it
// answers HTTP-01 challenges first; everything else goes to next, or, when
// next is nil, is redirected to HTTPS on a configured host (404 for a Host
// that is not configured).
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if next == nil {
		next = http.HandlerFunc(m.redirect)
	}
	if m.acme != nil {
		return m.acme.issuer.HTTPChallengeHandler(next)
	}
	return next
}

// redirect sends a plain-HTTP request to the same URL over HTTPS.
func (m *Manager) redirect(w http.ResponseWriter, r *http.Request) {
	if !m.hosts.get().allows(r.Host) {
		http.Error(w, "unknown host", http.StatusNotFound)
		return
	}
	host := hostOnly(r.Host)
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	if m.opts.HTTPSPort != 443 {
		host = net.JoinHostPort(hostOnly(r.Host), strconv.Itoa(m.opts.HTTPSPort))
	}
	w.Header().Set("Connection", "close")
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// CACertPath is the PEM file of the local CA, for clients to trust (mode
// local); "" in other modes.
func (m *Manager) CACertPath() string {
	if m.local == nil {
		return ""
	}
	return m.local.certPath
}

// Sync blocks until every configured host has a certificate (mode acme:
// obtained or loaded from storage), or ctx ends. Other modes are ready at
// New and return nil.
func (m *Manager) Sync(ctx context.Context) error {
	if m.acme == nil {
		return nil
	}
	return m.acme.sync(ctx)
}

// Ready reports, without blocking, whether every configured host has a
// certificate; for /readyz.
func (m *Manager) Ready(context.Context) error {
	if m.acme == nil {
		return nil
	}
	return m.acme.ready()
}

// Close stops background work (file watching, certmagic maintenance). It
// may be called more than once.
func (m *Manager) Close() {
	m.once.Do(func() {
		if m.src != nil {
			m.src.close()
		}
	})
}

// ErrNoCertificate is returned when no certificate can be served yet.
var ErrNoCertificate = errors.New("certs: no certificate available")
