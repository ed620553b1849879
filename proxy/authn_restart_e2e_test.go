package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
)

// Restarts of a single instance (cookie sessions, memory store, no Redis):
// revocations are replayed from the audit log (wire_authn_replay.go).

// restart stops e's instance and starts a new one from the same
// gatehouse.yaml (same session keys, same audit log); e.front, e.admin
// and e.s then point at it. Browsers keep their cookies; retarget points
// them at the new instance.
func (e *authnE2E) restart(t *testing.T, audited bool) {
	t.Helper()
	e.front.Close()
	e.admin.Close()
	if err := e.s.runClose(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st := stages{authz: mfaPathAuthz{}, extra: buildAuthnInstance(t, audited)}
	if !audited {
		e.rec = &fakeRecorder{}
		st.rec = e.rec
	}
	s, _ := newTestServer(t, cfg, st)
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	front := httptest.NewUnstartedServer(s)
	front.TLS = &tls.Config{Certificates: []tls.Certificate{e.cert.cert}}
	front.StartTLS()
	t.Cleanup(front.Close)
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	e.s, e.front, e.admin = s, front, admin
}

// browser is a fresh browser pointed at e's instance, holding copies of
// from's cookies (nil: none).
func (e *authnE2E) browser(t *testing.T, from *idp.Browser) *idp.Browser {
	t.Helper()
	addr := e.front.Listener.Addr().String()
	b := idp.NewBrowser(map[string]string{"gate.example.com": addr, "chat.example.com": addr, "secure.example.com": addr})
	b.Trust(e.cert.pool)
	if from != nil {
		for _, h := range []string{"gate.example.com", "chat.example.com", "secure.example.com"} {
			u := mustParseURL(t, "https://"+h+"/")
			b.Client.Jar.SetCookies(u, from.Client.Jar.Cookies(u))
		}
	}
	return b
}

// lastLoginSession is the session id of the last login of subject in the
// audit log of e.
func (e *authnE2E) lastLoginSession(t *testing.T, subject string) string {
	t.Helper()
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := audit.Search(cfg.Audit.Dir, nil, audit.Filter{User: subject, Types: []audit.Type{audit.TypeLogin}})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[len(recs)-1].SessionID == "" {
		t.Fatalf("no login of %s in the audit log", subject)
	}
	return recs[len(recs)-1].SessionID
}

// TestRevokeSurvivesRestartThroughProxy: single instance, cookie sessions,
// no Redis. Cookies copied before a logout, a revocation by session id and
// a revocation by user are refused after a restart with the same config
// and directories (the revocations are replayed from the audit log); a
// session nobody revoked still works after it.
func TestRevokeSurvivesRestartThroughProxy(t *testing.T) {
	e := newAuthnE2EWith(t, "", true)
	const u = "https://chat.example.com/"

	// Alice 1: copied, then signed out.
	e.signIn(t, u, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	loggedOut := e.browser(t, e.b)
	page := e.get(t, "https://chat.example.com/.gatehouse/logout")
	form, ok := page.FormWith("csrf")
	if !ok {
		t.Fatalf("no logout form: %s", page.Body)
	}
	if _, err := e.b.Submit(page, form, nil); err != nil {
		t.Fatal(err)
	}
	// Bob: revoked by user through the admin API.
	bob := e.browser(t, nil)
	if _, err := bob.SignIn(e.get2(t, bob, u), idp.BobUser, idp.BobPassword, ""); err != nil {
		t.Fatal(err)
	}
	bob = e.browser(t, bob) // a copy never used: a 401 would clear its cookies
	adminRevoke(t, e.admin, `{"user":"bob"}`)
	// Alice 2: revoked by session id.
	alice2 := e.browser(t, nil)
	if _, err := alice2.SignIn(e.get2(t, alice2, u), idp.AliceUser, idp.AlicePassword, idp.AliceTOTP); err != nil {
		t.Fatal(err)
	}
	alice2 = e.browser(t, alice2)
	adminRevoke(t, e.admin, fmt.Sprintf(`{"session":%q}`, e.lastLoginSession(t, idp.AliceUser)))
	// Alice 3: nobody revokes it.
	alice3 := e.browser(t, nil)
	if _, err := alice3.SignIn(e.get2(t, alice3, u), idp.AliceUser, idp.AlicePassword, idp.AliceTOTP); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			name string
			b    *idp.Browser
			want int
		}{{"copy of a signed-out session", loggedOut, 401}, {"user-revoked session", bob, 401},
			{"id-revoked session", alice2, 401}, {"unrevoked session", alice3, 200}} {
			if len(c.b.Client.Jar.Cookies(mustParseURL(t, u))) == 0 {
				t.Fatalf("%s: no cookie", c.name)
			}
			b := e.browser(t, c.b) // a fresh copy each time
			if got := statusOf(t, b, u); got != c.want {
				t.Errorf("%s, %s: %d, want %d", when, c.name, got, c.want)
			}
		}
	}
	check("before restart")
	e.restart(t, true)
	check("after restart")
	resp, err := http.Get(e.admin.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || ready.Checks["authn"] != "ok" {
		t.Errorf("authn not ready after restart: %d %s", resp.StatusCode, body)
	}
}

// get2 is e.get with browser b.
func (e *authnE2E) get2(t *testing.T, b *idp.Browser, u string) *idp.Page {
	t.Helper()
	p, err := b.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return p
}

// TestRevokeReplayFailsClosedThroughProxy: when the audit log cannot be
// read at start, the revocations cannot be known: a valid session cookie
// is refused and /readyz reports authn not ready with the reason.
func TestRevokeReplayFailsClosedThroughProxy(t *testing.T) {
	e := newAuthnE2EWith(t, "", true)
	const u = "https://chat.example.com/"
	e.signIn(t, u, idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if code := statusOf(t, e.browser(t, e.b), u); code != 200 {
		t.Fatalf("signed in: %d", code)
	}
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.front.Close()
	e.admin.Close()
	if err := e.s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.Audit.Dir, "segments", "*"))
	if len(segs) == 0 {
		t.Fatal("no audit segment")
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("{\"v\":1,garbage}\n")
	f.Close()
	e.restart(t, false) // authn alone: it still reads audit.dir
	if code := statusOf(t, e.browser(t, e.b), u); code == 200 || code == 401 {
		t.Errorf("with unreadable revocations, a session was judged: %d", code)
	}
	resp, err := http.Get(e.admin.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || !strings.Contains(ready.Checks["authn"], "replay revocations") {
		t.Errorf("authn readiness does not report the failed replay: %d %s", resp.StatusCode, body)
	}
}
