package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	caCertFile   = "ca.pem"
	caKeyFile    = "ca.key"
	caValidity   = 10 * 365 * 24 * time.Hour
	defaultLeaf  = 7 * 24 * time.Hour
	backdate     = time.Hour
	caCommonName = "Gatehouse local CA"
)

// localCA is the private CA of mode local.
type localCA struct {
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	certPath string
}

// openLocalCA loads the CA under dir, or makes one if dir holds none. A
// half-present CA (one of the two files), a key readable by others, or a
// pair that does not match is an error: it is never silently replaced,
// since clients may already trust it.
func openLocalCA(dir string, now func() time.Time) (*localCA, error) {
	if dir == "" {
		return nil, errors.New("tls mode local: local_dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local CA dir %s: %w", dir, err)
	}
	certPath := filepath.Join(dir, caCertFile)
	keyPath := filepath.Join(dir, caKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		ca, err := createLocalCA(certPath, keyPath, now())
		if !errors.Is(err, fs.ErrExist) {
			return ca, err
		}
		// Another process is making it: wait for its certificate.
		waitForFile(certPath)
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("local CA %s: %w", certPath, certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("local CA key %s: %w", keyPath, keyErr)
	case certErr != nil:
		// The key is there and the certificate not (yet): another process
		// may be between writing the two.
		waitForFile(certPath)
	}
	return loadLocalCA(certPath, keyPath, now())
}

// waitForFile gives a concurrent first start up to 2s to finish writing.
func waitForFile(path string) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
}

// loadLocalCA reads and checks an existing CA.
func loadLocalCA(certPath, keyPath string, now time.Time) (*localCA, error) {
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("local CA key %s: %w (remove %s too to make a new CA)", keyPath, err, certPath)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("local CA key %s: mode %v lets others read it; chmod 600 it", keyPath, st.Mode().Perm())
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("local CA %s: %w (remove %s too to make a new CA)", certPath, err, keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("local CA key %s: %w", keyPath, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("local CA %s with key %s: %w", certPath, keyPath, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("local CA key %s: not an ECDSA key", keyPath)
	}
	cert := pair.Leaf
	if cert == nil {
		if cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("local CA %s: %w", certPath, err)
		}
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("local CA %s: not a CA certificate", certPath)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("local CA %s: expired %s; remove %s and %s to make a new one", certPath, cert.NotAfter.Format(time.RFC3339), certPath, keyPath)
	}
	return &localCA{cert: cert, key: key, certPath: certPath}, nil
}

// createLocalCA makes a new CA and writes it without replacing existing
// files (fs.ErrExist if another process won the race).
func createLocalCA(certPath, keyPath string, now time.Time) (*localCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("local CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("local CA key: %w", err)
	}
	ski := sha256.Sum256(pub)
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName, Organization: []string{"Gatehouse local CA (" + host + ")"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("local CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("local CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("local CA key: %w", err)
	}
	// The key first: a cert without its key is never left behind by us.
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return &localCA{cert: cert, key: key, certPath: certPath}, nil
}

// writeNew writes data to path through a synced temporary file and a hard
// link, so the file appears whole or not at all and an existing one is
// never replaced (fs.ErrExist).
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// issue makes a leaf for DNS names and addresses, signed by the CA.
func (ca *localCA) issue(names []string, ips []netip.Addr, now time.Time, validity time.Duration) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		NotBefore:      now.Add(-backdate),
		NotAfter:       now.Add(validity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:       names,
		AuthorityKeyId: ca.cert.SubjectKeyId,
	}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	if len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	} else if len(ips) > 0 {
		tmpl.Subject.CommonName = ips[0].String()
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("leaf for %v %v: %w", names, ips, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("leaf for %v %v: %w", names, ips, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// localSource issues and caches leaves per configured entry.
type localSource struct {
	ca       *localCA
	hosts    *hostsRef
	now      func() time.Time
	validity time.Duration

	mu    sync.Mutex
	cache map[string]*tls.Certificate // key: configured name/pattern, or "ip" for the address leaf
}

func newLocalSource(ca *localCA, hs *hostsRef, opts Options) *localSource {
	v := opts.LeafValidity
	if v <= 0 {
		v = defaultLeaf
	}
	return &localSource{ca: ca, hosts: hs, now: opts.Now, validity: v, cache: map[string]*tls.Certificate{}}
}

// getCertificate serves the leaf of the configured entry that matches SNI;
// with no SNI, the leaf of the configured addresses if the connection's
// local address is one of them. Anything else is refused.
func (s *localSource) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	hs := s.hosts.get()
	if hello.ServerName == "" {
		if !hs.hasIP(localAddr(hello)) {
			return nil, fmt.Errorf("%w: no SNI and local address %v is not configured", ErrUnknownServerName, localAddr(hello))
		}
		// Keyed by the address list (a name never starts with a NUL).
		return s.leaf(fmt.Sprint("\x00", hs.ips), nil, hs.ips)
	}
	p, err := hs.match(hello.ServerName)
	if err != nil {
		return nil, err
	}
	return s.leaf(p, []string{p}, nil)
}

// leaf returns the cached leaf for key, issuing a new one when there is
// none or a third of its lifetime is left.
func (s *localSource) leaf(key string, names []string, ips []netip.Addr) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c := s.cache[key]; c != nil && now.Before(c.Leaf.NotAfter.Add(-s.validity/3)) {
		return c, nil
	}
	c, err := s.ca.issue(names, ips, now, s.validity)
	if err != nil {
		return nil, err
	}
	s.cache[key] = c
	return c, nil
}

func (s *localSource) close() {}

// localAddr is the address the client connected to (invalid if unknown).
func localAddr(hello *tls.ClientHelloInfo) netip.Addr {
	if hello.Conn == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
