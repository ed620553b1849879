package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

func TestCheckPathCharset(t *testing.T) {
	for _, tc := range []struct {
		path, charset, reason string
	}{
		{"/admin", "ascii", ""},
		{"/文件/报告.pdf", "ascii", PathNotASCII},
		{"/文件/报告.pdf", "nfkc", ""},
		{"/café", "nfkc", ""},              // precomposed é is NFKC-stable
		{"/ａdmin", "nfkc", PathCompatChar}, // full-width a
		{"/ｆｉｎａｎｃｅ", "nfkc", PathCompatChar},
		{"/ﬁnance", "nfkc", PathCompatChar}, // the fi ligature
		{"/admin²", "nfkc", PathCompatChar},
		{"/ａdmin", "", ""},
	} {
		err := CheckPathCharset(tc.path, tc.charset)
		var pe *PathError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%q %s: %v", tc.path, tc.charset, err)
		case tc.reason != "" && (!errors.As(err, &pe) || pe.Reason != tc.reason || !errors.Is(err, ErrAmbiguousPath)):
			t.Errorf("%q %s: %v, want %s", tc.path, tc.charset, err, tc.reason)
		}
	}
}

// TestRoutePathCharset: a route with path_charset refuses look-alike paths
// with 400 before authentication, so "/ａdmin" never reaches an upstream
// that would fold it into "/admin" behind the policy's back.
func TestRoutePathCharset(t *testing.T) {
	up, seenReqs := echoUpstream(t, nil)
	cfg := baseConfig(up.URL)
	cfg.Routes = append(cfg.Routes,
		config.Route{Name: "legacy", Host: "legacy.example.com", Upstream: up.URL, MFA: "optional", PathCharset: "nfkc"},
		config.Route{Name: "strict", Host: "strict.example.com", Upstream: up.URL, MFA: "optional", PathCharset: "ascii"},
		// One route's rule covers its host: /ａdmin must not slip to "/".
		config.Route{Name: "mixed-admin", Host: "mixed.example.com", PathPrefix: "/admin", Upstream: up.URL, MFA: "optional", PathCharset: "nfkc"},
		config.Route{Name: "mixed-root", Host: "mixed.example.com", Upstream: up.URL, MFA: "optional"})
	_, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}})
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"legacy.example.com", "/admin", 200},
		{"legacy.example.com", "/%EF%BD%81dmin", 400}, // /ａdmin
		{"legacy.example.com", "/%E6%96%87%E4%BB%B6", 200},
		{"strict.example.com", "/%E6%96%87%E4%BB%B6", 400},
		{"strict.example.com", "/docs", 200},
		{"app.example.com", "/%EF%BD%81dmin", 200}, // no path_charset: any UTF-8
		{"mixed.example.com", "/%EF%BD%81dmin", 400},
		{"mixed.example.com", "/docs", 200},
	} {
		before := len(*seenReqs)
		resp, body := get(t, front, tc.host, tc.path, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s%s: %d, want %d", tc.host, tc.path, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusBadRequest && len(*seenReqs) != before {
			t.Errorf("%s%s reached the upstream", tc.host, tc.path)
		}
		_ = body
	}
}

// TestForwardAuthClientIP: behind nginx ($proxy_add_x_forwarded_for) the
// client is the last hop nginx appended, whatever the client wrote; its own
// X-Real-IP is not believed.
func TestForwardAuthClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	for _, tc := range []struct {
		xff, realIP, peer, want string
	}{
		{"", "10.1.2.3", "127.0.0.1:5000", "invalid IP"},               // X-Real-IP spoof ignored; no chain: unknown
		{"10.1.2.3, 203.0.113.7", "", "127.0.0.1:5000", "203.0.113.7"}, // client-written hop before nginx's
		{"203.0.113.7, 10.9.1.1", "", "127.0.0.1:5000", "203.0.113.7"}, // past a trusted front proxy
		{"not-an-ip, 203.0.113.7", "", "127.0.0.1:5000", "203.0.113.7"},
		{"203.0.113.7, garbage", "", "127.0.0.1:5000", "invalid IP"}, // unreadable last hop: unknown, not nginx's address
		{"203.0.113.7:51234", "", "127.0.0.1:5000", "203.0.113.7"},   // a hop with a port
	} {
		r := httptest.NewRequest(http.MethodGet, "http://gate/.gatehouse/auth", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.realIP != "" {
			r.Header.Set("X-Real-IP", tc.realIP)
		}
		if got := forwardAuthClientIP(r, trusted); got.String() != tc.want {
			t.Errorf("xff %q real-ip %q: %s, want %s", tc.xff, tc.realIP, got, tc.want)
		}
	}
}
