package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func servedTest(h string) bool {
	return h == "gate.example.com" || h == "chat.example.com" || h == "files.example.com:8443"
}

func TestSafeReturnURL(t *testing.T) {
	tests := []struct {
		raw, want string
		ok        bool
	}{
		{"/", "https://chat.example.com/", true},
		{"/a/b?c=d&e=%2F", "https://chat.example.com/a/b?c=d&e=%2F", true},
		{"https://chat.example.com/x?y=1#frag", "https://chat.example.com/x?y=1#frag", true},
		{"https://files.example.com:8443/f.pdf", "https://files.example.com:8443/f.pdf", true},
		{"HTTPS://CHAT.EXAMPLE.COM/", "HTTPS://CHAT.EXAMPLE.COM/", true},
		{"https://chat.example.com", "https://chat.example.com", true},
		// Refused: every way to point a browser elsewhere.
		{raw: "//evil.com"},
		{raw: "//evil.com/path"},
		{raw: "/\\evil.com"},
		{raw: "\\\\evil.com"},
		{raw: "/%5Cevil.com"},
		{raw: "https:evil.com"},
		{raw: "https:/evil.com"},
		{raw: "https:///evil.com"},
		{raw: "%2F%2Fevil.com"},
		{raw: "/%2F%2Fevil.com"},
		{raw: "/%2f/evil.com"},
		{raw: "https://evil.com/"},
		{raw: "https://chat.example.com.evil.com/"},
		{raw: "https://chat.example.com@evil.com/"},
		{raw: "https://evil.com@chat.example.com/"},
		{raw: "https://user:pw@chat.example.com/"},
		{raw: "https://chat.example.com%40evil.com/"},
		{raw: "https://chat.example.com\\@evil.com/"},
		{raw: "http://chat.example.com/"}, // wrong scheme
		{raw: "javascript:alert(1)"},
		{raw: "data:text/html,hi"},
		{raw: "/\t/evil.com"},
		{raw: "/\n/evil.com"},
		{raw: " /x"},
		{raw: "https://files.example.com/"}, // port differs
		{raw: "https://chat.example.com./"},
		{raw: "https://[::1]/"},
		{raw: "relative/path"},
		{raw: "?q=1"},
		{raw: ""},
		{raw: "/\u00e9vil"},
		{raw: "/" + strings.Repeat("a", maxReturnURL)},
	}
	for _, tc := range tests {
		got, ok := SafeReturnURL(tc.raw, "https", "chat.example.com", servedTest)
		if ok != tc.ok || got != tc.want {
			t.Errorf("SafeReturnURL(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := SafeReturnURL("/x", "https", "evil.com", servedTest); ok {
		t.Error("relative URL on an unserved current host accepted")
	}
}

// FuzzSafeReturnURL: whatever is accepted parses to a served host with the
// expected scheme and no userinfo, and is unchanged by a browser's
// stripping of tabs and newlines.
func FuzzSafeReturnURL(f *testing.F) {
	for _, s := range []string{"/", "/a?b", "//evil.com", "/\\evil.com", "https:evil.com", "%2F%2Fevil.com",
		"https://chat.example.com@evil.com", "https://chat.example.com/x", "https://files.example.com:8443/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeReturnURL(raw, "https", "chat.example.com", servedTest)
		if !ok {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted %q -> %q does not parse: %v", raw, got, err)
		}
		if !strings.EqualFold(u.Scheme, "https") || u.User != nil || u.Opaque != "" || !servedTest(strings.ToLower(u.Host)) {
			t.Fatalf("accepted %q -> %q: scheme %q host %q user %v", raw, got, u.Scheme, u.Host, u.User)
		}
		if strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("accepted %q with characters browsers rewrite", raw)
		}
	})
}

func TestEvaluateMFA(t *testing.T) {
	now := time.Unix(1_764_000_000, 0)
	o := MFAOptions{AMRAny: []string{"otp", "hwk"}, ACRAny: []string{"urn:mfa"}, MaxAge: time.Hour}
	tests := []struct {
		name string
		amr  []string
		acr  string
		at   time.Time
		want bool
	}{
		{"otp fresh", []string{"pwd", "otp"}, "", now.Add(-time.Minute), true},
		{"acr", []string{"pwd"}, "urn:mfa", now.Add(-time.Minute), true},
		{"password only", []string{"pwd"}, "urn:pwd", now.Add(-time.Minute), false},
		{"nothing (Dex)", nil, "", time.Time{}, false},
		{"too old", []string{"otp"}, "", now.Add(-2 * time.Hour), false},
		{"no auth_time with max_age", []string{"otp"}, "", time.Time{}, false},
		{"auth_time far in the future", []string{"otp"}, "", now.Add(time.Hour), false},
	}
	for _, tc := range tests {
		if got := EvaluateMFA(o, tc.amr, tc.acr, tc.at, now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	o.MaxAge = 0
	if !EvaluateMFA(o, []string{"hwk"}, "", time.Time{}, now) {
		t.Error("without max_age, missing auth_time should not matter")
	}
}

func TestClaimsMapping(t *testing.T) {
	claims := map[string]any{
		"sub": "u1", "email": "u@example.com", "name": "U",
		"realm_access": map[string]any{"roles": []any{"admin", "staff"}},
		"groups":       "single",
		"dotted.key":   []any{"literal"},
		"amr":          []any{"pwd", "otp"}, "acr": "urn:x", "auth_time": float64(1764000000),
	}
	p, err := readProfile(ClaimNames{Groups: "groups", Roles: "realm_access.roles", Email: "email", Name: "name"}, claims)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "u1" || p.Email != "u@example.com" || strings.Join(p.Roles, ",") != "admin,staff" ||
		strings.Join(p.Groups, ",") != "single" || p.ACR != "urn:x" || p.AuthTime.Unix() != 1764000000 || len(p.AMR) != 2 {
		t.Errorf("profile %+v", p)
	}
	if v, ok := ClaimPath(claims, "dotted.key"); !ok || v.([]any)[0] != "literal" {
		t.Error("a key containing a dot is not found")
	}
	for name, c := range map[string]map[string]any{
		"no sub":            {"email": "x"},
		"groups of numbers": {"sub": "u", "groups": []any{1.0}},
		"email not string":  {"sub": "u", "email": 3.0},
		"bad auth_time":     {"sub": "u", "auth_time": "yesterday"},
		"roles path object": {"sub": "u", "realm_access": map[string]any{"roles": map[string]any{}}},
	} {
		if _, err := readProfile(ClaimNames{Groups: "groups", Roles: "realm_access.roles", Email: "email", Name: "name"}, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	ok := baseOptions("https://idp.example", "c", "s")
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Options){
		"HS256 allowed": func(o *Options) { o.AllowedAlgs = []string{"RS256", "HS256"} },
		"none allowed":  func(o *Options) { o.AllowedAlgs = []string{"none"} },
		"short key":     func(o *Options) { o.Session.Keys = [][]byte{[]byte("short")} },
		"no key":        func(o *Options) { o.Session.Keys = nil },
		"no issuer":     func(o *Options) { o.Issuer = "" },
		"bad external":  func(o *Options) { o.ExternalURL = "gate.example.com" },
		"long ttl":      func(o *Options) { o.Assertion.TTL = 5 * time.Minute },
		"server no store": func(o *Options) {
			o.ServerSide = true
			o.Store = nil
		},
	} {
		o := baseOptions("https://idp.example", "c", "s")
		mod(&o)
		if _, err := New(o); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

func TestAssertionVerifiesWithJWKS(t *testing.T) {
	rg, _ := fakeRig(t, nil)
	id := Identity{Subject: "u1", Email: "u@example.com", Groups: []string{"finance", "bad,group"}, SessionID: "s1", MFA: true}
	h := http.Header{}
	h.Set("X-Gatehouse-User", "spoofed")
	h.Set("X-Gatehouse-Assertion", "spoofed")
	if err := rg.a.UpstreamHeaders("files", id, h); err != nil {
		t.Fatal(err)
	}
	if h.Get("X-Gatehouse-User") != "u1" || h.Get("X-Gatehouse-Groups") != "finance" {
		t.Errorf("headers %v", h)
	}
	p := rg.get("http://files.test/.gatehouse/jwks.json")
	var set jose.JSONWebKeySet
	if err := jsonUnmarshal(p.Body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v %s", err, p.Body)
	}
	tok, err := jwt.ParseSigned(h.Get("X-Gatehouse-Assertion"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c AssertionClaims
	if err := tok.Claims(set.Keys[0].Key, &c); err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	if err := c.Claims.Validate(jwt.Expected{Issuer: "http://gate.test", AnyAudience: jwt.Audience{"files"}, Time: time.Now()}); err != nil {
		t.Error(err)
	}
	if c.Subject != "u1" || c.Email != "u@example.com" || !c.MFA || c.Expiry.Time().Sub(c.IssuedAt.Time()) > MaxAssertTTL {
		t.Errorf("claims %+v", c)
	}
	// Anonymous: spoofed headers are removed, nothing is added.
	h = http.Header{"X-Gatehouse-User": {"admin"}, "X-Gatehouse-Email": {"x"}, "X-Gatehouse-Assertion": {"forged"}}
	_ = rg.a.UpstreamHeaders("files", Identity{}, h)
	if len(h) != 0 {
		t.Errorf("anonymous request kept %v", h)
	}
}

func TestForwardAuth(t *testing.T) {
	deny := false
	rg, _ := fakeRig(t, func(o *Options) {
		o.Hosts = append(o.Hosts, "chat.test:8443", "noroute.test")
		o.Authorize = func(_ context.Context, r *http.Request, route Route, id Identity) (Verdict, error) {
			return Verdict{Allow: !deny}, nil
		}
	})
	rg.get("http://chat.test/")
	ck := sessionCookieOf(rg, chatHost)
	// nginx as docs/authn.md configures it: the subrequest's Host is the
	// app's ($host), X-Original-Method the client's method.
	nginxReq := func(orig string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, "http://gate.test/.gatehouse/auth", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		req.Header.Set("X-Original-URL", orig)
		req.Header.Set("X-Original-Method", "GET")
		if u, err := url.Parse(orig); err == nil {
			req.Host = u.Host
		}
		return req
	}
	ask := func(hdr map[string]string, ck *http.Cookie) *http.Response {
		req := httptest.NewRequest(http.MethodGet, "http://gate.test/.gatehouse/auth", nil)
		if o, ok := hdr["X-Original-URL"]; ok {
			req = nginxReq(o)
		}
		req.RemoteAddr = "127.0.0.1:5555"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if ck != nil {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		rg.a.Handler().ServeHTTP(rec, req)
		return rec.Result()
	}
	nginx := map[string]string{"X-Original-URL": "http://chat.test/room/1"}
	if r := ask(nginx, ck); r.StatusCode != 200 || r.Header.Get("X-Gatehouse-User") != "user-1" || r.Header.Get("X-Gatehouse-Assertion") == "" {
		t.Errorf("signed in: %d %v", r.StatusCode, r.Header)
	}
	if r := ask(nginx, nil); r.StatusCode != 401 || !strings.Contains(r.Header.Get("Location"), "/.gatehouse/start?rd=") {
		t.Errorf("no session (nginx): %d %v", r.StatusCode, r.Header)
	}
	// Without the proxy's normaliser, a path a second parser could read
	// differently is refused, not routed by its raw prefix.
	for _, raw := range []string{"http://chat.test/room/../admin", "http://chat.test/room/%2e%2e/admin", "http://chat.test//admin"} {
		if r := ask(map[string]string{"X-Original-URL": raw}, ck); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", raw, r.StatusCode)
		}
	}
	// The app's own cookies come back without the session cookie, for the
	// proxy to send upstream in place of the Cookie header.
	{
		req := nginxReq("http://chat.test/room/1")
		req.Header.Set("Cookie", "theme=dark; "+ck.Name+"="+ck.Value+"; lang=en")
		rec := httptest.NewRecorder()
		rg.a.Handler().ServeHTTP(rec, req)
		if got := rec.Result().Header.Values(ForwardCookieHeader); rec.Code != 200 || len(got) != 1 || got[0] != "theme=dark; lang=en" {
			t.Errorf("%s = %q (%d), want the app's cookies only", ForwardCookieHeader, got, rec.Code)
		}
	}
	if r := ask(nginx, ck); r.Header.Get(ForwardCookieHeader) != "" || len(r.Header.Values(ForwardCookieHeader)) != 1 {
		t.Errorf("only the session cookie: %s = %q, want present and empty", ForwardCookieHeader, r.Header.Values(ForwardCookieHeader))
	}
	traefik := map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "chat.test", "X-Forwarded-Uri": "/room/1", "Accept": "text/html"}
	if r := ask(traefik, nil); r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), "http://chat.test/.gatehouse/start?rd=") {
		t.Errorf("no session (traefik): %d %v", r.StatusCode, r.Header)
	}
	if r := ask(map[string]string{"X-Original-URL": "http://evil.test/"}, ck); r.StatusCode != 403 {
		t.Errorf("unserved host: %d", r.StatusCode)
	}
	if r := ask(map[string]string{"X-Original-URL": "http://files.test/"}, ck); r.StatusCode != 401 {
		t.Errorf("chat's cookie for files: %d", r.StatusCode)
	}
	// A host written with a port finds its route; a served host without a route is refused.
	rg.get("http://chat.test:8443/")
	var portCookie *http.Cookie
	for _, c := range rg.b.Client.Jar.Cookies(mustURL("http://chat.test:8443/")) {
		if c.Name == rg.a.sessionCookie() {
			portCookie = c
		}
	}
	r := ask(map[string]string{"X-Original-URL": "http://chat.test:8443/x"}, portCookie)
	if tok, err := jwt.ParseSigned(r.Header.Get("X-Gatehouse-Assertion"), []jose.SignatureAlgorithm{jose.ES256}); r.StatusCode != 200 || err != nil {
		t.Errorf("route host with a port: %d %v", r.StatusCode, err)
	} else {
		var c jwt.Claims
		_ = tok.UnsafeClaimsWithoutVerification(&c)
		if len(c.Audience) != 1 || c.Audience[0] != "chat" {
			t.Errorf("assertion audience %v, want the route name", c.Audience)
		}
	}
	if r := ask(map[string]string{"X-Original-URL": "http://noroute.test/"}, ck); r.StatusCode != 403 {
		t.Errorf("no route: %d, want 403", r.StatusCode)
	}
	deny = true
	if r := ask(nginx, ck); r.StatusCode != 403 || r.Header.Get("X-Gatehouse-User") != "" {
		t.Errorf("denied: %d %v", r.StatusCode, r.Header)
	}
	deny = false
	// nginx tricks: another host judged than served, the method left out
	// (nginx's subrequest is always GET), a fragment hiding the path.
	hostTrick := nginxReq("http://chat.test/room/1")
	hostTrick.Host = "files.test"
	methodless := nginxReq("http://chat.test/room/1")
	methodless.Header.Del("X-Original-Method")
	for name, req := range map[string]*http.Request{"another host": hostTrick, "no method": methodless,
		"fragment": nginxReq("http://chat.test/pub#/../admin")} {
		req.AddCookie(ck)
		rec := httptest.NewRecorder()
		rg.a.Handler().ServeHTTP(rec, req)
		if rec.Code == 200 {
			t.Errorf("%s: 200", name)
		}
	}
	// The method judged is the client's, not the subrequest's GET, and a
	// client's X-Forwarded-Method does not override it behind nginx.
	var judged []string
	rg.a.o.Authorize = func(_ context.Context, r *http.Request, route Route, id Identity) (Verdict, error) {
		judged = append(judged, r.Method)
		return Verdict{Allow: true}, nil
	}
	del := nginxReq("http://chat.test/room/1")
	del.Header.Set("X-Original-Method", "DELETE")
	del.Header.Set("X-Forwarded-Method", "GET")
	del.AddCookie(ck)
	rg.a.Handler().ServeHTTP(httptest.NewRecorder(), del)
	if len(judged) != 1 || judged[0] != "DELETE" {
		t.Errorf("judged methods %v, want [DELETE]", judged)
	}
	req := httptest.NewRequest(http.MethodGet, "http://gate.test/.gatehouse/auth", nil)
	req.RemoteAddr = "203.0.113.9:4444"
	req.Header.Set("X-Original-URL", "http://chat.test/")
	req.AddCookie(ck)
	rec := httptest.NewRecorder()
	rg.a.Handler().ServeHTTP(rec, req)
	if rec.Code != 403 {
		t.Errorf("untrusted caller: %d", rec.Code)
	}
}

func TestLogoutEverywhere(t *testing.T) {
	rg, f := fakeRig(t, nil)
	rg.get("http://chat.test/")
	rg.get("http://files.test/")
	chat := sessionCookieOf(rg, chatHost)
	// GET alone never signs out.
	p := rg.get("http://files.test/.gatehouse/logout")
	form, ok := p.FormWith("csrf")
	if p.Status != 200 || !ok {
		t.Fatalf("confirm page: %d %s", p.Status, p.Body)
	}
	if resp := requestWith(t, rg, "http://chat.test/", chat); resp.StatusCode != 200 {
		t.Fatalf("a GET of the logout page signed out: %d", resp.StatusCode)
	}
	// A POST without the token is refused.
	bad := form
	bad.Values = url.Values{"csrf": {"forged"}}
	if p2, err := rg.b.Submit(p, bad, nil); err != nil || p2.Status != http.StatusForbidden {
		t.Fatalf("forged csrf: %v %d", err, p2.Status)
	}
	rg.b.Visited()
	if _, err := rg.b.Submit(p, form, nil); err != nil {
		t.Fatal(err)
	}
	visited := strings.Join(rg.b.Visited(), "\n")
	if !strings.Contains(visited, f.srv.URL+"/logout?") || !strings.Contains(visited, "id_token_hint=") {
		t.Errorf("no RP-initiated logout at the IdP:\n%s", visited)
	}
	if resp := requestWith(t, rg, "http://chat.test/", chat); resp.StatusCode != http.StatusFound {
		t.Errorf("chat cookie copied before logout still works: %d", resp.StatusCode)
	}
	if sessionCookieOf(rg, centralHost) != nil || sessionCookieOf(rg, filesHost) != nil {
		t.Error("session cookies not cleared")
	}
	if n := len(rg.eventsOf(EventLogout)); n != 1 {
		t.Errorf("%d logout events", n)
	}
}

func TestStoreErrorFailsClosed(t *testing.T) {
	rg, _ := fakeRig(t, func(o *Options) { o.Store = &brokenStore{MemoryStore: NewMemoryStore()} })
	rg.get("http://chat.test/")
	ck := sessionCookieOf(rg, chatHost)
	rg.a.o.Store.(*brokenStore).broken = true
	if resp := requestWith(t, rg, "http://chat.test/", ck); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("revocation list unreadable: %d, want 503", resp.StatusCode)
	}
}

type brokenStore struct {
	*MemoryStore
	broken bool
}

func (b *brokenStore) Revoked(ctx context.Context, id, sub string, c time.Time) (bool, error) {
	if b.broken {
		return false, errors.New("store down")
	}
	return b.MemoryStore.Revoked(ctx, id, sub, c)
}

func TestStripCookies(t *testing.T) {
	o := baseOptions("https://idp.example", "c", "s")
	o.ExternalURL = "https://gate.example.com"
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Cookie": {"app=1; __Host-_gatehouse=sealed; __Host-_gatehouse-1=more", "__Host-gh_sso_abcdefgh=x; theme=dark; __Host-gh_login_12345678=y"}}
	a.StripCookies(h)
	if got := h.Get("Cookie"); got != "app=1; theme=dark" || len(h.Values("Cookie")) != 1 {
		t.Errorf("Cookie after strip: %q", h.Values("Cookie"))
	}
}

// TestForwardAuthPublicRouteJudged: a public route needs no login, but its
// anonymous requests are still judged by policy, as in the pipeline.
func TestForwardAuthPublicRouteJudged(t *testing.T) {
	allow := true
	var judged []string
	rg, _ := fakeRig(t, func(o *Options) {
		o.RouteFor = func(host, path string) (Route, bool) {
			return Route{Name: "pub", Host: "chat.test", Public: true}, true
		}
		o.Authorize = func(_ context.Context, r *http.Request, route Route, id Identity) (Verdict, error) {
			judged = append(judged, r.URL.Path+" "+id.Subject)
			return Verdict{Allow: allow}, nil
		}
	})
	ask := func() int {
		req := httptest.NewRequest(http.MethodGet, "http://chat.test/.gatehouse/auth", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		req.Header.Set("X-Original-URL", "http://chat.test/pub/page")
		req.Header.Set("X-Original-Method", "GET")
		rec := httptest.NewRecorder()
		rg.a.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := ask(); code != 200 || len(judged) != 1 || judged[0] != "/pub/page " {
		t.Fatalf("allowed public request: %d, judged %q", code, judged)
	}
	allow = false
	if code := ask(); code != http.StatusForbidden {
		t.Fatalf("public request the policy denies: %d, want 403", code)
	}
}

// TestStepUpFromMFASession: an anomaly's step-up asks a session that has
// MFA for a fresh proof (prompt=login at the IdP) instead of handing the
// same session back, which would loop; forward-auth challenges on it too.
func TestStepUpFromMFASession(t *testing.T) {
	rg, f := fakeRig(t, nil)
	rg.get("http://chat.test/")
	f.mu.Lock()
	first := f.last.Get("prompt")
	f.mu.Unlock()
	if first == "login" {
		t.Fatal("the first login already asked for prompt=login")
	}

	// Forward-auth: a verdict asking for a step-up challenges a session
	// that has MFA.
	authorize := rg.a.o.Authorize
	rg.a.o.Authorize = func(context.Context, *http.Request, Route, Identity) (Verdict, error) {
		return Verdict{StepUp: true}, nil
	}
	req := httptest.NewRequest(http.MethodGet, "http://chat.test/.gatehouse/auth", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("X-Original-URL", "http://chat.test/room/1")
	req.Header.Set("X-Original-Method", "GET")
	req.AddCookie(sessionCookieOf(rg, chatHost))
	rec := httptest.NewRecorder()
	rg.a.Handler().ServeHTTP(rec, req)
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(loc, "mfa=1") || !strings.Contains(loc, "step=1") {
		t.Fatalf("forward-auth with an anomaly step-up: %d %v, want 401 to an MFA step-up sign-in", rec.Code, rec.Header())
	}
	rg.a.o.Authorize = authorize
	// Following it (as nginx's @login does) reaches the IdP with
	// prompt=login, instead of bouncing back to the app.
	rg.get(loc)
	f.mu.Lock()
	viaStart := f.last.Get("prompt")
	f.mu.Unlock()
	if viaStart != "login" {
		t.Fatalf("the forward-auth step-up did not reach the IdP with prompt=login (prompt %q)", viaStart)
	}
	rg.get("http://chat.test/")

	// The central login with step=1 goes back to the IdP with prompt=login.
	rg.get("http://gate.test" + PathLogin + "?" + url.Values{"rd": {"http://gate.test/"}, "mfa": {"1"}, "step": {"1"}}.Encode())
	f.mu.Lock()
	again := f.last.Get("prompt")
	f.mu.Unlock()
	if again != "login" {
		t.Fatalf("a step-up from an MFA session did not go to the IdP with prompt=login (prompt %q)", again)
	}
}

// TestStepUpWithoutFreshAuthDoesNotLoop: an IdP that answers a step-up
// without authenticating again (an auth_time from before the login) is not
// asked again at once: the next step-up hands the session back, so the
// user sees why instead of a redirect loop.
func TestStepUpWithoutFreshAuthDoesNotLoop(t *testing.T) {
	rg, f := fakeRig(t, nil)
	rg.get("http://chat.test/")
	orig := f.claims
	f.claims = func(nonce string) map[string]any {
		c := orig(nonce)
		c["auth_time"] = time.Now().Add(-2 * time.Hour).Unix()
		return c
	}
	stepUp := "http://gate.test" + PathLogin + "?" + url.Values{"rd": {"http://gate.test/"}, "mfa": {"1"}, "step": {"1"}}.Encode()
	rg.get(stepUp)
	f.mu.Lock()
	state1 := f.last.Get("state")
	f.mu.Unlock()
	rg.get(stepUp)
	f.mu.Lock()
	state2 := f.last.Get("state")
	f.mu.Unlock()
	if state1 == "" || state1 != state2 {
		t.Fatalf("the IdP was asked again right after a step-up that did not re-authenticate (states %q, %q)", state1, state2)
	}
	// Behind forward-auth the start page says why, instead of sending the
	// browser round again.
	rg.get("http://chat.test/")
	p := rg.get("http://chat.test" + PathStart + "?" + url.Values{"rd": {"http://chat.test/x"}, "mfa": {"1"}, "step": {"1"}}.Encode())
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "ulti-factor") {
		t.Fatalf("start after a fruitless step-up: %d\n%s", p.Status, p.Body)
	}
}
