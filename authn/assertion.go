package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// asserter signs the JWT assertion sent upstream (ES256) and publishes its
// public key as a JWKS.
type asserter struct {
	signer jose.Signer
	jwks   []byte
	kid    string
	iss    string
	ttl    time.Duration
	now    func() time.Time

	// cache keeps, per session, route and MFA fact, the signed token and
	// the identity header values, reused for half the token's lifetime.
	cache *lru[assertionKey, *cachedAssertion]
}

type assertionKey struct {
	sid, route string
	mfa        bool
}

// cachedAssertion is immutable once cached.
type cachedAssertion struct {
	id    Identity // what the token and headers say
	token string
	until time.Time
	// Header values, control bytes removed.
	user, email, groups, roles string
	// vals holds the same values (user, email, groups, roles, token) as
	// one-element header value slices, built once: UpstreamHeaders shares
	// them between requests instead of allocating five slices each time.
	// Each has cap 1, so an append elsewhere copies instead of writing
	// into the cache.
	vals [5][]string
}

// assertionCacheSize bounds the cache (one entry per active session and
// route).
const assertionCacheSize = 8192

// AssertionClaims are the claims of the upstream assertion.
type AssertionClaims struct {
	jwt.Claims
	Email  string   `json:"email,omitempty"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	MFA    bool     `json:"mfa"`
	AMR    []string `json:"amr,omitempty"`
	SID    string   `json:"sid,omitempty"`
}

func newAsserter(key *ecdsa.PrivateKey, iss string, ttl time.Duration, now func() time.Time) (*asserter, error) {
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: assertion key must be P-256 (ES256)", ErrConfig)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("assertion key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("assertion signer: %w", err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, fmt.Errorf("encode jwks: %w", err)
	}
	return &asserter{signer: signer, jwks: set, kid: pub.KeyID, iss: iss, ttl: ttl, now: now,
		cache: newLRU[assertionKey, *cachedAssertion](assertionCacheSize)}, nil
}

// sameIdentity reports whether a and b say the same thing upstream.
func sameIdentity(a, b *Identity) bool {
	return a.Subject == b.Subject && a.Email == b.Email && a.Name == b.Name && a.MFA == b.MFA &&
		a.SessionID == b.SessionID && slices.Equal(a.Groups, b.Groups) && slices.Equal(a.Roles, b.Roles) &&
		slices.Equal(a.AMR, b.AMR)
}

// assertion returns a signed JWT for id, audience route, with the identity
// header values. Tokens are reused for half their lifetime, and only for
// exactly the same identity facts (a cached entry whose facts differ is
// replaced).
func (as *asserter) assertion(route string, id *Identity) (*cachedAssertion, error) {
	now := as.now()
	key := assertionKey{sid: id.SessionID, route: route, mfa: id.MFA}
	if c, ok := as.cache.get(key); ok && now.Before(c.until) && sameIdentity(&c.id, id) {
		return c, nil
	}
	c := AssertionClaims{
		Claims: jwt.Claims{
			Issuer:    as.iss,
			Subject:   id.Subject,
			Audience:  jwt.Audience{route},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			Expiry:    jwt.NewNumericDate(now.Add(as.ttl)),
			ID:        randomID(12),
		},
		Email: id.Email, Name: id.Name, Groups: id.Groups, Roles: id.Roles, MFA: id.MFA, AMR: id.AMR, SID: id.SessionID,
	}
	tok, err := jwt.Signed(as.signer).Claims(c).Serialize()
	if err != nil {
		return nil, fmt.Errorf("sign assertion: %w", err)
	}
	ca := &cachedAssertion{
		id: Identity{Subject: id.Subject, Email: id.Email, Name: id.Name, MFA: id.MFA, SessionID: id.SessionID,
			Groups: slices.Clone(id.Groups), Roles: slices.Clone(id.Roles), AMR: slices.Clone(id.AMR)},
		token: tok, until: now.Add(as.ttl / 2),
		user: headerSafe(id.Subject), email: headerSafe(id.Email), groups: joinSafe(id.Groups), roles: joinSafe(id.Roles),
	}
	backing := []string{ca.user, ca.email, ca.groups, ca.roles, ca.token}
	for i := range ca.vals {
		ca.vals[i] = backing[i : i+1 : i+1]
	}
	as.cache.put(key, ca)
	return ca, nil
}

func (a *Authn) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(a.assert.jwks)
}

// JWKS returns the JSON Web Key Set that verifies assertions.
func (a *Authn) JWKS() []byte { return append([]byte(nil), a.assert.jwks...) }

// HeaderNames returns every header Gatehouse sets upstream; the proxy
// strips client-sent copies of them.
func (a *Authn) HeaderNames() []string { return slices.Clone(a.headerNames) }

// UpstreamHeaders removes any client-sent identity headers from h and, for
// a signed-in id, sets the identity headers and the signed assertion with
// audience route.
func (a *Authn) UpstreamHeaders(route string, id Identity, h http.Header) error {
	for _, n := range a.headerNames {
		delete(h, n)
	}
	if !id.Authenticated() {
		return nil
	}
	c, err := a.assert.assertion(route, &id)
	if err != nil {
		return err
	}
	h[a.o.Headers.User] = c.vals[0]
	if c.email != "" {
		h[a.o.Headers.Email] = c.vals[1]
	}
	if c.groups != "" {
		h[a.o.Headers.Groups] = c.vals[2]
	}
	if c.roles != "" {
		h[a.o.Headers.Roles] = c.vals[3]
	}
	h[a.o.Assertion.Header] = c.vals[4]
	return nil
}

// headerSafe drops bytes that may not appear in a header value.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// joinSafe joins values with ","; values containing a comma are left out
// (they would read as two).
func joinSafe(vs []string) string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		v = headerSafe(v)
		if v == "" || strings.Contains(v, ",") {
			continue
		}
		out = append(out, v)
	}
	return strings.Join(out, ",")
}

// ParseAssertionKey reads a PEM "EC PRIVATE KEY" or PKCS#8 P-256 key.
func ParseAssertionKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, fmt.Errorf("assertion key: no PEM block")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("assertion key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("assertion key: want a P-256 ECDSA key")
	}
	return ek, nil
}

// MarshalAssertionKey encodes key as PKCS#8 PEM.
func MarshalAssertionKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode assertion key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
