package authn

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/internal/idp/idptest"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// Integration tests against real peers: the npm oidc-provider (test/idp),
// Dex and redis-server. Missing peers skip only under -short.

const callbackURL = "http://gate.test/.gatehouse/callback"

func realRig(t *testing.T, mod func(*Options)) (*rig, *idp.Provider) {
	t.Helper()
	p := idptest.Start(t, idp.Options{RedirectURIs: []string{callbackURL}, PostLogoutRedirects: []string{"http://gate.test/.gatehouse/signed-out"}})
	o := baseOptions(p.Issuer, p.ClientID, p.ClientSecret)
	o.Claims.Roles = "realm_access.roles"
	if mod != nil {
		mod(&o)
	}
	return newRig(t, o), p
}

func idpVisits(visited []string, issuer, path string) int {
	n := 0
	for _, v := range visited {
		if strings.HasPrefix(v, issuer+path) {
			n++
		}
	}
	return n
}

func signIn(t *testing.T, rg *rig, start, user, pw, totp string) *idp.Page {
	t.Helper()
	p := rg.get(start)
	if _, ok := p.FormWith("password"); !ok {
		t.Fatalf("GET %s: no IdP login form (status %d, %s):\n%.1500s", start, p.Status, p.URL, p.Body)
	}
	out, err := rg.b.SignIn(p, user, pw, totp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOIDCProviderAliceWithTOTPAndSSO(t *testing.T) {
	rg, p := realRig(t, nil)
	page := signIn(t, rg, "http://chat.test/channels/town-square?x=1", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if page.Status != 200 || page.URL.String() != "http://chat.test/channels/town-square?x=1" {
		t.Fatalf("landed on %s (%d): %s", page.URL, page.Status, page.Body)
	}
	for _, want := range []string{"hello alice route=chat mfa=true", "email=alice@example.com", "groups=staff,finance", "roles=admin,staff"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("missing %q in %s", want, page.Body)
		}
	}
	ev := rg.eventsOf(EventLogin)
	if len(ev) != 1 || fmt.Sprint(ev[0].Fields["amr"]) != "[pwd otp]" || ev[0].Fields["acr"] != idp.MFAACR {
		t.Errorf("login event %+v", ev)
	}
	rg.b.Visited()
	for _, u := range []string{"http://files.test/", "http://admin.test/settings"} {
		pg := rg.get(u)
		if pg.Status != 200 || !strings.Contains(pg.Body, "hello alice") {
			t.Errorf("%s after SSO: %d %s", u, pg.Status, pg.Body)
		}
	}
	if n := idpVisits(rg.b.Visited(), p.Issuer, "/"); n != 0 {
		t.Errorf("SSO visited the IdP %d times", n)
	}
}

func TestOIDCProviderFirstLoginOnMFARouteAsksMFAOnce(t *testing.T) {
	rg, p := realRig(t, nil)
	rg.b.Visited()
	page := signIn(t, rg, "http://admin.test/", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	if page.Status != 200 || !strings.Contains(page.Body, "route=admin mfa=true") {
		t.Fatalf("%d %s", page.Status, page.Body)
	}
	visited := rg.b.Visited()
	if n := idpVisits(visited, p.Issuer, "/auth?"); n != 1 {
		t.Errorf("%d authorize requests, want 1:\n%s", n, strings.Join(visited, "\n"))
	}
	for _, v := range visited {
		if strings.HasPrefix(v, p.Issuer+"/auth?") && !strings.Contains(v, "acr_values=urn%3Agatehouse%3Amfa") {
			t.Errorf("first login for an MFA route did not ask for MFA: %s", v)
		}
	}
}

func TestOIDCProviderStepUp(t *testing.T) {
	rg, p := realRig(t, nil)
	page := signIn(t, rg, "http://chat.test/", "dana", "dana-password", "")
	if !strings.Contains(page.Body, "hello dana route=chat mfa=false") {
		t.Fatalf("password-only login: %d %s", page.Status, page.Body)
	}
	rg.b.Visited()
	page = signIn(t, rg, "http://admin.test/reports?q=2", "dana", "dana-password", idp.AliceTOTP)
	if page.Status != 200 || page.URL.String() != "http://admin.test/reports?q=2" || !strings.Contains(page.Body, "mfa=true") {
		t.Fatalf("after step-up: %s %d %s", page.URL, page.Status, page.Body)
	}
	visited := strings.Join(rg.b.Visited(), "\n")
	if !strings.Contains(visited, "acr_values=urn%3Agatehouse%3Amfa") || !strings.Contains(visited, "prompt=login") || !strings.Contains(visited, "max_age=43200") {
		t.Errorf("step-up request lacks acr_values/prompt/max_age:\n%s", visited)
	}
	if su := rg.eventsOf(EventStepUp); len(su) != 1 || su[0].Outcome != "mfa" {
		t.Errorf("step_up events: %+v", su)
	}
	// Chat keeps working (its old cookie was for the superseded session: one silent SSO hop).
	if pg := rg.get("http://chat.test/"); !strings.Contains(pg.Body, "hello dana route=chat mfa=true") {
		t.Errorf("chat after step-up: %s", pg.Body)
	}
	_ = p
}

func TestOIDCProviderBobGetsNoMFAAndNoLoop(t *testing.T) {
	rg, p := realRig(t, nil)
	page := signIn(t, rg, "http://chat.test/", idp.BobUser, idp.BobPassword, "")
	if !strings.Contains(page.Body, "hello bob route=chat mfa=false") {
		t.Fatalf("%d %s", page.Status, page.Body)
	}
	rg.b.Visited()
	page = signIn(t, rg, "http://admin.test/", idp.BobUser, idp.BobPassword, "")
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "needs multi-factor sign-in, which your identity provider did not provide") {
		t.Fatalf("bob on the MFA route: %d %s", page.Status, page.Body)
	}
	if n := idpVisits(rg.b.Visited(), p.Issuer, "/auth?"); n != 1 {
		t.Errorf("%d step-up attempts, want exactly 1", n)
	}
	page = rg.get("http://admin.test/")
	if page.Status != http.StatusForbidden || idpVisits(rg.b.Visited(), p.Issuer, "/") != 0 {
		t.Errorf("second visit: %d, went back to the IdP (a loop)", page.Status)
	}
	if su := rg.eventsOf(EventStepUp); len(su) != 1 || su[0].Outcome != "no_mfa" {
		t.Errorf("step_up events: %+v", su)
	}
}

func TestOIDCProviderLogout(t *testing.T) {
	rg, p := realRig(t, nil)
	signIn(t, rg, "http://chat.test/", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	rg.get("http://files.test/")
	chatCookie := sessionCookieOf(rg, chatHost)
	page := rg.get("http://files.test/.gatehouse/logout")
	form, ok := page.FormWith("csrf")
	if !ok {
		t.Fatalf("no logout form: %s", page.Body)
	}
	page, err := rg.b.Submit(page, form, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The IdP asks to confirm its own logout (RP-initiated logout).
	if !strings.HasPrefix(page.URL.String(), p.Issuer) {
		t.Fatalf("logout did not continue at the IdP: %s %s", page.URL, page.Body)
	}
	opForm, ok := page.FormWith("xsrf")
	if !ok {
		t.Fatalf("IdP logout page without form: %s", page.Body)
	}
	page, err = rg.b.Submit(page, opForm, map[string]string{"logout": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	// The IdP hands back the sealed state: the page may say "everywhere".
	if page.URL.Host != centralHost || page.URL.Path != PathSignedOut || page.URL.Query().Get("state") == "" ||
		!strings.Contains(page.Body, "ended in every app") {
		t.Fatalf("after IdP logout: %s %s", page.URL, page.Body)
	}
	if resp := requestWith(t, rg, "http://chat.test/", chatCookie); resp.StatusCode != http.StatusFound {
		t.Errorf("cookie copied before logout works: %d", resp.StatusCode)
	}
	// The IdP session is gone too: the next visit shows the IdP login form.
	if pg := rg.get("http://chat.test/"); !strings.Contains(pg.Body, `name="password"`) {
		t.Errorf("after logout the next visit did not ask to sign in: %s", pg.URL)
	}
}

// startRedis runs a throw-away redis-server on a free loopback port.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	c, _, _ := startRedisKill(t)
	return c
}

// startRedisKill is startRedis that also returns the address and a
// function that kills the server.
func startRedisKill(t testing.TB) (*redis.Client, string, func()) {
	t.Helper()
	rs := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { c.Close() })
	return c, rs.Addr, rs.Kill
}

func TestRedisSessionsSharedAcrossReplicas(t *testing.T) {
	rc := startRedis(t)
	var o Options
	rg, _ := realRig(t, func(opt *Options) {
		opt.ServerSide = true
		opt.Store = NewRedisStore(rc, "")
		o = *opt
	})
	signIn(t, rg, "http://chat.test/", idp.AliceUser, idp.AlicePassword, idp.AliceTOTP)
	ck := sessionCookieOf(rg, chatHost)
	if len(ck.Value) > 300 {
		t.Errorf("server-side session cookie has %d bytes; the record should be in Redis", len(ck.Value))
	}
	if n, _ := rc.Keys(context.Background(), "gatehouse:authn:s:*").Result(); len(n) != 1 {
		t.Errorf("session records in redis: %v", n)
	}
	// A second replica: same keys, same Redis.
	o.Events = nil
	replica, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(a *Authn) (Identity, bool) {
		r := httptest.NewRequest(http.MethodGet, "http://chat.test/", nil)
		r.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		id, handled, err := a.Authenticate(httptest.NewRecorder(), r, testRoutes[chatHost])
		if err != nil {
			t.Fatal(err)
		}
		return id, handled
	}
	if id, handled := ask(replica); handled || id.Subject != "alice" || !id.MFA {
		t.Fatalf("replica does not see the session: %+v handled=%v", id, handled)
	}
	if err := replica.RevokeUser(context.Background(), "alice", "test"); err != nil {
		t.Fatal(err)
	}
	if _, handled := ask(rg.a); !handled {
		t.Error("revocation on one replica not seen by the other")
	}
}

func TestStoreContract(t *testing.T) {
	stores := map[string]Store{"memory": NewMemoryStore()}
	if !testing.Short() || testenvHas("redis-server") {
		stores["redis"] = NewRedisStore(startRedis(t), "test:")
	}
	ctx := context.Background()
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			s := &Session{ID: "sid-" + name, Subject: "u", Created: now.UnixMilli(), Expires: now.Add(time.Hour).Unix()}
			if err := st.Put(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if got, err := st.Get(ctx, s.ID); err != nil || got.Subject != "u" {
				t.Fatalf("get: %v %v", got, err)
			}
			if _, err := st.Get(ctx, "nope"); err != ErrNotFound {
				t.Errorf("unknown id: %v", err)
			}
			if first, _ := st.UseOnce(ctx, "k", time.Minute); !first {
				t.Error("first use refused")
			}
			if again, _ := st.UseOnce(ctx, "k", time.Minute); again {
				t.Error("second use accepted")
			}
			if rev, _ := st.Revoked(ctx, s.ID, "u", now); rev {
				t.Error("revoked before revocation")
			}
			if err := st.Revoke(ctx, s.ID, time.Hour); err != nil {
				t.Fatal(err)
			}
			if rev, _ := st.Revoked(ctx, s.ID, "u", now); !rev {
				t.Error("not revoked")
			}
			if _, err := st.Get(ctx, s.ID); err != ErrNotFound {
				t.Errorf("revoked record still there: %v", err)
			}
			at := time.Now()
			if err := st.RevokeUser(ctx, "v", at, time.Hour); err != nil {
				t.Fatal(err)
			}
			if rev, _ := st.Revoked(ctx, "other", "v", at.Add(-time.Second)); !rev {
				t.Error("older session of a revoked user not revoked")
			}
			if rev, _ := st.Revoked(ctx, "newer", "v", at.Add(time.Second)); rev {
				t.Error("session made after the user revocation is revoked")
			}
			if err := st.Put(ctx, &Session{ID: "short", Subject: "u"}, 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond)
			if _, err := st.Get(ctx, "short"); err != ErrNotFound {
				t.Errorf("expired record: %v", err)
			}
		})
	}
}

func testenvHas(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func TestDexHasNoMFA(t *testing.T) {
	d := idptest.StartDex(t, idp.Options{RedirectURIs: []string{callbackURL}})
	o := baseOptions(d.Issuer, d.ClientID, d.ClientSecret)
	o.Scopes = []string{"openid", "email", "profile"}
	rg := newRig(t, o)
	rg.b.Visited()
	page := signIn(t, rg, "http://admin.test/", idp.DexUser, idp.DexPassword, "")
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "did not provide") {
		t.Fatalf("Dex login for an MFA route: %s %d %s", page.URL, page.Status, page.Body)
	}
	if n := idpVisits(rg.b.Visited(), d.Issuer, "/auth?"); n != 1 {
		t.Errorf("%d authorize requests to Dex, want 1", n)
	}
	for range 3 {
		if pg := rg.get("http://admin.test/"); pg.Status != http.StatusForbidden {
			t.Fatalf("revisit: %d", pg.Status)
		}
	}
	if n := idpVisits(rg.b.Visited(), d.Issuer, "/"); n != 0 {
		t.Errorf("revisits went to Dex %d times: a loop", n)
	}
	// Routes without MFA work with the Dex session.
	if pg := rg.get("http://chat.test/"); pg.Status != 200 || !strings.Contains(pg.Body, "mfa=false") || !strings.Contains(pg.Body, "email="+idp.DexUser) {
		t.Errorf("chat with Dex: %d %s", pg.Status, pg.Body)
	}
	ev := rg.eventsOf(EventLogin)
	if len(ev) != 1 || ev[0].Fields["mfa"] != false || ev[0].Fields["acr"] != "" {
		t.Errorf("login event: %+v", ev)
	}
}
