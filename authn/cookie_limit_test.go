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

// TestCookie8 holds the word test to the byte test: every byte value at
// every position of a word, in words otherwise valid and otherwise
// invalid, and validCookieValue to the byte loop at every length.
func TestCookie8(t *testing.T) {
	for _, fill := range []byte{'a', ' ', '~', 0x1f, 0x80} {
		for pos := 0; pos < 8; pos++ {
			for b := 0; b < 256; b++ {
				w := [8]byte{fill, fill, fill, fill, fill, fill, fill, fill}
				w[pos] = byte(b)
				var x uint64
				want := true
				for i, c := range w {
					x |= uint64(c) << (8 * i)
					want = want && validCookieByte(c)
				}
				if got := cookie8(x); got != want {
					t.Fatalf("cookie8(% x) = %v, want %v", w, got, want)
				}
			}
		}
	}
	base := strings.Repeat("AZ2qvcAAAAAAaxJ3Xumc-_", 3)
	for n := 0; n <= len(base); n++ {
		for pos := 0; pos < n; pos++ {
			for _, bad := range []byte{0x00, 0x1f, '"', ';', '\\', 0x7f, 0x80, 0xff} {
				v := []byte(base[:n])
				v[pos] = bad
				if validCookieValue(string(v)) {
					t.Fatalf("validCookieValue(%q) = true", v)
				}
			}
		}
		if !validCookieValue(base[:n]) {
			t.Fatalf("validCookieValue(%q) = false", base[:n])
		}
	}
}

func BenchmarkValidCookieValue(b *testing.B) {
	v := strings.Repeat("AZ2qvcAAAAAAaxJ3XumcHgf_U_s_UGXDUBfhdtybrc", 11) // a session cookie's length
	for b.Loop() {
		if !validCookieValue(v) {
			b.Fatal("invalid")
		}
	}
}
