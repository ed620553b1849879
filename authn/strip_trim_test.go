package authn

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestStripCookiesTrimmedName: whatever spelling Gatehouse reads its
// session cookie from (names are trimmed, as net/http trims them), the
// same spelling is stripped: an upstream that trims names as well must
// never receive the session.
func TestStripCookiesTrimmedName(t *testing.T) {
	o := baseOptions("https://idp.example", "c", "s")
	o.ExternalURL = "https://gate.example.com"
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	sc := a.sessionCookie()
	for _, line := range []string{
		"app=1; " + sc + " =sealed",
		"app=1; " + sc + "\t=sealed",
		sc + " = sealed ; app=1",
		"app=1; " + sc + "-1 =more",
		"app=1; " + a.loginCookie("12345678") + " =state",
	} {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
		r.Header.Set("Cookie", line)
		h := r.Header.Clone()
		a.StripCookies(h)
		up := &http.Request{Header: h}
		for _, c := range up.Cookies() {
			if a.IsOwnCookie(c.Name) {
				t.Errorf("Cookie %q: after StripCookies %q the upstream reads Gatehouse's %s", line, h.Get("Cookie"), c.Name)
			}
		}
	}
}
