package policy

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestCommonHeadersAgree: the precomputed facts for common names say what
// folding the name at request time says, so the table changes speed only.
func TestCommonHeadersAgree(t *testing.T) {
	for name, f := range commonHeaders {
		if name != http.CanonicalHeaderKey(name) {
			t.Errorf("%q is not in canonical form: net/http never delivers it", name)
		}
		if f.lower != strings.ToLower(name) || f.dropped != droppedFolded(name) {
			t.Errorf("%q: fact %+v, folded %v", name, f, droppedFolded(name))
		}
	}
	for _, name := range []string{"Cookie", "Authorization", "X-Forwarded-For", "X-Real-Ip", "Forwarded", "Via", "X-Csrf-Token"} {
		if !DroppedHeader(name) {
			t.Errorf("%s must be dropped", name)
		}
	}
}

func TestHeadersFromHTTPSpellings(t *testing.T) {
	h := http.Header{
		"User-Agent":       {"curl/8"},
		"Accept":           {"text/html", "application/json"},
		"Cookie":           {"_gatehouse=secret"},
		"X_forwarded_for":  {"203.0.113.1"}, // a spelling outside the table
		"X-Custom":         {"v"},
		"x-custom":         {"w"}, // two spellings of one name (not canonical: set by hand)
		"X-Gatehouse-User": {"mallory"},
		"Empty":            {},
	}
	got := HeadersFromHTTP(h)
	want := map[string]string{"user-agent": "curl/8", "accept": "text/html, application/json"}
	if c := got["x-custom"]; c != "v, w" && c != "w, v" {
		t.Errorf("x-custom = %q", c)
	}
	delete(got, "x-custom")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HeadersFromHTTP = %v, want %v", got, want)
	}
	if got := HeadersFromHTTP(http.Header{"User-Agent": {"x"}}, "user-agent"); len(got) != 0 {
		t.Errorf("extra names not removed: %v", got)
	}
}

func BenchmarkHeadersFromHTTP(b *testing.B) {
	h := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"text/html"}, "Accept-Encoding": {"gzip"},
		"Accept-Language": {"en"}, "Cookie": {"_gatehouse=x"}, "Sec-Fetch-Mode": {"navigate"}}
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = HeadersFromHTTP(h)
		}
	})
	// As the proxy asks on every request: its identity headers removed,
	// through a filter built once per config.
	f := NewHeaderFilter("X-Gatehouse-User", "X-Gatehouse-Email", "X-Gatehouse-Groups", "X-Gatehouse-Roles", "X-Gatehouse-Assertion")
	b.Run("identity-filter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = f.FromHTTP(h)
		}
	})
}

// A configured identity header is left out in any spelling, however it is
// configured: '_' and '-' are one on both sides (the proxy strips it so).
func TestHeadersFromHTTPExtraSpellings(t *testing.T) {
	for _, tc := range []struct{ configured, sent string }{
		{"X_Remote_Id", "X-Remote-Id"},
		{"X-Remote-Id", "X_Remote_Id"},
		{"x_remote_id", "X_REMOTE_ID"},
		{"X-Remote-Id", "x-remote-id"},
	} {
		out := HeadersFromHTTP(map[string][]string{tc.sent: {"admin"}, "X-Tenant": {"acme"}}, tc.configured)
		if len(out) != 1 || out["x-tenant"] != "acme" {
			t.Errorf("configured %q, sent %q: policy sees %v, want x-tenant only", tc.configured, tc.sent, out)
		}
	}
}
