package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// cacheRig is an Authn with a movable clock and a way to mint cookies.
type cacheRig struct {
	a      *Authn
	offset time.Duration
	base   time.Time
}

func newCacheRig(t *testing.T) *cacheRig {
	t.Helper()
	c := &cacheRig{base: time.Now()}
	o := baseOptions("https://idp.example", "gatehouse", "s")
	o.Clock = func() time.Time { return c.base.Add(c.offset) }
	o.Session.IdleTimeout = 30 * time.Minute
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	c.a = a
	return c
}

func (c *cacheRig) cookie(t *testing.T, id, host string, life time.Duration) *http.Cookie {
	t.Helper()
	now := c.a.now()
	s := &Session{ID: id, Host: host, Subject: "u-" + id, Email: id + "@example.com", Groups: []string{"staff"},
		AMR: []string{"pwd", "otp"}, AuthTime: now.Unix(), Created: now.UnixMilli(), Expires: now.Add(life).Unix(), LastSeen: now.Unix()}
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: c.a.sessionCookie(), Value: c.a.seal.seal("session", host, now.Add(life), plain)}
}

// ok reports whether ck signs the request in on host.
func (c *cacheRig) ok(t *testing.T, host string, ck *http.Cookie) bool {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	r.AddCookie(ck)
	route := Route{Name: "chat", Host: host}
	id, handled, err := c.a.Authenticate(httptest.NewRecorder(), r, route)
	if err != nil {
		t.Fatal(err)
	}
	return !handled && id.Authenticated()
}

// TestSessionCacheRejudgesEveryHit: a decoded cookie is cached, but every
// request still judges lifetime, idle time, revocation and host; a hit
// never extends a session.
func TestSessionCacheRejudgesEveryHit(t *testing.T) {
	c := newCacheRig(t)
	ck := c.cookie(t, "s1", chatHost, time.Hour)
	for range 3 {
		if !c.ok(t, chatHost, ck) {
			t.Fatal("a valid session cookie was refused")
		}
	}
	if n := c.a.sessions.len(); n != 1 {
		t.Errorf("%d cached cookies after three requests with one, want 1", n)
	}
	// Another host never opens it, cached or not.
	if c.ok(t, filesHost, ck) {
		t.Error("a cookie cached for chat signed in on files")
	}
	// Revocation applies to a cached cookie at once.
	if err := c.a.RevokeSession(context.Background(), "s1", "test"); err != nil {
		t.Fatal(err)
	}
	if c.ok(t, chatHost, ck) {
		t.Error("a revoked session was accepted from the cache")
	}
	// Idle time: a request at +20m refreshes the cookie (a new value); the
	// old value, though cached and used, still idles out at +31m.
	ck2 := c.cookie(t, "s2", chatHost, 2*time.Hour)
	if !c.ok(t, chatHost, ck2) {
		t.Fatal("second session refused")
	}
	c.offset = 20 * time.Minute
	if !c.ok(t, chatHost, ck2) {
		t.Fatal("active session refused within the idle timeout")
	}
	c.offset = 31 * time.Minute
	if c.ok(t, chatHost, ck2) {
		t.Error("a cached cookie outlived the idle timeout: the cache extended the session")
	}
	// Lifetime: a cached cookie stops at its expiry.
	c.offset = 0
	ck3 := c.cookie(t, "s3", chatHost, 10*time.Minute)
	if !c.ok(t, chatHost, ck3) {
		t.Fatal("third session refused")
	}
	c.offset = 10*time.Minute + time.Second
	if c.ok(t, chatHost, ck3) {
		t.Error("a cached cookie outlived its lifetime")
	}
}

// TestSessionCacheIsBounded: the cache never holds more than its size.
func TestSessionCacheIsBounded(t *testing.T) {
	c := newCacheRig(t)
	c.a.sessions = newLRU[sessionCacheKey, decodedCookie](4)
	var first *http.Cookie
	for i := range 10 {
		ck := c.cookie(t, "s"+string(rune('a'+i)), chatHost, time.Hour)
		if i == 0 {
			first = ck
		}
		if !c.ok(t, chatHost, ck) {
			t.Fatal("refused")
		}
	}
	if n := c.a.sessions.len(); n != 4 {
		t.Errorf("cache holds %d entries, bound 4", n)
	}
	if !c.ok(t, chatHost, first) {
		t.Error("an evicted cookie is no longer accepted")
	}
	// A very large value is decoded every time, never kept.
	c.a.sessions = newLRU[sessionCacheKey, decodedCookie](4)
	now := c.a.now()
	big := &Session{ID: "big", Host: chatHost, Subject: "u", Groups: []string{strings.Repeat("g", 5000)},
		Created: now.UnixMilli(), Expires: now.Add(time.Hour).Unix(), LastSeen: now.Unix()}
	plain, _ := json.Marshal(big)
	bc := &http.Cookie{Name: c.a.sessionCookie(), Value: c.a.seal.seal("session", chatHost, now.Add(time.Hour), plain)}
	for range 2 {
		if !c.ok(t, chatHost, bc) {
			t.Fatal("large session refused")
		}
	}
	if n := c.a.sessions.len(); n != 0 {
		t.Errorf("a %d-byte cookie was cached", len(bc.Value))
	}
}

func assertionClaims(t *testing.T, a *Authn, tok string) AssertionClaims {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(a.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	p, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c AssertionClaims
	if err := p.Claims(set.Keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAssertionCacheFollowsIdentity: the signed assertion and identity
// headers are reused only for exactly the same identity facts and route,
// and for at most half the token's lifetime.
func TestAssertionCacheFollowsIdentity(t *testing.T) {
	c := newCacheRig(t)
	a := c.a
	id := Identity{Subject: "alice", Email: "a@example.com", Groups: []string{"staff"}, SessionID: "sid1", MFA: true, AMR: []string{"otp"}}
	hdr := func(route string, id Identity) http.Header {
		h := http.Header{}
		if err := a.UpstreamHeaders(route, id, h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	tokOf := func(h http.Header) string { return h.Get(a.o.Assertion.Header) }
	h1 := hdr("chat", id)
	if tokOf(h1) != tokOf(hdr("chat", id)) {
		t.Error("the assertion was signed again for the same identity and route")
	}
	if h1.Get(a.o.Headers.User) != "alice" || h1.Get(a.o.Headers.Groups) != "staff" || h1.Get(a.o.Headers.Email) != "a@example.com" {
		t.Errorf("identity headers: %v", h1)
	}
	// Another route: another audience.
	if c := assertionClaims(t, a, tokOf(hdr("files", id))); len(c.Audience) != 1 || c.Audience[0] != "files" {
		t.Errorf("audience for files: %v", c.Audience)
	}
	// MFA lapses (max_age): a new token that says so.
	noMFA := id
	noMFA.MFA = false
	if c := assertionClaims(t, a, tokOf(hdr("chat", noMFA))); c.MFA {
		t.Error("the cached MFA assertion was sent for an identity without MFA")
	}
	// Same session id, other facts: never the cached token.
	changed := id
	changed.Groups = []string{"finance"}
	h2 := hdr("chat", changed)
	if got := assertionClaims(t, a, tokOf(h2)); strings.Join(got.Groups, ",") != "finance" || h2.Get(a.o.Headers.Groups) != "finance" {
		t.Errorf("changed groups: claims %v, header %q", got.Groups, h2.Get(a.o.Headers.Groups))
	}
	// Half the lifetime later: a fresh token, never one about to expire.
	t1 := tokOf(hdr("chat", id))
	c.offset = a.o.Assertion.TTL/2 + time.Second
	t2 := tokOf(hdr("chat", id))
	if t1 == t2 {
		t.Error("an assertion was reused past half its lifetime")
	}
	if exp := assertionClaims(t, a, t2).Expiry.Time(); exp.Sub(a.now()) < a.o.Assertion.TTL-time.Second {
		t.Errorf("fresh assertion expires in %v", exp.Sub(a.now()))
	}
	// Client-sent copies are always removed.
	h := http.Header{}
	h.Set(a.o.Headers.User, "mallory")
	h.Set("x-gatehouse-assertion", "forged")
	if err := a.UpstreamHeaders("chat", Identity{}, h); err != nil {
		t.Fatal(err)
	}
	if len(h) != 0 {
		t.Errorf("anonymous request kept client identity headers: %v", h)
	}
}

// TestStripCookiesKeepsUntouchedLine: a Cookie line without Gatehouse's
// cookies passes as it came; one with them loses only them.
func TestStripCookiesKeepsUntouchedLine(t *testing.T) {
	a := newCacheRig(t).a
	sc := a.sessionCookie()
	for _, tc := range []struct{ in, want string }{
		{"app=1; other=2", "app=1; other=2"},
		{sc + "=x; app=1", "app=1"},
		{"app=1; " + sc + "-1=y; gh_login_abc=z; gh_sso_q=1", "app=1"},
		{sc + "=x", ""},
		{sc + "x=1", sc + "x=1"}, // a longer name is the app's
	} {
		h := http.Header{"Cookie": {tc.in}}
		a.StripCookies(h)
		if got := h.Get("Cookie"); got != tc.want {
			t.Errorf("StripCookies(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSessionCacheKeepsOnlyTheValue: the cache keys on its own copy of the
// cookie value, not on a piece of the request's Cookie line, which would
// keep the whole line (up to the header limit) alive as long as the entry.
func TestSessionCacheKeepsOnlyTheValue(t *testing.T) {
	c := newCacheRig(t)
	ck := c.cookie(t, "s1", chatHost, time.Hour)
	line := "pad=" + strings.Repeat("x", 8000) + "; " + ck.Name + "=" + ck.Value
	r := httptest.NewRequest(http.MethodGet, "http://"+chatHost+"/", nil)
	r.Header.Set("Cookie", line)
	if id, handled, err := c.a.Authenticate(httptest.NewRecorder(), r, Route{Name: "chat", Host: chatHost}); err != nil || handled || !id.Authenticated() {
		t.Fatalf("session refused: %v %v %v", id, handled, err)
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(line))), uintptr(unsafe.Pointer(unsafe.StringData(line)))+uintptr(len(line))
	keys := c.a.sessions.keys()
	if len(keys) != 1 {
		t.Fatalf("%d cached entries, want 1", len(keys))
	}
	for _, k := range keys {
		if k.value != ck.Value {
			t.Errorf("cached under %q", k.value)
		}
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k.value))); p >= lo && p < hi {
			t.Error("the cache key points into the request's Cookie line")
		}
	}
}
