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
	"strings"
	"sync"
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

	mu    sync.Mutex
	cache map[string]cachedAssertion // session id + route -> token
}

type cachedAssertion struct {
	token string
	until time.Time
}

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
	return &asserter{signer: signer, jwks: set, kid: pub.KeyID, iss: iss, ttl: ttl, now: now, cache: map[string]cachedAssertion{}}, nil
}

// assertion returns a signed JWT for id, audience route. Tokens are reused
// for half their lifetime.
func (as *asserter) assertion(route string, id Identity) (string, error) {
	now := as.now()
	key := id.SessionID + "\x00" + route
	as.mu.Lock()
	if c, ok := as.cache[key]; ok && now.Before(c.until) {
		as.mu.Unlock()
		return c.token, nil
	}
	as.mu.Unlock()
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
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	as.mu.Lock()
	if len(as.cache) > 10000 {
		clear(as.cache)
	}
	as.cache[key] = cachedAssertion{token: tok, until: now.Add(as.ttl / 2)}
	as.mu.Unlock()
	return tok, nil
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
func (a *Authn) HeaderNames() []string {
	h := a.o.Headers
	return []string{h.User, h.Email, h.Groups, h.Roles, a.o.Assertion.Header}
}

// UpstreamHeaders removes any client-sent identity headers from h and, for
// a signed-in id, sets the identity headers and the signed assertion with
// audience route.
func (a *Authn) UpstreamHeaders(route string, id Identity, h http.Header) error {
	for _, n := range a.HeaderNames() {
		h.Del(n)
	}
	if !id.Authenticated() {
		return nil
	}
	h.Set(a.o.Headers.User, headerSafe(id.Subject))
	if id.Email != "" {
		h.Set(a.o.Headers.Email, headerSafe(id.Email))
	}
	if g := joinSafe(id.Groups); g != "" {
		h.Set(a.o.Headers.Groups, g)
	}
	if g := joinSafe(id.Roles); g != "" {
		h.Set(a.o.Headers.Roles, g)
	}
	tok, err := a.assert.assertion(route, id)
	if err != nil {
		return err
	}
	h.Set(a.o.Assertion.Header, tok)
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
