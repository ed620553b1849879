package authn

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCookieValueHonorsCookieLimit: with GODEBUG=httpcookiemaxnum lowered,
// r.Cookie reads no cookie at all from a header past the limit;
// cookieValue must read the header as r.Cookie does, whatever the limit.
func TestCookieValueHonorsCookieLimit(t *testing.T) {
	const name = "__Host-_gatehouse"
	for _, tc := range []struct {
		godebug string
		line    string
	}{
		{"httpcookiemaxnum=10", strings.Repeat("a=1; ", 20) + name + "=v"},
		{"httpcookiemaxnum=500", strings.Repeat("a=1; ", 600) + name + "=v"},
		{"httpcookiemaxnum=0", strings.Repeat("a=1; ", 4000) + name + "=v"}, // 0: no limit
		{"", "a=1; " + name + "=v"},
	} {
		t.Run(tc.godebug, func(t *testing.T) {
			t.Setenv("GODEBUG", tc.godebug)
			cookieLimit.Reset()
			t.Cleanup(cookieLimit.Reset) // the next test probes its own setting
			r := httptest.NewRequest(http.MethodGet, "https://app.example/", nil)
			r.Header.Set("Cookie", tc.line)
			got, ok := cookieValue(r, name)
			c, err := r.Cookie(name)
			if (err == nil) != ok || ok && got != c.Value {
				t.Errorf("GODEBUG=%s: cookieValue %q %v; r.Cookie %v %v", tc.godebug, got, ok, c, err)
			}
		})
	}
}

// TestCookieValueAllocs: the limit probe is cached, so reading the session
// cookie still allocates nothing.
func TestCookieValueAllocs(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "https://app.example/", nil)
	r.Header.Set("Cookie", "a=1; __Host-_gatehouse=v")
	_, _ = cookieValue(r, "__Host-_gatehouse")
	if n := testing.AllocsPerRun(100, func() { _, _ = cookieValue(r, "__Host-_gatehouse") }); n != 0 {
		t.Errorf("cookieValue: %v allocations", n)
	}
}
