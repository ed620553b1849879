package proxy

import (
	"errors"
	"net/http"
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
