package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
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

// FuzzCookieValue: cookieValue reads a Cookie header as r.Cookie does.
func FuzzCookieValue(f *testing.F) {
	for _, s := range []string{"__Host-_gatehouse=abc", "a=1; __Host-_gatehouse=x; b=2", `__Host-_gatehouse="q"`,
		" __Host-_gatehouse = v ", "__Host-_gatehouse", "__Host-_gatehouse=a\\b; __Host-_gatehouse=ok",
		"__Host-_gatehouse=;x", ";;", `__Host-_gatehouse="`, "__Host-_gatehouse=a\tb"} {
		f.Add(s, "")
	}
	f.Add("x=1", "__Host-_gatehouse=second-line")
	// Past the first eight-byte words of validCookieValue's word test.
	f.Add("__Host-_gatehouse="+strings.Repeat("a", 20)+"\x7f; __Host-_gatehouse="+strings.Repeat("b", 40), "")
	f.Add("__Host-_gatehouse="+strings.Repeat("AZ2qvc-_", 9)+";x", "")
	f.Add(strings.Repeat("a=1; ", 1100)+"__Host-_gatehouse=many", "") // left to r.Cookie and its limit
	f.Add(strings.Repeat("a=1; ", 3100)+"__Host-_gatehouse=too-many", "")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		r := httptest.NewRequest(http.MethodGet, "https://app.example/", nil)
		r.Header["Cookie"] = []string{line1}
		if line2 != "" {
			r.Header["Cookie"] = append(r.Header["Cookie"], line2)
		}
		for _, name := range []string{"__Host-_gatehouse", "x"} {
			got, ok := cookieValue(r, name)
			c, err := r.Cookie(name)
			if (err == nil) != ok || ok && got != c.Value {
				t.Fatalf("Cookie %q, name %s: cookieValue %q %v; r.Cookie %v %v", r.Header["Cookie"], name, got, ok, c, err)
			}
		}
	})
}
