package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzSessionCookie: no cookie an attacker can send opens as a session
// (without the key), and none makes the reader fail other than "no session".
func FuzzSessionCookie(f *testing.F) {
	o := baseOptions("https://idp.example", "gatehouse", "s")
	a, err := New(o)
	if err != nil {
		f.Fatal(err)
	}
	other, _ := newSealer([][]byte{testKey(99)})
	now := time.Now()
	f.Add("", "")
	f.Add("2~abc", "def")
	f.Add(other.seal("session", chatHost, now.Add(time.Hour), []byte(`{"id":"x","sub":"admin","h":"chat.test","ex":9999999999,"ls":9999999999}`)), "")
	f.Add(a.seal.seal("session", chatHost, now.Add(time.Hour), []byte(`{"id":"x"`)), "")
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		r := httptest.NewRequest(http.MethodGet, "http://chat.test/", nil)
		r.Header.Set("Cookie", a.sessionCookie()+"="+v0+"; "+a.sessionCookie()+"-1="+v1)
		s, err := a.loadSession(context.Background(), r, chatHost, true)
		if s != nil && s.Subject == "admin" {
			t.Fatalf("a cookie sealed under another key opened: %+v", s)
		}
		if err != nil && !errors.Is(err, errNoSession) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// FuzzOriginalRequest: whatever forward-auth headers say, an accepted
// original URL has a host and no userinfo.
func FuzzOriginalRequest(f *testing.F) {
	f.Add("https://chat.example.com/x", "", "", "")
	f.Add("", "https", "chat.example.com", "/a?b")
	f.Add("", "https", "evil.com@chat.example.com", "//x")
	f.Fuzz(func(t *testing.T, orig, proto, host, uri string) {
		r := httptest.NewRequest(http.MethodGet, "http://gate.test/.gatehouse/auth", nil)
		if orig != "" {
			r.Header["X-Original-Url"] = []string{orig}
		}
		r.Header["X-Forwarded-Proto"] = []string{proto}
		r.Header["X-Forwarded-Host"] = []string{host}
		r.Header["X-Forwarded-Uri"] = []string{uri}
		u, _, ok := originalRequest(r)
		if ok && (u.Host == "" || u.User != nil) {
			t.Fatalf("accepted %q/%q/%q/%q -> %v", orig, proto, host, uri, u)
		}
	})
}

func TestReady(t *testing.T) {
	o := baseOptions("http://127.0.0.1:1", "gatehouse", "s")
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ready(context.Background()); !errors.Is(err, ErrIdP) {
		t.Errorf("unreachable IdP: Ready = %v", err)
	}
	rg, _ := fakeRig(t, nil)
	if err := rg.a.Ready(context.Background()); err != nil {
		t.Errorf("fake OP: Ready = %v", err)
	}
}
