package authn

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// manual returns a client of rg's browser network that does not follow
// redirects, with its own cookie jar.
func (rg *rig) manual() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Transport:     rg.b.Client.Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func mustGet(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	resp.Body.Close()
	return resp
}

// walkTo follows redirects with c until the next URL starts with prefix,
// and returns that URL (not requested).
func walkTo(t *testing.T, c *http.Client, start, prefix string) string {
	t.Helper()
	u := start
	for range 10 {
		resp := mustGet(t, c, u)
		loc := resp.Header.Get("Location")
		if loc == "" {
			t.Fatalf("GET %s: status %d, no redirect (looking for %s)", u, resp.StatusCode, prefix)
		}
		next, _ := resp.Request.URL.Parse(loc)
		if strings.HasPrefix(next.String(), prefix) {
			return next.String()
		}
		u = next.String()
	}
	t.Fatalf("no redirect to %s from %s", prefix, start)
	return ""
}

func TestLoginFlowAndSSOAcrossHosts(t *testing.T) {
	rg, f := fakeRig(t, nil)
	p := rg.get("http://chat.test/channels/town?tab=2")
	if p.Status != 200 || !strings.Contains(p.Body, "hello user-1 route=chat mfa=true") {
		t.Fatalf("after login: %d %s", p.Status, p.Body)
	}
	if got := p.URL.String(); got != "http://chat.test/channels/town?tab=2" {
		t.Errorf("landed on %s, want the exact URL first asked for", got)
	}
	if !strings.Contains(p.Body, "email=ana@example.com") || !strings.Contains(p.Body, "groups=finance") {
		t.Errorf("identity headers missing: %s", p.Body)
	}
	q := f.lastAuthorize()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Errorf("authorize request lacks PKCE/nonce/state: %v", q)
	}
	if q.Get("redirect_uri") != "http://gate.test/.gatehouse/callback" {
		t.Errorf("redirect_uri = %s", q.Get("redirect_uri"))
	}
	rg.b.Visited()
	p = rg.get("http://files.test/")
	if p.Status != 200 || !strings.Contains(p.Body, "route=files") {
		t.Fatalf("files after SSO: %d %s", p.Status, p.Body)
	}
	for _, v := range rg.b.Visited() {
		if strings.HasPrefix(v, f.srv.URL) {
			t.Errorf("second host went to the IdP again: %s", v)
		}
	}
	if n := len(rg.eventsOf(EventLogin)); n != 1 {
		t.Errorf("%d login events, want 1", n)
	}
}

func TestIDTokenRejected(t *testing.T) {
	hsWithRSA := func(f *fakeOP) func(map[string]any) string {
		return func(c map[string]any) string {
			der, _ := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := jwt.Signed(s).Claims(c).Serialize()
			return tok
		}
	}
	algNone := func(c map[string]any) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		b, _ := json.Marshal(c)
		return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	}
	tests := []struct {
		name   string
		claims func(c map[string]any)
		sign   func(f *fakeOP) func(map[string]any) string
		atHash string
		reason string
	}{
		{name: "wrong nonce", claims: func(c map[string]any) { c["nonce"] = "attacker-nonce" }, reason: "nonce mismatch"},
		{name: "missing nonce", claims: func(c map[string]any) { delete(c, "nonce") }, reason: "nonce mismatch"},
		{name: "expired", claims: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, reason: "expired"},
		{name: "wrong audience", claims: func(c map[string]any) { c["aud"] = "another-client" }, reason: "audience"},
		{name: "wrong issuer", claims: func(c map[string]any) { c["iss"] = "https://evil.example" }, reason: "different provider"},
		{name: "missing sub", claims: func(c map[string]any) { delete(c, "sub") }, reason: "sub"},
		{name: "alg none", sign: func(*fakeOP) func(map[string]any) string { return algNone }, reason: "unexpected signature algorithm"},
		{name: "HS256 with the RSA public key", sign: hsWithRSA, reason: "unexpected signature algorithm"},
		{name: "at_hash mismatch", atHash: "AAAAAAAAAAAAAAAAAAAAAA", reason: "at_hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rg, f := fakeRig(t, nil)
			base := f.claims
			f.setClaims(func(n string) map[string]any {
				c := base(n)
				if tc.claims != nil {
					tc.claims(c)
				}
				return c
			})
			if tc.sign != nil {
				f.sign = tc.sign(f)
			}
			f.atHash = tc.atHash
			p := rg.get("http://chat.test/")
			if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Sign-in could not be completed") {
				t.Fatalf("status %d, body %s", p.Status, p.Body)
			}
			fails := rg.eventsOf(EventLoginFailure)
			if len(fails) != 1 || len(rg.eventsOf(EventLogin)) != 0 {
				t.Fatalf("events: %+v", rg.events)
			}
			if !strings.Contains(fails[0].Reason, tc.reason) {
				t.Errorf("refused for %q, want a reason containing %q", fails[0].Reason, tc.reason)
			}
			// Still not signed in: the app redirects to sign-in again.
			c := rg.manual()
			for _, ck := range rg.b.Client.Jar.Cookies(&url.URL{Scheme: "http", Host: chatHost}) {
				c.Jar.SetCookies(&url.URL{Scheme: "http", Host: chatHost}, []*http.Cookie{ck})
			}
			if resp := mustGet(t, c, "http://chat.test/"); resp.StatusCode != http.StatusFound {
				t.Errorf("after a rejected token the app answered %d", resp.StatusCode)
			}
		})
	}
}

func TestCallbackBadState(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	c := rg.manual()
	// A login in progress, then a callback carrying a state of the attacker's.
	walkTo(t, c, "http://chat.test/", rg.a.o.Issuer)
	resp := mustGet(t, c, "http://gate.test/.gatehouse/callback?code=x&state=forgedforgedforged")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged state: status %d", resp.StatusCode)
	}
	if ev := rg.eventsOf(EventLoginFailure); len(ev) != 1 || ev[0].Reason != errBadState.Error() {
		t.Errorf("events %+v", ev)
	}
}

func TestLoginStateSingleUse(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	c := rg.manual()
	authorize := walkTo(t, c, "http://chat.test/", rg.a.o.Issuer)
	loginCookies := c.Jar.Cookies(&url.URL{Scheme: "http", Host: centralHost})
	resp := mustGet(t, c, authorize)
	callback := resp.Header.Get("Location")
	if first := mustGet(t, c, callback); first.StatusCode != http.StatusFound {
		t.Fatalf("first callback: %d", first.StatusCode)
	}
	// Replay: same callback URL, the login cookie copied back in.
	c2 := rg.manual()
	c2.Jar.SetCookies(&url.URL{Scheme: "http", Host: centralHost}, loginCookies)
	if again := mustGet(t, c2, callback); again.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed callback: status %d", again.StatusCode)
	}
	if ev := rg.eventsOf(EventLoginFailure); len(ev) != 1 || ev[0].Reason != errReplay.Error() {
		t.Errorf("events %+v", ev)
	}
}

func TestTamperedLoginCookie(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	c := rg.manual()
	authorize := walkTo(t, c, "http://chat.test/", rg.a.o.Issuer)
	gate := &url.URL{Scheme: "http", Host: centralHost}
	var tampered []*http.Cookie
	for _, ck := range c.Jar.Cookies(gate) {
		if strings.HasPrefix(ck.Name, "gh_login_") {
			v := []byte(ck.Value)
			v[len(v)/2] ^= 1
			ck.Value = string(v)
			ck.MaxAge = 600
		}
		tampered = append(tampered, ck)
	}
	c.Jar.SetCookies(gate, tampered)
	callback := mustGet(t, c, authorize).Header.Get("Location")
	if resp := mustGet(t, c, callback); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("tampered login cookie: status %d", resp.StatusCode)
	}
}

func sessionCookieOf(rg *rig, host string) *http.Cookie {
	for _, ck := range rg.b.Client.Jar.Cookies(&url.URL{Scheme: "http", Host: host}) {
		if ck.Name == rg.a.sessionCookie() {
			return ck
		}
	}
	return nil
}

// requestWith sends a GET to u carrying only cookie ck, without redirects.
func requestWith(t *testing.T, rg *rig, u string, ck *http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/html")
	if ck != nil {
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	c := rg.manual()
	c.Jar = nil
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestSessionCookieTamperedOrMoved(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	rg.get("http://chat.test/")
	ck := sessionCookieOf(rg, chatHost)
	if ck == nil {
		t.Fatal("no session cookie on chat.test")
	}
	if resp := requestWith(t, rg, "http://chat.test/", ck); resp.StatusCode != 200 {
		t.Fatalf("valid cookie: %d", resp.StatusCode)
	}
	bad := *ck
	v := []byte(bad.Value)
	v[len(v)-5] ^= 2
	bad.Value = string(v)
	if resp := requestWith(t, rg, "http://chat.test/", &bad); resp.StatusCode != http.StatusFound {
		t.Errorf("tampered cookie: %d, want a redirect to sign in", resp.StatusCode)
	}
	if resp := requestWith(t, rg, "http://files.test/", ck); resp.StatusCode != http.StatusFound {
		t.Errorf("chat's cookie on files.test: %d, want a redirect to sign in", resp.StatusCode)
	}
}

func TestSSOCodeBoundToBrowserAndSingleUse(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	rg.get("http://files.test/") // signed in centrally
	c := rg.manual()
	for _, h := range []string{centralHost} {
		u := &url.URL{Scheme: "http", Host: h}
		c.Jar.SetCookies(u, rg.b.Client.Jar.Cookies(u))
	}
	redeem := walkTo(t, c, "http://chat.test/", "http://chat.test/.gatehouse/callback")
	chat := &url.URL{Scheme: "http", Host: chatHost}
	bindCopy := c.Jar.Cookies(chat)
	// Another browser (no bind cookie) cannot use the code.
	other := rg.manual()
	if resp := mustGet(t, other, redeem); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("code redeemed without the bind cookie: %d", resp.StatusCode)
	}
	if resp := mustGet(t, c, redeem); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://chat.test/" {
		t.Fatalf("own browser: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Replayed with a copy of the bind cookie: the code is spent.
	replay := rg.manual()
	replay.Jar.SetCookies(chat, bindCopy)
	if resp := mustGet(t, replay, redeem); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed code: %d", resp.StatusCode)
	}
}

func TestSSOCodeExpires(t *testing.T) {
	var offset time.Duration
	rg, _ := fakeRig(t, func(o *Options) { o.Clock = func() time.Time { return time.Now().Add(offset) } })
	rg.get("http://files.test/")
	c := rg.manual()
	u := &url.URL{Scheme: "http", Host: centralHost}
	c.Jar.SetCookies(u, rg.b.Client.Jar.Cookies(u))
	redeem := walkTo(t, c, "http://chat.test/", "http://chat.test/.gatehouse/callback")
	offset = ssoCodeTTL + time.Second
	if resp := mustGet(t, c, redeem); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired code: %d", resp.StatusCode)
	}
}

func TestLoginRefusesForeignReturnURL(t *testing.T) {
	rg, f := fakeRig(t, nil)
	for _, rd := range []string{
		"//evil.com/", "/\\evil.com", "https:evil.com", "http:evil.com", "%2F%2Fevil.com", "/%2F%2Fevil.com",
		"http://evil.com/", "http://gate.test@evil.com/", "http://evil.com@chat.test/", "http://chat.test\\@evil.com/",
		"javascript:alert(1)", "http://chat.test.evil.com/", "/\t/evil.com",
	} {
		resp := mustGet(t, rg.manual(), "http://gate.test/.gatehouse/login?rd="+url.QueryEscape(rd))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("rd=%q: status %d location %q", rd, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if q := f.lastAuthorize(); q != nil {
		t.Errorf("a refused return URL still started a login: %v", q)
	}
}

func TestEventsFailClosed(t *testing.T) {
	rg, _ := fakeRig(t, func(o *Options) {
		o.Events = func(_ context.Context, ev Event) error {
			if ev.Type == EventLogin {
				return errTestAudit
			}
			return nil
		}
	})
	p := rg.get("http://chat.test/")
	if p.Status != http.StatusServiceUnavailable || sessionCookieOf(rg, centralHost) != nil {
		t.Fatalf("unrecorded login went through: %d", p.Status)
	}
}

var errTestAudit = errors.New("audit log unavailable")
