package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Authn is the authentication service: handlers for /.gatehouse/*, the
// per-request Authenticate, step-up, logout, revocation and the upstream
// identity headers. Make one with New; it is safe for concurrent use.
type Authn struct {
	o       Options
	seal    *sealer
	scheme  string // of ExternalURL: https, or http in local tests
	central string // host[:port] of ExternalURL, lower case
	secure  bool   // cookies Secure and __Host- prefixed
	hosts   map[string]bool

	idp    idpState
	assert *asserter
	pages  *pages
	// ownSession, ownLogin, ownBind: the session cookie's name and the
	// prefixes of the login and bind cookies (see IsOwnCookie).
	ownSession, ownLogin, ownBind string
	// headerNames are the canonical names of every header set upstream.
	headerNames []string
	// sessions caches decoded session cookies (see decodeSessionCookie).
	sessions *lru[sessionCacheKey, decodedCookie]
}

// New checks o, fills defaults and returns an Authn. It does not contact
// the IdP: discovery happens on first use and is retried; Ready reports it.
func New(o Options) (*Authn, error) {
	c, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	s, err := newSealer(c.Session.Keys)
	if err != nil {
		return nil, err
	}
	ext, _ := url.Parse(c.ExternalURL) // checked by withDefaults
	a := &Authn{
		o:       c,
		seal:    s,
		scheme:  ext.Scheme,
		central: strings.ToLower(ext.Host),
		secure:  ext.Scheme == "https",
		hosts:   map[string]bool{},

		sessions: newLRU[sessionCacheKey, decodedCookie](sessionCacheSize),
	}
	a.hosts[a.central] = true
	a.ownSession, a.ownLogin, a.ownBind = a.sessionCookie(), a.cookieName("gh_login_"), a.cookieName("gh_sso_")
	// Canonical names: UpstreamHeaders writes the header map directly.
	hn := &a.o.Headers
	for _, p := range []*string{&hn.User, &hn.Email, &hn.Groups, &hn.Roles, &a.o.Assertion.Header} {
		*p = http.CanonicalHeaderKey(*p)
		a.headerNames = append(a.headerNames, *p)
	}
	for _, h := range c.Hosts {
		a.hosts[strings.ToLower(h)] = true
	}
	key := c.Assertion.Key
	if key == nil {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("make assertion key: %w", err)
		}
	}
	if a.assert, err = newAsserter(key, c.ExternalURL, c.Assertion.TTL, c.Clock); err != nil {
		return nil, err
	}
	if a.pages, err = loadPages(); err != nil {
		return nil, err
	}
	return a, nil
}

// served reports whether host (lower case) is a host Gatehouse serves.
func (a *Authn) served(host string) bool { return a.hosts[host] }

// CentralHost is the host of ExternalURL.
func (a *Authn) CentralHost() string { return a.central }

// Ready reports whether the IdP's discovery document has been read (it
// tries now if not) and the store answers.
func (a *Authn) Ready(ctx context.Context) error {
	if _, err := a.provider(ctx); err != nil {
		return err
	}
	if p, ok := a.o.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Paths served by Handler, all under /.gatehouse/.
const (
	PathLogin      = "/.gatehouse/login"
	PathStart      = "/.gatehouse/start"
	PathCallback   = "/.gatehouse/callback"
	PathLogout     = "/.gatehouse/logout"
	PathLogoutDone = "/.gatehouse/logout/done"
	PathSignedOut  = "/.gatehouse/signed-out"
	PathJWKS       = "/.gatehouse/jwks.json"
	PathAuth       = "/.gatehouse/auth"
	PathStatus     = "/.gatehouse/me"
)

// Routes returns the method+path patterns and handlers to mount on every
// host (http.ServeMux patterns).
func (a *Authn) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET " + PathLogin:      http.HandlerFunc(a.handleLogin),
		"GET " + PathStart:      http.HandlerFunc(a.handleStart),
		"GET " + PathCallback:   http.HandlerFunc(a.handleCallback),
		"GET " + PathLogout:     http.HandlerFunc(a.handleLogoutConfirm),
		"POST " + PathLogout:    http.HandlerFunc(a.handleLogout),
		"GET " + PathLogoutDone: http.HandlerFunc(a.handleLogoutDone),
		"GET " + PathSignedOut:  http.HandlerFunc(a.handleSignedOut),
		"GET " + PathJWKS:       http.HandlerFunc(a.handleJWKS),
		"GET " + PathStatus:     http.HandlerFunc(a.handleStatus),
		PathAuth:                http.HandlerFunc(a.handleForwardAuth),
	}
}

// Handler serves every /.gatehouse/ path of Routes.
func (a *Authn) Handler() http.Handler {
	mux := http.NewServeMux()
	for p, h := range a.Routes() {
		mux.Handle(p, h)
	}
	return mux
}

// requestHost is the lower-cased Host of r.
func requestHost(r *http.Request) string { return strings.ToLower(r.Host) }

// clientIP is the peer address of r (the proxy has already resolved
// trusted forwarders into RemoteAddr when it applies).
func clientIP(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func loopbackCaller(r *http.Request) bool {
	ip := net.ParseIP(clientIP(r))
	return ip != nil && ip.IsLoopback()
}

func (a *Authn) now() time.Time { return a.o.Clock() }

// emit reports ev; an error means it was not recorded.
func (a *Authn) emit(ctx context.Context, r *http.Request, ev Event) error {
	if a.o.Events == nil {
		return nil
	}
	ev.Time = a.now()
	if r != nil {
		if ev.Host == "" {
			ev.Host = requestHost(r)
		}
		ev.ClientIP = a.o.ClientIP(r)
	}
	if err := a.o.Events(ctx, ev); err != nil {
		return fmt.Errorf("record %s event: %w", ev.Type, err)
	}
	return nil
}

// url builds scheme://host + path + ?query.
func (a *Authn) url(host, path string, q url.Values) string {
	u := a.scheme + "://" + host + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// idState guards lazy discovery.
type idpState struct {
	mu      sync.Mutex
	p       *provider
	lastErr error
	lastTry time.Time
}
