package authn

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore counts the session records written.
type countingStore struct {
	*MemoryStore
	puts atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, s *Session, ttl time.Duration) error {
	c.puts.Add(1)
	return c.MemoryStore.Put(ctx, s, ttl)
}

// TestForwardAuthKeepsServerSessionActive: in server mode a user active
// only behind a forward-auth proxy is not signed out by the idle timeout:
// each check refreshes the stored record's LastSeen, at most once per
// refresh interval; a user who stops is still signed out.
func TestForwardAuthKeepsServerSessionActive(t *testing.T) {
	var offset time.Duration
	clock := func() time.Time { return time.Now().Add(offset) }
	store := &countingStore{MemoryStore: NewMemoryStoreClock(clock)}
	rg, _ := fakeRig(t, func(o *Options) {
		o.Clock = clock
		o.Session.IdleTimeout = 30 * time.Minute
		o.ServerSide = true
		o.Store = store
	})
	rg.get("http://chat.test/")
	ck := sessionCookieOf(rg, chatHost)
	if ck == nil {
		t.Fatal("no session cookie on chat")
	}
	check := func() int {
		req := httptest.NewRequest(http.MethodGet, "http://gate.test/.gatehouse/auth", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		req.Host = chatHost
		req.Header.Set("X-Original-URL", "http://chat.test/room/1")
		req.Header.Set("X-Original-Method", "GET")
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		rg.a.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for offset = 10 * time.Minute; offset <= 70*time.Minute; offset += 10 * time.Minute {
		if code := check(); code != http.StatusOK {
			t.Fatalf("active user behind forward-auth refused at +%s: %d", offset, code)
		}
	}
	// Rate-limited: one write for a check a refresh interval after the
	// last one, none for checks within the interval.
	before := store.puts.Load()
	if code := check(); code != http.StatusOK {
		t.Fatalf("check: %d", code)
	}
	if n := store.puts.Load() - before; n != 1 {
		t.Errorf("%d record writes for a check 10 minutes after the last, want 1", n)
	}
	before = store.puts.Load()
	offset += 30 * time.Second
	for range 5 {
		if code := check(); code != http.StatusOK {
			t.Fatalf("check: %d", code)
		}
	}
	if n := store.puts.Load() - before; n != 0 {
		t.Errorf("%d record writes for checks within one refresh interval, want 0", n)
	}
	// Idle for longer than the timeout: signed out.
	offset += 31 * time.Minute
	if code := check(); code == http.StatusOK {
		t.Errorf("session idle for 31 minutes still accepted")
	}
}
