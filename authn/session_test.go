package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSessionIDRotatedAtStepUp(t *testing.T) {
	rg, f := fakeRig(t, nil)
	base := f.claims
	f.setClaims(func(n string) map[string]any {
		c := base(n)
		c["amr"] = []string{"pwd"}
		return c
	})
	p := rg.get("http://chat.test/")
	if !strings.Contains(p.Body, "mfa=false") {
		t.Fatalf("password login: %s", p.Body)
	}
	old := sessionCookieOf(rg, chatHost)
	oldSID := rg.eventsOf(EventLogin)[0].SessionID
	f.setClaims(base) // the IdP now gives MFA
	p = rg.get("http://admin.test/")
	if p.Status != 200 || !strings.Contains(p.Body, "route=admin mfa=true") {
		t.Fatalf("step-up: %d %s", p.Status, p.Body)
	}
	if q := f.lastAuthorize(); q.Get("prompt") != "login" || q.Get("max_age") != "43200" {
		t.Errorf("step-up authorize lacks prompt=login/max_age: %v", q)
	}
	logins := rg.eventsOf(EventLogin)
	if len(logins) != 2 || logins[1].SessionID == oldSID {
		t.Fatalf("session id not rotated: %+v", logins)
	}
	if su := rg.eventsOf(EventStepUp); len(su) != 1 || su[0].Outcome != "mfa" {
		t.Errorf("step_up events %+v", su)
	}
	// The superseded session is dead on every host.
	if resp := requestWith(t, rg, "http://chat.test/", old); resp.StatusCode != http.StatusFound {
		t.Errorf("pre-step-up cookie still works: %d", resp.StatusCode)
	}
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	var offset time.Duration
	rg, _ := fakeRig(t, func(o *Options) {
		o.Clock = func() time.Time { return time.Now().Add(offset) }
		o.Session.IdleTimeout = 30 * time.Minute
		o.Session.Lifetime = 2 * time.Hour
	})
	rg.get("http://chat.test/")
	ck := sessionCookieOf(rg, chatHost)
	offset = 20 * time.Minute
	if resp := requestWith(t, rg, "http://chat.test/", ck); resp.StatusCode != 200 {
		t.Fatalf("active within idle timeout: %d", resp.StatusCode)
	}
	offset = 31 * time.Minute
	if resp := requestWith(t, rg, "http://chat.test/", ck); resp.StatusCode != http.StatusFound {
		t.Errorf("idle for 31m: %d, want sign-in", resp.StatusCode)
	}
	// Keep it busy: a refreshed cookie every 20 minutes still ends at the lifetime.
	offset = 0
	cur := ck
	for offset = 20 * time.Minute; offset < 2*time.Hour; offset += 20 * time.Minute {
		resp := requestWith(t, rg, "http://chat.test/", cur)
		if resp.StatusCode != 200 {
			t.Fatalf("at %s: %d", offset, resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Name == ck.Name && c.Value != "" {
				cur = c
			}
		}
	}
	offset = 2*time.Hour + time.Minute
	if resp := requestWith(t, rg, "http://chat.test/", cur); resp.StatusCode != http.StatusFound {
		t.Errorf("past the lifetime: %d", resp.StatusCode)
	}
}

func TestSessionKeyRotation(t *testing.T) {
	now := time.Now()
	oldKey, newKey := testKey(1), testKey(77)
	a, _ := newSealer([][]byte{oldKey})
	v := a.seal("session", chatHost, now.Add(time.Hour), []byte("payload"))
	rotated, _ := newSealer([][]byte{newKey, oldKey})
	if p, err := rotated.open("session", chatHost, now, v); err != nil || string(p) != "payload" {
		t.Fatalf("old cookie under rotated keys: %v", err)
	}
	if _, err := rotated.open("session", chatHost, now, rotated.seal("session", chatHost, now.Add(time.Hour), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	dropped, _ := newSealer([][]byte{newKey})
	if _, err := dropped.open("session", chatHost, now, v); err == nil {
		t.Fatal("a cookie sealed under a removed key still opens")
	}
	for name, fn := range map[string]func() error{
		"other purpose": func() error { _, err := a.open("login", chatHost, now, v); return err },
		"other host":    func() error { _, err := a.open("session", filesHost, now, v); return err },
		"expired":       func() error { _, err := a.open("session", chatHost, now.Add(2*time.Hour), v); return err },
		"truncated":     func() error { _, err := a.open("session", chatHost, now, v[:len(v)-3]); return err },
		"garbage":       func() error { _, err := a.open("session", chatHost, now, "%%%"); return err },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestLargeSessionIsChunked(t *testing.T) {
	rg, f := fakeRig(t, nil)
	base := f.claims
	var groups []string
	for i := range 120 {
		groups = append(groups, fmt.Sprintf("group-with-a-rather-long-name-%03d", i))
	}
	f.setClaims(func(n string) map[string]any {
		c := base(n)
		c["groups"] = groups
		return c
	})
	p := rg.get("http://gate.test/.gatehouse/login?rd=" + "http://gate.test/.gatehouse/me")
	if p.Status != 200 || !strings.Contains(p.Body, "group-with-a-rather-long-name-119") {
		t.Fatalf("large session: %d", p.Status)
	}
	n := 0
	for _, c := range rg.b.Client.Jar.Cookies(mustURL("http://gate.test/")) {
		if strings.HasPrefix(c.Name, rg.a.sessionCookie()) {
			n++
			if len(c.Name)+len(c.Value) > 4000 {
				t.Errorf("cookie %s has %d bytes", c.Name, len(c.Value))
			}
		}
	}
	if n < 3 {
		t.Errorf("%d session cookies, want the session split in chunks", n)
	}
}

func TestCookieAttributes(t *testing.T) {
	o := baseOptions("https://idp.example", "gatehouse", "s")
	o.ExternalURL = "https://gate.example.com"
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "https://gate.example.com/", nil)
	now := time.Now()
	s := &Session{ID: randomID(32), Subject: "u", Created: now.UnixMilli(), Expires: now.Add(time.Hour).Unix(), LastSeen: now.Unix()}
	if err := a.saveSession(context.Background(), rec, r, "gate.example.com", s); err != nil {
		t.Fatal(err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("%d cookies", len(cs))
	}
	c := cs[0]
	if c.Name != "__Host-_gatehouse" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie attributes: %+v", c)
	}
	if len(s.ID) < 22 { // 128 bits in base64url
		t.Errorf("session id %q too short", s.ID)
	}
}

func TestRevocationInCookieMode(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	rg.get("http://chat.test/")
	rg.get("http://files.test/")
	chat, files := sessionCookieOf(rg, chatHost), sessionCookieOf(rg, filesHost)
	sid := rg.eventsOf(EventLogin)[0].SessionID
	if err := rg.a.RevokeSession(context.Background(), sid, "test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		u  string
		ck *http.Cookie
	}{{"http://chat.test/", chat}, {"http://files.test/", files}} {
		if resp := requestWith(t, rg, tc.u, tc.ck); resp.StatusCode != http.StatusFound {
			t.Errorf("%s after revocation: %d", tc.u, resp.StatusCode)
		}
	}
	// A new login works; revoking the user ends it too, and later logins are fine.
	p := rg.get("http://chat.test/")
	if p.Status != 200 {
		t.Fatalf("login after revocation: %d", p.Status)
	}
	ck := sessionCookieOf(rg, chatHost)
	if err := rg.a.RevokeUser(context.Background(), "user-1", "test"); err != nil {
		t.Fatal(err)
	}
	if resp := requestWith(t, rg, "http://chat.test/", ck); resp.StatusCode != http.StatusFound {
		t.Errorf("after user revocation: %d", resp.StatusCode)
	}
	time.Sleep(2 * time.Millisecond)
	if p := rg.get("http://files.test/"); p.Status != 200 {
		t.Errorf("login after user revocation: %d", p.Status)
	}
	if n := len(rg.eventsOf(EventSessionRevoked)); n != 2 {
		t.Errorf("%d session_revoked events, want 2", n)
	}
}

func TestAPIClientsGet401NotRedirect(t *testing.T) {
	rg, f := fakeRig(t, func(o *Options) { o.MFA.StepUpACR = "urn:gatehouse:mfa" })
	do := func(method, u string, hdr map[string]string, ck *http.Cookie) *http.Response {
		req, _ := http.NewRequest(method, u, strings.NewReader("a=1"))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if ck != nil {
			req.AddCookie(ck)
		}
		resp, err := rg.manual().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for name, tc := range map[string]struct {
		method string
		hdr    map[string]string
	}{
		"json":  {"GET", map[string]string{"Accept": "application/json"}},
		"xhr":   {"GET", map[string]string{"X-Requested-With": "XMLHttpRequest"}},
		"fetch": {"GET", map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "*/*"}},
		"put":   {"PUT", map[string]string{"Content-Type": "application/json"}},
	} {
		resp := do(tc.method, "http://chat.test/api/x", tc.hdr, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header)
		}
	}
	// A password-only session on an MFA route: RFC 9470.
	base := f.claims
	f.setClaims(func(n string) map[string]any { c := base(n); c["amr"] = []string{"pwd"}; return c })
	rg.get("http://admin.test/") // one honest attempt for the browser
	ck := sessionCookieOf(rg, adminHost)
	resp := do("GET", "http://admin.test/api", map[string]string{"Accept": "application/json"}, ck)
	var body apiError
	_ = jsonDecode(resp, &body)
	wa := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.Contains(wa, `error="insufficient_user_authentication"`) ||
		!strings.Contains(wa, `acr_values="urn:gatehouse:mfa"`) || !strings.Contains(wa, `max_age=43200`) {
		t.Errorf("step-up for API: %d %q", resp.StatusCode, wa)
	}
	if body.Error != "insufficient_user_authentication" || !body.Retry || body.LoginURL == "" {
		t.Errorf("body %+v", body)
	}
}

func TestFormPostIsNotSilentlyLost(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	req, _ := http.NewRequest(http.MethodPost, "http://chat.test/messages", strings.NewReader("text=hello"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := rg.manual().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b := readBody(resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, "was not sent") || !strings.Contains(b, "/.gatehouse/start?rd=") {
		t.Errorf("form post without session: %d %s", resp.StatusCode, b)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// After a step-up on one host, another host's cookie names the superseded
// session; signing out there must end the live central session, not just
// claim success.
func TestLogoutFromHostWithSupersededSession(t *testing.T) {
	rg, f := fakeRig(t, nil)
	base := f.claims
	f.setClaims(func(n string) map[string]any { c := base(n); c["amr"] = []string{"pwd"}; return c })
	rg.get("http://chat.test/")
	f.setClaims(base)
	if p := rg.get("http://admin.test/"); !strings.Contains(p.Body, "mfa=true") {
		t.Fatalf("step-up: %s", p.Body)
	}
	p := rg.get("http://chat.test/.gatehouse/logout")
	form, ok := p.FormWith("csrf")
	if !ok || p.URL.Host != centralHost {
		t.Fatalf("sign-out on chat with a superseded cookie: %s %d %s", p.URL, p.Status, p.Body)
	}
	rg.b.Visited()
	if _, err := rg.b.Submit(p, form, nil); err != nil {
		t.Fatal(err)
	}
	if v := strings.Join(rg.b.Visited(), "\n"); !strings.Contains(v, f.srv.URL+"/logout?") || !strings.Contains(v, "id_token_hint=") {
		t.Errorf("no RP-initiated logout at the IdP:\n%s", v)
	}
	c := rg.manual()
	u := mustURL("http://gate.test/")
	c.Jar.SetCookies(u, rg.b.Client.Jar.Cookies(u))
	if resp := mustGet(t, c, "http://gate.test/.gatehouse/login?rd=http://gate.test/.gatehouse/me"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), f.srv.URL) {
		t.Errorf("central session still alive after sign-out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := len(rg.eventsOf(EventLogout)); n != 1 {
		t.Errorf("%d logout events", n)
	}
}
