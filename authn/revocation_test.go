package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A revocation is kept for the current session.lifetime. A session sealed
// under a longer lifetime (before session.lifetime was lowered) must not be
// accepted again once that shorter revocation entry has lapsed.
func TestRevokedSessionStaysRevokedAfterLifetimeLowered(t *testing.T) {
	var offset time.Duration
	base := time.Now()
	clock := func() time.Time { return base.Add(offset) }
	store := NewMemoryStoreClock(clock)
	mk := func(life time.Duration) *Authn {
		o := baseOptions("https://idp.example", "gatehouse", "s")
		o.Clock = clock
		o.Store = store
		o.Session.Lifetime = life
		o.Session.IdleTimeout = -1 // no idle timeout: only the lifetime is judged
		a, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	old := mk(24 * time.Hour)
	now := clock()
	s := &Session{ID: "sid-1", Host: chatHost, Subject: "u1", Created: now.UnixMilli(), Expires: now.Add(24 * time.Hour).Unix(), LastSeen: now.Unix()}
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ck := &http.Cookie{Name: old.sessionCookie(), Value: old.seal.seal("session", chatHost, now.Add(24*time.Hour), plain)}
	signedIn := func(a *Authn) bool {
		r := httptest.NewRequest(http.MethodGet, "http://"+chatHost+"/", nil)
		r.AddCookie(ck)
		id, handled, err := a.Authenticate(httptest.NewRecorder(), r, Route{Name: "chat", Host: chatHost})
		if err != nil {
			t.Fatal(err)
		}
		return !handled && id.Authenticated()
	}
	if !signedIn(old) {
		t.Fatal("fresh session refused under the 24h lifetime")
	}
	// session.lifetime lowered to 12h (reload), then the session is revoked.
	a := mk(12 * time.Hour)
	offset = time.Hour
	if err := a.RevokeSession(context.Background(), "sid-1", "stolen"); err != nil {
		t.Fatal(err)
	}
	if signedIn(a) {
		t.Fatal("revoked session accepted right after its revocation")
	}
	// The revocation entry lapses at 13h; the cookie's sealed expiry is 24h.
	for _, at := range []time.Duration{12 * time.Hour, 14 * time.Hour, 23 * time.Hour} {
		offset = at
		if signedIn(a) {
			t.Errorf("revoked session accepted again at +%s (lifetime now 12h)", at)
		}
	}
}

// Lowering session.lifetime ends sessions older than the new lifetime even
// without a revocation; younger ones go on.
func TestLoweredLifetimeBoundsOlderSessions(t *testing.T) {
	var offset time.Duration
	base := time.Now()
	clock := func() time.Time { return base.Add(offset) }
	store := NewMemoryStoreClock(clock)
	mk := func(life time.Duration) *Authn {
		o := baseOptions("https://idp.example", "gatehouse", "s")
		o.Clock = clock
		o.Store = store
		o.Session.Lifetime = life
		o.Session.IdleTimeout = -1
		a, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	old := mk(24 * time.Hour)
	now := clock()
	s := &Session{ID: "sid-2", Host: chatHost, Subject: "u1", Created: now.UnixMilli(), Expires: now.Add(24 * time.Hour).Unix(), LastSeen: now.Unix()}
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ck := &http.Cookie{Name: old.sessionCookie(), Value: old.seal.seal("session", chatHost, now.Add(24*time.Hour), plain)}
	a := mk(12 * time.Hour)
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{time.Hour, true}, {11 * time.Hour, true}, {12 * time.Hour, false}, {20 * time.Hour, false}} {
		offset = tc.at
		r := httptest.NewRequest(http.MethodGet, "http://"+chatHost+"/", nil)
		r.AddCookie(ck)
		id, handled, err := a.Authenticate(httptest.NewRecorder(), r, Route{Name: "chat", Host: chatHost})
		if err != nil {
			t.Fatal(err)
		}
		if got := !handled && id.Authenticated(); got != tc.want {
			t.Errorf("at +%s: signed in=%v, want %v", tc.at, got, tc.want)
		}
	}
}
