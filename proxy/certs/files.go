package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

const defaultReloadInterval = 2 * time.Second

// fileSource serves the operator's certificate pair and reloads it when a
// file changes (polling their contents: that also sees atomic renames and
// the symlink swaps of Kubernetes secrets, which file events can miss).
type fileSource struct {
	certFile, keyFile string
	hosts             *hostsRef
	log               *zap.Logger
	onReload          func(error)

	cur atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // serialises reload
	seen    fileStamp  // stamps of the files as last tried
	lastErr error      // outcome of that try

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// fileStamp identifies a version of the two files: a hash of their
// contents (they are small), so an edit is seen even when the mtime and
// size stay the same.
type fileStamp [sha256.Size]byte

func newFileSource(opts Options, hs *hostsRef, log *zap.Logger) (*fileSource, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("tls mode files: cert_file and key_file are both required")
	}
	s := &fileSource{
		certFile: opts.CertFile, keyFile: opts.KeyFile, hosts: hs, log: log, onReload: opts.OnReload,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	st, err := s.stamp()
	if err != nil {
		return nil, err
	}
	c, err := loadPair(s.certFile, s.keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	s.seen = st
	iv := opts.ReloadInterval
	if iv <= 0 {
		iv = defaultReloadInterval
	}
	go s.watch(iv)
	return s, nil
}

// loadPair reads and checks a certificate/key pair; errors name the file.
func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls cert_file %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls key_file %s: %w", keyFile, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls cert_file %s with key_file %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls cert_file %s: %w", certFile, err)
		}
	}
	if now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("tls cert_file %s: certificate expired %s", certFile, c.Leaf.NotAfter.Format(time.RFC3339))
	}
	return &c, nil
}

func (s *fileSource) stamp() (fileStamp, error) {
	c, err := os.ReadFile(s.certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls cert_file %s: %w", s.certFile, err)
	}
	k, err := os.ReadFile(s.keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls key_file %s: %w", s.keyFile, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(c))
	h.Write(c)
	h.Write(k)
	return fileStamp(h.Sum(nil)), nil
}

func (s *fileSource) watch(iv time.Duration) {
	defer close(s.done)
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_ = s.reloadIfChanged()
		}
	}
}

// reloadIfChanged loads the pair again if either file changed since the
// last attempt. A broken pair is logged and reported; the last good one
// keeps serving. The error is that of the last attempt on the files as
// they are now (so unchanged broken files keep reporting it).
func (s *fileSource) reloadIfChanged() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stamp()
	if err == nil && st == s.seen {
		return s.lastErr
	}
	if err == nil {
		var c *tls.Certificate
		if c, err = loadPair(s.certFile, s.keyFile, time.Now()); err == nil {
			s.cur.Store(c)
			s.seen = st
			s.log.Info("tls certificate reloaded", zap.String("cert_file", s.certFile),
				zap.Time("not_after", c.Leaf.NotAfter), zap.Strings("names", c.Leaf.DNSNames))
		}
	}
	if err != nil {
		// Remember what was tried so a broken pair is reported once, and
		// retried when the files change again.
		if st != (fileStamp{}) {
			s.seen = st
		}
		s.log.Error("tls certificate reload failed; the previous certificate keeps serving", zap.Error(err))
	}
	s.lastErr = err
	if s.onReload != nil {
		s.onReload(err)
	}
	return err
}

// getCertificate serves the one pair to a configured SNI name, or to a
// client that sends none (the client then checks the names itself).
func (s *fileSource) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName != "" {
		if _, err := s.hosts.get().match(hello.ServerName); err != nil {
			return nil, err
		}
	}
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNoCertificate
}

func (s *fileSource) close() {
	s.once.Do(func() { close(s.stop); <-s.done })
}
