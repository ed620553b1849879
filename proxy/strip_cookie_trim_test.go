package proxy

import (
	"net/http"
	"testing"
)

// TestStripSessionCookieTrimmedName: a Gatehouse cookie whose name is
// followed by blanks ("__Host-_gatehouse =v") is read as that cookie by
// net/http, by Gatehouse and by most upstream parsers; the proxy's own
// strip must drop it too.
func TestStripSessionCookieTrimmedName(t *testing.T) {
	hp, err := newHeaderPolicy(baseConfig("http://upstream.internal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"app=1; __Host-" + hp.sessionCookie + " =sealed",
		"app=1; " + hp.sessionCookie + "\t=sealed",
		"__Secure-" + hp.sessionCookie + " = sealed ; app=1",
		"app=1; gh_login_x =y",
	} {
		h := http.Header{"Cookie": {line}}
		hp.stripSessionCookie(h)
		for _, c := range (&http.Request{Header: h}).Cookies() {
			if hp.gatehouseCookie(c.Name) {
				t.Errorf("Cookie %q: after the strip %q the upstream reads Gatehouse's %s", line, h.Get("Cookie"), c.Name)
			}
		}
	}
}

// TestGatehouseCookieNames: which cookie names are Gatehouse's own (and
// stripped before the upstream), and which are the application's.
func TestGatehouseCookieNames(t *testing.T) {
	hp, err := newHeaderPolicy(baseConfig("http://upstream.internal"))
	if err != nil {
		t.Fatal(err)
	}
	c := hp.sessionCookie
	for name, ours := range map[string]bool{
		c: true, c + "_1": true, c + "-2": true, c + "_": true, "__Host-" + c: true, "__Secure-" + c + "_1": true,
		"gh_sso": true, "__Host-gh_login_x": true,
		c + "x": false, c[:len(c)-1]: false, "x" + c: false, "app": false, "": false, "__Host-app": false, "gh": false,
	} {
		if got := hp.gatehouseCookie(name); got != ours {
			t.Errorf("gatehouseCookie(%q) = %v, want %v", name, got, ours)
		}
	}
}
