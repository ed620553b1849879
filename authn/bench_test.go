package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkAuthenticate measures the per-request cost of a valid session
// cookie (open + decode, or a cache hit, + revocation check), and of the
// upstream headers with the signed assertion (cached per session, route and
// MFA); then the same with the revocation list in a real redis-server, asked
// per request ("redis") or answered from the watched local view
// ("redis+watch").
func BenchmarkAuthenticate(b *testing.B) {
	o := baseOptions("https://idp.example", "gatehouse", "s")
	a, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	s := &Session{ID: randomID(32), Host: chatHost, Subject: "u1", Email: "u@example.com", Groups: []string{"finance", "staff"},
		AMR: []string{"pwd", "otp"}, AuthTime: now.Unix(), Created: now.UnixMilli(), Expires: now.Add(time.Hour).Unix(), LastSeen: now.Unix()}
	plain, _ := json.Marshal(s)
	cookie := &http.Cookie{Name: a.sessionCookie(), Value: a.seal.seal("session", chatHost, now.Add(time.Hour), plain)}
	route := testRoutes[chatHost]
	b.Run("session", func(b *testing.B) {
		for b.Loop() {
			r := httptest.NewRequest(http.MethodGet, "http://chat.test/", nil)
			r.AddCookie(cookie)
			id, handled, err := a.Authenticate(httptest.NewRecorder(), r, route)
			if err != nil || handled || !id.MFA {
				b.Fatal(id, handled, err)
			}
		}
	})
	b.Run("session+headers", func(b *testing.B) {
		for b.Loop() {
			r := httptest.NewRequest(http.MethodGet, "http://chat.test/", nil)
			r.AddCookie(cookie)
			id, _, _ := a.Authenticate(httptest.NewRecorder(), r, route)
			if err := a.UpstreamHeaders("chat", id, http.Header{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	if testing.Short() && !testenvHas("redis-server") {
		return
	}
	rc, _, _ := startRedisKill(b)
	for _, watch := range []bool{false, true} {
		name := "redis"
		st := NewRedisStore(rc, "bench:")
		if watch {
			name = "redis+watch"
			ctx, cancel := context.WithCancel(context.Background())
			go st.Watch(ctx, WatchOptions{})
			defer cancel()
			for start := time.Now(); ; time.Sleep(time.Millisecond) {
				if _, ok := st.view.answer("x", "x", now); ok {
					break
				}
				if time.Since(start) > 2*time.Second {
					b.Fatal("view never fresh")
				}
			}
		}
		ro := o
		ro.Store = st
		ra, err := New(ro)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "http://chat.test/", nil)
				r.AddCookie(cookie)
				id, handled, err := ra.Authenticate(httptest.NewRecorder(), r, route)
				if err != nil || handled || !id.MFA {
					b.Fatal(id, handled, err)
				}
			}
		})
	}
}
