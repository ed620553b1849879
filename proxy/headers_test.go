package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/policy"
)

func TestIsSpoofable(t *testing.T) {
	hp, err := newHeaderPolicy(baseConfig("http://x"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"X-Forwarded-For": true, "X_Forwarded_For": true, "x-forwarded-prefix": true, "Forwarded": true,
		"X-Real-Ip": true, "X-Gatehouse-Anything": true, "x_gatehouse_user": true, "X-Auth-User": true,
		"X-AUTH_EMAIL": true, "X-Identity-Assertion": true, "Remote-User": true, "X-Auth-Request-Email": true,
		"X-HTTP-Method-Override": true, "x_http_method": true, "X-Method-Override": true,
		"Accept": false, "Authorization": false, "X-Requested-With": false, "User-Agent": false, "X-Forwarded": false,
	} {
		if got := hp.isSpoofable(name); got != want {
			t.Errorf("isSpoofable(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzForwardedHeaders feeds arbitrary X-Forwarded-For and Cookie values:
// the client IP is the peer or an address the chain really contains, and
// the session cookie never survives stripping.
func FuzzForwardedHeaders(f *testing.F) {
	f.Add("1.2.3.4, 10.0.0.1", "_gatehouse=x; a=b")
	f.Add("garbage,,", "_gatehouse_1=y;_gatehouse=z")
	f.Add("2001:db8::1", "a=b; _gatehouse")
	f.Add("127.0.0.1", "__Host-_gatehouse=x; __Host-_gatehouse-1=y; __Host-gh_sso_ab=z; app=1")
	cfg := baseConfig("http://x")
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	hp, err := newHeaderPolicy(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, xff, cookie string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.9.9.9:1234"
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("Cookie", cookie)
		// The client is an address of the chain, or unknown; never the
		// trusted peer itself.
		if ip := hp.clientIP(r); ip.IsValid() {
			found := false
			for _, hop := range strings.Split(xff, ",") {
				if a, ok := parseHop(strings.TrimSpace(hop)); ok && a == ip {
					found = true
				}
			}
			if !found {
				t.Fatalf("client IP %s not in chain %q", ip, xff)
			}
		}
		out := http.Header{"Cookie": {cookie}}
		hp.strip(out)
		for _, line := range out.Values("Cookie") {
			for part := range strings.SplitSeq(line, ";") {
				name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
				n := strings.TrimPrefix(strings.TrimPrefix(name, "__Host-"), "__Secure-")
				if n == "_gatehouse" || strings.HasPrefix(n, "_gatehouse_") || strings.HasPrefix(n, "_gatehouse-") || strings.HasPrefix(n, "gh_") {
					t.Fatalf("session cookie survived: %q -> %q", cookie, line)
				}
			}
		}
		fwd := http.Header{}
		hp.setForwarded(r, fwd, remoteAddr(r), netip.Addr{}, "")
		if !strings.HasSuffix(fwd.Get("X-Forwarded-For"), "10.9.9.9") {
			t.Fatalf("X-Forwarded-For %q does not end with the peer", fwd.Get("X-Forwarded-For"))
		}
	})
}

func TestGatehouseCookiesNeverReachUpstream(t *testing.T) {
	hp, err := newHeaderPolicy(baseConfig("http://x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"__Host-_gatehouse=s; app=1", "app=1"},
		{"__Host-_gatehouse-1=c1; __Host-_gatehouse-2=c2; theme=dark", "theme=dark"},
		{"__Host-gh_login_x=l; __Host-gh_sso_y=s; _gatehouse=old; _gatehouse_1=c", ""},
		{"__Secure-_gatehouse=s; gatehouse_app=keep", "gatehouse_app=keep"},
	} {
		h := http.Header{"Cookie": {tc.in}}
		hp.strip(h)
		if got := h.Get("Cookie"); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// An upstream must not plant or clear Gatehouse's own cookies.
func TestUpstreamCannotSetGatehouseCookies(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "__Host-_gatehouse=planted; Path=/; Secure")
		w.Header().Add("Set-Cookie", "__Host-gh_sso_x=planted; Path=/")
		w.Header().Add("Set-Cookie", "app_session=keep; Path=/")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}})
	resp, _ := get(t, front, "app.example.com", "/", nil)
	got := resp.Header.Values("Set-Cookie")
	if resp.StatusCode != 200 || len(got) != 1 || !strings.HasPrefix(got[0], "app_session=keep") {
		t.Fatalf("status %d, Set-Cookie %q: want only the app's own cookie", resp.StatusCode, got)
	}
}

// The allocation-free folding of isSpoofable agrees with foldHeader for
// every spelling: case, underscores, spaces, non-ASCII, long names.
func TestIsSpoofableMatchesFold(t *testing.T) {
	hp, err := newHeaderPolicy(baseConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	long := "X-Forwarded-" + strings.Repeat("a", 80)
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"X-Forwarded-For", true}, {"x_forwarded_for", true}, {"X_FORWARDED_HOST", true},
		{" Forwarded ", true}, {"X-Real-Ip", true}, {"X-Auth-User", true}, {"x_auth_email", true},
		{"X-Gatehouse-User", true}, {"X-Identity-Assertion", true}, {long, true},
		{"X-Forwarded-\u212a", true}, // Kelvin sign: non-ASCII takes the strings.ToLower path
		{"Accept", false}, {"X-Forward", false}, {"Content-Type", false}, {"X-Request-Id", false},
		{strings.Repeat("b", 100), false},
	} {
		if got := hp.isSpoofable(tc.name); got != tc.want {
			t.Errorf("isSpoofable(%q) = %v, want %v", tc.name, got, tc.want)
		}
		if got, ref := hp.isSpoofable(tc.name), hp.isSpoofableFolded(foldHeader(tc.name)); got != ref {
			t.Errorf("isSpoofable(%q) = %v, foldHeader path says %v", tc.name, got, ref)
		}
	}
}

// Whatever the upstream never gets from a client (it is stripped as
// spoofable) the policy must not see either: a rule that believed it would
// judge a request the upstream does not receive.
func TestSpoofableHeadersHiddenFromPolicy(t *testing.T) {
	for _, n := range spoofable {
		if !policy.DroppedHeader(n) {
			t.Errorf("%s: stripped before the upstream, shown to the policy", n)
		}
	}
	for _, p := range spoofablePrefixes {
		if n := p + "anything"; !policy.DroppedHeader(n) {
			t.Errorf("%s: stripped before the upstream, shown to the policy", n)
		}
	}
	cfg := baseConfig("http://x")
	cfg.Identity.Headers.User = "X-Corp-User"
	hp, err := newHeaderPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Original-Forwarded-Host": {"evil"}, "X_corp_user": {"admin"}, "Remote-User": {"admin"}, "Accept": {"*/*"}}
	in := policy.HeadersFromHTTP(h, cfg.Identity.Headers.User)
	out := h.Clone()
	hp.strip(out)
	if len(in) != 1 || in["accept"] != "*/*" {
		t.Errorf("policy sees %v, want accept only", in)
	}
	if len(out) != 1 || out.Get("Accept") != "*/*" {
		t.Errorf("upstream gets %v, want Accept only", out)
	}
}
