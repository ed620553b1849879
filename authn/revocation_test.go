package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// lifetimeFixture is a session sealed under a 24h lifetime, a shared store
// and a movable clock: the ground for lowering session.lifetime later.
type lifetimeFixture struct {
	t      *testing.T
	offset time.Duration
	base   time.Time
	store  *MemoryStore
	cookie *http.Cookie
}

func newLifetimeFixture(t *testing.T, sid string) *lifetimeFixture {
	f := &lifetimeFixture{t: t, base: time.Now()}
	f.store = NewMemoryStoreClock(f.clock)
	old := f.authn(24 * time.Hour)
	now := f.clock()
	s := &Session{ID: sid, Host: chatHost, Subject: "u1", Created: now.UnixMilli(), Expires: now.Add(24 * time.Hour).Unix(), LastSeen: now.Unix()}
	plain, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	f.cookie = &http.Cookie{Name: old.sessionCookie(), Value: old.seal.seal("session", chatHost, now.Add(24*time.Hour), plain)}
	return f
}

func (f *lifetimeFixture) clock() time.Time { return f.base.Add(f.offset) }

// authn is an Authn with session.lifetime life (no idle timeout: only the
// lifetime is judged) on the fixture's store and clock.
func (f *lifetimeFixture) authn(life time.Duration) *Authn {
	o := baseOptions("https://idp.example", "gatehouse", "s")
	o.Clock = f.clock
	o.Store = f.store
	o.Session.Lifetime = life
	o.Session.IdleTimeout = -1
	a, err := New(o)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// signedIn reports whether a accepts the fixture's session cookie now.
func (f *lifetimeFixture) signedIn(a *Authn) bool {
	r := httptest.NewRequest(http.MethodGet, "http://"+chatHost+"/", nil)
	r.AddCookie(f.cookie)
	id, handled, err := a.Authenticate(httptest.NewRecorder(), r, Route{Name: "chat", Host: chatHost})
	if err != nil {
		f.t.Fatal(err)
	}
	return !handled && id.Authenticated()
}

// A revocation is kept for the current session.lifetime. A session sealed
// under a longer lifetime (before session.lifetime was lowered) must not be
// accepted again once that shorter revocation entry has lapsed.
func TestRevokedSessionStaysRevokedAfterLifetimeLowered(t *testing.T) {
	f := newLifetimeFixture(t, "sid-1")
	if !f.signedIn(f.authn(24 * time.Hour)) {
		t.Fatal("fresh session refused under the 24h lifetime")
	}
	// session.lifetime lowered to 12h (reload), then the session is revoked.
	a := f.authn(12 * time.Hour)
	f.offset = time.Hour
	if err := a.RevokeSession(context.Background(), "sid-1", "stolen"); err != nil {
		t.Fatal(err)
	}
	if f.signedIn(a) {
		t.Fatal("revoked session accepted right after its revocation")
	}
	// The revocation entry lapses at 13h; the cookie's sealed expiry is 24h.
	for _, at := range []time.Duration{12 * time.Hour, 14 * time.Hour, 23 * time.Hour} {
		f.offset = at
		if f.signedIn(a) {
			t.Errorf("revoked session accepted again at +%s (lifetime now 12h)", at)
		}
	}
}

// Lowering session.lifetime ends sessions older than the new lifetime even
// without a revocation; younger ones go on.
func TestLoweredLifetimeBoundsOlderSessions(t *testing.T) {
	f := newLifetimeFixture(t, "sid-2")
	a := f.authn(12 * time.Hour)
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{time.Hour, true}, {11 * time.Hour, true}, {12 * time.Hour, false}, {20 * time.Hour, false}} {
		f.offset = tc.at
		if got := f.signedIn(a); got != tc.want {
			t.Errorf("at +%s: signed in=%v, want %v", tc.at, got, tc.want)
		}
	}
}
