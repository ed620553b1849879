package authn

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sidOf is the session id the rig's app shows in a page body.
func sidOf(body string) string {
	m := regexp.MustCompile(`sid=(\S+)`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// idleRig is a rig with a 30-minute idle timeout, a movable clock and an
// IdP whose tokens follow that clock.
func idleRig(t *testing.T) (*rig, *fakeOP, *time.Duration) {
	t.Helper()
	offset := new(time.Duration)
	rg, f := fakeRig(t, func(o *Options) {
		o.Clock = func() time.Time { return time.Now().Add(*offset) }
		o.Session.IdleTimeout = 30 * time.Minute
	})
	base := f.claims
	f.setClaims(func(n string) map[string]any {
		c := base(n)
		now := time.Now().Add(*offset)
		c["iat"], c["exp"], c["auth_time"] = now.Unix(), now.Add(5*time.Minute).Unix(), now.Unix()
		return c
	})
	return rg, f, offset
}

// sentToIdP reports whether the browser visited the IdP since the last
// call to rg.b.Visited.
func sentToIdP(rg *rig, f *fakeOP) bool {
	for _, v := range rg.b.Visited() {
		if strings.HasPrefix(v, f.srv.URL) {
			return true
		}
	}
	return false
}

// TestLoginAfterCentralIdleSupersedesSession: a user busy on one route host
// longer than idle_timeout opens another host; the central copy has idled
// out, so a new login is made, and it revokes the old session: the browser
// never holds two, and signing out on the second host signs out the first.
func TestLoginAfterCentralIdleSupersedesSession(t *testing.T) {
	rg, f, offset := idleRig(t)
	s1 := sidOf(rg.get("http://files.test/").Body)
	if s1 == "" {
		t.Fatal("no session on files")
	}
	for *offset = 10 * time.Minute; *offset <= 40*time.Minute; *offset += 10 * time.Minute {
		if p := rg.get("http://files.test/"); p.Status != http.StatusOK {
			t.Fatalf("files at +%s: %d", *offset, p.Status)
		}
	}
	s2 := sidOf(rg.get("http://chat.test/").Body)
	if s2 == "" || s2 == s1 {
		t.Fatalf("chat session %q (files %q)", s2, s1)
	}
	var superseded bool
	for _, ev := range rg.eventsOf(EventSessionRevoked) {
		superseded = superseded || ev.SessionID == s1
	}
	if !superseded {
		t.Errorf("the idled-out central session %s was not revoked by the new login", s1)
	}
	if got := sidOf(rg.get("http://files.test/").Body); got == s1 {
		t.Errorf("files still runs the superseded session %s", s1)
	}

	p := rg.get("http://chat.test/.gatehouse/logout")
	form, ok := p.FormWith("csrf")
	if !ok {
		t.Fatalf("no logout form: %s", p.Body)
	}
	if _, err := rg.b.Submit(p, form, nil); err != nil {
		t.Fatal(err)
	}
	rg.b.Visited()
	p = rg.get("http://files.test/")
	if !sentToIdP(rg, f) && (sidOf(p.Body) == s1 || sidOf(p.Body) == s2) {
		t.Errorf("files still signed in (%s) after signing out on chat", sidOf(p.Body))
	}
}

// TestLogoutFromIdleHostEndsEveryHost: signing out on a host whose cookie
// copy has idled out (each copy has its own idle clock) ends the session
// on the host still in use; the page never says "signed out everywhere"
// before that.
func TestLogoutFromIdleHostEndsEveryHost(t *testing.T) {
	rg, f, offset := idleRig(t)
	rg.get("http://chat.test/")
	s1 := sidOf(rg.get("http://files.test/").Body)
	for *offset = 10 * time.Minute; *offset <= 40*time.Minute; *offset += 10 * time.Minute {
		rg.get("http://chat.test/") // busy on chat only
	}
	p := rg.get("http://files.test/.gatehouse/logout")
	if strings.Contains(p.Body, "ended in every app") {
		t.Fatalf("told signed out everywhere before anything was revoked: %s", p.Body)
	}
	form, ok := p.FormWith("csrf")
	if !ok {
		t.Fatalf("no sign-out form for the idle copy: %d %s %s", p.Status, p.URL, p.Body)
	}
	if _, err := rg.b.Submit(p, form, nil); err != nil {
		t.Fatal(err)
	}
	if lo := rg.eventsOf(EventLogout); len(lo) != 1 || lo[0].SessionID != s1 {
		t.Errorf("logout events %+v, want one for %s", lo, s1)
	}
	rg.b.Visited()
	p = rg.get("http://chat.test/")
	if !sentToIdP(rg, f) && sidOf(p.Body) == s1 {
		t.Errorf("chat still signed in with %s after signing out on files", s1)
	}
}

// TestSignedOutPageClaimsEverywhereOnlyAfterRevocation: the signed-out page
// says "every app" only with the sealed proof a sign-out hands on; a link,
// a forged state, or a sign-out without a session get the neutral text.
func TestSignedOutPageClaimsEverywhereOnlyAfterRevocation(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	get := func(target string) string {
		rec := httptest.NewRecorder()
		rg.a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec.Body.String()
	}
	const everywhere, here = "ended in every app", "signed out here"
	for _, c := range []struct {
		name, target string
		everywhere   bool
	}{
		{"a plain link", "http://gate.test" + PathSignedOut, false},
		{"a forged state", "http://gate.test" + PathSignedOut + "?state=AAAA", false},
		{"a state sealed for another purpose", "http://gate.test" + PathSignedOut + "?state=" + rg.a.seal.seal("session", centralHost, time.Now().Add(time.Hour), []byte("1")), false},
		{"the sign-out's state", "http://gate.test" + PathSignedOut + "?state=" + rg.a.signedOutState(), true},
		{"sign-out without a session", "http://gate.test" + PathLogout, false},
	} {
		body := get(c.target)
		if got := strings.Contains(body, everywhere); got != c.everywhere || !c.everywhere && !strings.Contains(body, here) {
			t.Errorf("%s: everywhere=%v, want %v:\n%s", c.name, got, c.everywhere, body)
		}
	}
}
