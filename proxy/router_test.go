package proxy

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

func testRoutes() []config.Route {
	return []config.Route{
		{Name: "chat", Host: "chat.example.com", Upstream: "http://10.0.0.5:8065"},
		{Name: "api", Host: "Chat.Example.com", PathPrefix: "/api", Upstream: "http://10.0.0.6"},
		{Name: "api-v2", Host: "chat.example.com", PathPrefix: "/api/v2/", Upstream: "http://10.0.0.7"},
		{Name: "files", Host: "files.example.com", PathPrefix: "/s", Upstream: "https://10.0.0.8/base"},
		{Name: "v6", Host: "[::1]", Upstream: "http://10.0.0.9"},
	}
}

func TestRouterMatch(t *testing.T) {
	r, err := NewRouter(testRoutes())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ host, path, want string }{
		{"chat.example.com", "/", "chat"},
		{"CHAT.EXAMPLE.COM:8443", "/x", "chat"},
		{"chat.example.com.", "/x", "chat"},
		{"chat.example.com", "/api", "api"},
		{"chat.example.com", "/api/", "api"},
		{"chat.example.com", "/api/users", "api"},
		{"chat.example.com", "/apix", "chat"},
		{"chat.example.com", "/api/v2", "api-v2"},
		{"chat.example.com", "/api/v2/x", "api-v2"},
		{"chat.example.com", "/api/v20", "api"},
		{"files.example.com", "/s/report.pdf", "files"},
		{"files.example.com", "/", ""},
		{"files.example.com", "/sx", ""},
		{"unknown.example.com", "/", ""},
		{"", "/", ""},
		{"[::1]:8443", "/", "v6"},
		{"::1", "/", "v6"},
	}
	for _, tc := range cases {
		rt := r.Match(tc.host, tc.path)
		got := ""
		if rt != nil {
			got = rt.Info.Name
		}
		if got != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
	if rt := r.Match("files.example.com", "/s"); rt == nil || rt.Target.Path != "/base" || rt.Info.MFA != "optional" {
		t.Errorf("files route compiled wrong: %+v", rt)
	}
}

func TestRouterErrors(t *testing.T) {
	cases := []struct {
		name   string
		routes []config.Route
	}{
		{"empty host", []config.Route{{Name: "a", Upstream: "http://x"}}},
		{"bad scheme", []config.Route{{Name: "a", Host: "a", Upstream: "htp://x"}}},
		{"no upstream host", []config.Route{{Name: "a", Host: "a", Upstream: "http://"}}},
		{"query", []config.Route{{Name: "a", Host: "a", Upstream: "http://x/?a=1"}}},
		{"bad prefix", []config.Route{{Name: "a", Host: "a", PathPrefix: "/a/../b", Upstream: "http://x"}}},
		{"bad glob", []config.Route{{Name: "a", Host: "a", Upstream: "http://x", Downloads: config.Downloads{Paths: []string{"["}}}}},
		{"duplicate", []config.Route{
			{Name: "a", Host: "a.example", PathPrefix: "/p", Upstream: "http://x"},
			{Name: "b", Host: "A.example", PathPrefix: "/p/", Upstream: "http://y"},
		}},
	}
	for _, tc := range cases {
		if _, err := NewRouter(tc.routes); !errors.Is(err, ErrRouteConfig) {
			t.Errorf("%s: err = %v, want ErrRouteConfig", tc.name, err)
		}
	}
}

func TestIsDownload(t *testing.T) {
	r, err := NewRouter([]config.Route{{Name: "f", Host: "f", Upstream: "http://x", Downloads: config.Downloads{
		Paths:        []string{"/files/*", "*.pdf", "/export"},
		ContentTypes: []string{"application/octet-stream", "video/*"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	rt := r.Match("f", "/")
	cases := []struct {
		path, ct, cd string
		want         bool
	}{
		{"/page", "text/html", "", false},
		{"/page", "text/html", "attachment; filename=x.html", true},
		{"/page", "text/html", "Attachment", true},
		{"/page", "text/html", "inline", false},
		{"/files/a", "text/plain", "", true},
		{"/files/a/b/c.txt", "text/plain", "", true},
		{"/files", "text/html", "", false},
		{"/filesx/a", "text/html", "", false},
		{"/docs/report.pdf", "text/html", "", true},
		{"/docs/report.PDF", "text/html", "", true}, // case ignored
		{"/Files/A.txt", "text/html", "", true},
		{"/EXPORT", "text/html", "", true},
		{"/export", "text/html", "", true},
		{"/export/x", "text/html", "", false},
		{"/bin", "application/octet-stream", "", true},
		{"/bin", "Application/Octet-Stream; charset=x", "", true},
		{"/movie", "video/mp4", "", true},
		{"/movie", "audio/mp4", "", false},
	}
	for _, tc := range cases {
		if got := rt.IsDownload(tc.path, tc.ct, tc.cd); got != tc.want {
			t.Errorf("IsDownload(%q, %q, %q) = %v, want %v", tc.path, tc.ct, tc.cd, got, tc.want)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"App.Example.com": "app.example.com", "app.example.com:8443": "app.example.com", "app.example.com.": "app.example.com",
		" app.example.com ": "app.example.com", "[::1]": "::1", "[::1]:443": "::1", "::1": "::1", "127.0.0.1:80": "127.0.0.1",
		"": "",
	} {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = canonicalHost("app.example.com") }); n != 0 {
		t.Errorf("canonicalHost of a host without a port: %v allocations", n)
	}
}

// TestCanonicalHostAsSplitHostPort: the port check before SplitHostPort
// changes nothing: every Host reads as SplitHostPort reads it (Go's server
// lets ']' through in a Host header, and SplitHostPort does not judge the
// port's characters).
func TestCanonicalHostAsSplitHostPort(t *testing.T) {
	ref := func(h string) string {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		return strings.TrimSuffix(strings.ToLower(h), ".")
	}
	for _, h := range []string{"app.example.com:1]", "[::1]:8]", "[x]:1]", "app.example.com", "[::1]", "[::1]:443",
		"a:b:c", "[a]b", "App.Example.COM.:80", ":80", "]:80", "[]"} {
		if got, want := canonicalHost(h), ref(h); got != want {
			t.Errorf("canonicalHost(%q) = %q, SplitHostPort reads %q", h, got, want)
		}
	}
}
