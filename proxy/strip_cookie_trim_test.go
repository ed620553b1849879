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
