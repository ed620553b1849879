package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var alice = Identity{Subject: "alice-sub", Email: "alice@example.com", SessionID: "s1", MFA: true}

func TestPipelineAllowRecordsBeforeUpstream(t *testing.T) {
	rec := &fakeRecorder{}
	var decisionsAtUpstream atomic.Int64
	up, got := echoUpstream(t, func(*http.Request) { decisionsAtUpstream.Store(int64(rec.count(EventDecision))) })
	obs := &fakeObserver{}
	authz := allowAll()
	logger, logs := observedLogger()
	_, front := newTestServer(t, baseConfig(up.URL), stages{
		auth: &fakeAuth{id: alice}, authz: authz, rec: rec, obs: []Observer{obs},
		hdrs: []UpstreamHeaderer{identityHeaderer{"X-Auth-User"}}, logger: logger,
	})
	resp, body := get(t, front, "app.example.com", "/a/./b//c?x=1", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	s := decodeSeen(t, body)
	if s.Path != "/a/b/c" || s.RequestURI != "/a/b/c?x=1" {
		t.Errorf("upstream saw %q (%q), want /a/b/c", s.Path, s.RequestURI)
	}
	if authz.paths[0] != "/a/b/c" {
		t.Errorf("policy judged %q, want /a/b/c", authz.paths[0])
	}
	if s.Header.Get("X-Auth-User") != "alice-sub" {
		t.Errorf("identity header = %q", s.Header.Get("X-Auth-User"))
	}
	if rid := resp.Header.Get("X-Request-Id"); len(rid) != 32 || s.Header.Get("X-Gatehouse-Request-Id") != rid {
		t.Errorf("request id %q / upstream %q", rid, s.Header.Get("X-Gatehouse-Request-Id"))
	}
	if decisionsAtUpstream.Load() != 1 {
		t.Errorf("decision records when the upstream was called = %d, want 1", decisionsAtUpstream.Load())
	}
	eventually(t, func() bool {
		return len(rec.Events()) == 2 && len(obs.all()) == 1 && logs.FilterMessage("request").Len() == 1
	})
	evs := rec.Events()
	if len(evs) != 2 || evs[0].Type != EventDecision || evs[0].Outcome != OutcomeAllow || evs[0].Revision != "rev1" ||
		evs[1].Type != EventCompletion || evs[1].Status != 200 || evs[1].Bytes != int64(len(body)) ||
		evs[0].Subject != "alice-sub" || evs[0].Path != "/a/b/c" || evs[0].Route != "app" {
		t.Errorf("events = %+v", evs)
	}
	cs := obs.all()
	if len(cs) != 1 || cs[0].Bytes != int64(len(body)) || cs[0].Status != 200 || cs[0].Download || cs[0].Identity.Subject != "alice-sub" {
		t.Errorf("completions = %+v", cs)
	}
	if len(*got) != 1 {
		t.Errorf("upstream calls = %d", len(*got))
	}
	entries := logs.FilterMessage("request").All()
	if len(entries) != 1 {
		t.Fatalf("access log lines = %d", len(entries))
	}
	f := entries[0].ContextMap()
	if f["route"] != "app" || f["user"] != "alice@example.com" || f["status"] != int64(200) || f["outcome"] != OutcomeAllow ||
		f["request_id"] != resp.Header.Get("X-Request-Id") || f["bytes"] != int64(len(body)) {
		t.Errorf("access log = %v", f)
	}
}

func TestPipelineStages(t *testing.T) {
	up, got := echoUpstream(t, nil)
	cases := []struct {
		name       string
		host       string
		st         func() stages
		wantStatus int
		wantReason string // in the decision record (or "" when none is written)
		wantStepUp bool
		wantUp     bool
	}{
		{"no authenticator: 503", "app.example.com",
			func() stages { return stages{authz: allowAll(), rec: &fakeRecorder{}} }, 503, "", false, false},
		{"no authorizer: deny no_policy", "app.example.com",
			func() stages { return stages{auth: &fakeAuth{id: alice}, rec: &fakeRecorder{}} }, 403, ReasonNoPolicy, false, false},
		{"no authorizer on public route: deny", "public.example.com",
			func() stages { return stages{rec: &fakeRecorder{}} }, 403, ReasonNoPolicy, false, false},
		{"no recorder: 503", "app.example.com",
			func() stages { return stages{auth: &fakeAuth{id: alice}, authz: allowAll()} }, 503, "", false, false},
		{"recorder fails: 503", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{err: errFake}}
			}, 503, "", false, false},
		{"authenticator error: 503", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{err: errFake}, authz: allowAll(), rec: &fakeRecorder{}}
			}, 503, "", false, false},
		{"authenticator handled: its answer", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{handled: true}, authz: allowAll(), rec: &fakeRecorder{}}
			}, 302, "", false, false},
		{"anonymous on protected route: 403", "app.example.com",
			func() stages { return stages{auth: &fakeAuth{}, authz: allowAll(), rec: &fakeRecorder{}} }, 403, "", false, false},
		{"policy error: deny", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: alice}, authz: &fakeAuthz{err: errFake, dec: Decision{Allow: true}}, rec: &fakeRecorder{}}
			}, 403, ReasonPolicyError, false, false},
		{"policy deny with reason", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: alice}, authz: &fakeAuthz{dec: Decision{Deny: []string{"not_in_finance"}}}, rec: &fakeRecorder{}}
			}, 403, "not_in_finance", false, false},
		{"policy allow with deny set: deny", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: alice}, authz: &fakeAuthz{dec: Decision{Allow: true, Deny: []string{"x"}}}, rec: &fakeRecorder{}}
			}, 403, "x", false, false},
		{"policy no allow: deny", "app.example.com",
			func() stages { return stages{auth: &fakeAuth{id: alice}, authz: &fakeAuthz{}, rec: &fakeRecorder{}} }, 403, ReasonPolicyDeny, false, false},
		{"risk blocked: 403", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: alice}, risk: &fakeRisk{risk: Risk{Blocked: true, Reason: "bulk"}}, authz: allowAll(), rec: &fakeRecorder{}}
			}, 403, ReasonRiskBlocked + ":bulk", false, false},
		{"risk store error, fail closed: 403", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: alice}, risk: &fakeRisk{risk: Risk{Blocked: true}, err: errFake}, authz: allowAll(), rec: &fakeRecorder{}}
			}, 403, ReasonRiskBlocked, false, false},
		{"policy requires MFA, none: step-up", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: Identity{Subject: "bob"}}, authz: &fakeAuthz{dec: Decision{Allow: true, RequireMFA: true}}, rec: &fakeRecorder{}}
			}, 302, ReasonMFARequired, true, false},
		{"route requires MFA, none: step-up", "secure.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: Identity{Subject: "bob"}}, authz: allowAll(), rec: &fakeRecorder{}}
			}, 302, ReasonMFARequired, true, false},
		{"anomaly asks step-up", "app.example.com",
			func() stages {
				return stages{auth: &fakeAuth{id: Identity{Subject: "bob"}}, risk: &fakeRisk{risk: Risk{StepUp: true, Reason: "volume"}}, authz: allowAll(), rec: &fakeRecorder{}}
			}, 302, ReasonMFARequired + ":volume", true, false},
		{"route requires MFA, has it: allow", "secure.example.com",
			func() stages { return stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}} }, 200, "", false, true},
		{"public route: no authenticator needed", "public.example.com",
			func() stages { return stages{authz: allowAll(), rec: &fakeRecorder{}} }, 200, "", false, true},
		{"unknown host: 404", "nope.example.com",
			func() stages { return stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}} }, 404, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.st()
			_, front := newTestServer(t, baseConfig(up.URL), st)
			before := len(*got)
			resp, body := get(t, front, tc.host, "/x", nil)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if reached := len(*got) > before; reached != tc.wantUp {
				t.Errorf("upstream reached = %v, want %v", reached, tc.wantUp)
			}
			if a, ok := st.auth.(*fakeAuth); ok && (len(a.stepUps) > 0) != tc.wantStepUp {
				t.Errorf("step-ups = %v, want %v", a.stepUps, tc.wantStepUp)
			}
			if tc.wantStatus >= 400 && !strings.Contains(body, resp.Header.Get("X-Request-Id")) {
				t.Errorf("error page does not show the request id")
			}
			if strings.Contains(body, "not_in_finance") {
				t.Errorf("error page leaks the policy reason")
			}
			if tc.wantReason != "" {
				rec := st.rec.(*fakeRecorder)
				evs := rec.Events()
				if len(evs) == 0 || evs[0].Type != EventDecision || strings.Join(evs[0].Reasons, ",") != tc.wantReason {
					t.Errorf("decision events = %+v, want reason %s", evs, tc.wantReason)
				}
			}
		})
	}
}

func TestDeniedPageNamesUser(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: &fakeAuthz{}, rec: &fakeRecorder{}})
	resp, body := get(t, front, "app.example.com", "/", nil)
	if resp.StatusCode != 403 || !strings.Contains(body, "alice@example.com") || !strings.Contains(body, resp.Header.Get("X-Request-Id")) {
		t.Fatalf("403 page %d: %s", resp.StatusCode, body)
	}
}

func TestGatehouseHandlersRunFirst(t *testing.T) {
	up, got := echoUpstream(t, nil)
	_, front := newTestServer(t, baseConfig(up.URL), stages{extra: func(w *Wiring) {
		w.Handle("GET /.gatehouse/ping", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("pong " + r.URL.Path))
		}))
	}})
	for _, p := range []string{"/.gatehouse/ping", "/x/../.gatehouse//ping"} {
		resp, body := get(t, front, "unknown.example.com", p, nil)
		if resp.StatusCode != 200 || body != "pong /.gatehouse/ping" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, front, "app.example.com", "/.gatehouse/nothing", nil); resp.StatusCode != 404 {
		t.Errorf("unknown gatehouse path: %d", resp.StatusCode)
	}
	if len(*got) != 0 {
		t.Errorf("upstream reached")
	}
}

func TestPathNormalisationEndToEnd(t *testing.T) {
	up, got := echoUpstream(t, nil)
	authz := allowAll()
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: authz, rec: &fakeRecorder{}})
	addr := hostOnly(front.URL)
	code, body := rawRequest(t, addr, "app.example.com", "/a/./b//c")
	if code != 200 {
		t.Fatalf("/a/./b//c: %d %s", code, body)
	}
	if s := decodeSeen(t, body); s.RequestURI != "/a/b/c" {
		t.Errorf("upstream request line %q, want /a/b/c", s.RequestURI)
	}
	code, body = rawRequest(t, addr, "app.example.com", "/files/caf%C3%A9%20x")
	if s := decodeSeen(t, body); code != 200 || s.Path != "/files/café x" || s.RequestURI != "/files/caf%C3%A9%20x" {
		t.Errorf("encoded path: %d %+v", code, s)
	}
	n := len(*got)
	for _, target := range []string{"/%2e%2e/secret", "/a%2Fb", "/a\\b", "/%00", "/a/../../etc/passwd", "/x;jsessionid=1", "/%252e%252e/", "/%25%32%65%25%32%65/secret", "/files/x?download=1;a=b", "/x?a=%zz"} {
		code, body := rawRequest(t, addr, "app.example.com", target)
		if code != 400 {
			t.Errorf("%s: status %d, want 400", target, code)
		}
		if !strings.Contains(body, "Bad request") {
			t.Errorf("%s: not the 400 page: %s", target, body)
		}
	}
	if len(*got) != n || len(authz.paths) != 2 {
		t.Errorf("refused paths reached policy (%d) or upstream (%d)", len(authz.paths), len(*got)-n)
	}
}

func TestSpoofedHeadersNeverReachUpstream(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	spoofs := map[string]string{
		"X-Forwarded-For":      "6.6.6.6",
		"X_Forwarded_For":      "6.6.6.6",
		"x-forwarded-host":     "evil.example",
		"X-Forwarded-Proto":    "gopher",
		"X-Forwarded-User":     "root",
		"Forwarded":            "for=6.6.6.6",
		"X-Real-Ip":            "6.6.6.6",
		"X_Real_IP":            "6.6.6.6",
		"X-Gatehouse-User":     "root",
		"X_GATEHOUSE_USER":     "root",
		"X-Gatehouse-Groups":   "admins",
		"X-Auth-User":          "root",
		"X_Auth_User":          "root",
		"x-auth-email":         "root@example.com",
		"X-Auth-Groups":        "admins",
		"X-Auth-Roles":         "admin",
		"X-Identity-Assertion": "forged.jwt",
		"Remote-User":          "root",
		"True-Client-IP":       "6.6.6.6",
		"Cookie":               "_gatehouse=sealed; app=1; _gatehouse_1=chunk",
	}
	for _, trusted := range []bool{false, true} {
		cfg := baseConfig(up.URL)
		if trusted {
			cfg.TrustedProxies = []string{"127.0.0.0/8"}
		}
		_, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{},
			hdrs: []UpstreamHeaderer{identityHeaderer{"X-Auth-User"}}})
		resp, body := get(t, front, "app.example.com", "/", spoofs)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		s := decodeSeen(t, body)
		for name, vals := range s.Header {
			for _, v := range vals {
				believed := trusted && name == "X-Forwarded-For"
				if !believed && (strings.Contains(v, "6.6.6.6") || strings.Contains(v, "evil")) || strings.Contains(v, "root") ||
					strings.Contains(v, "admin") || strings.Contains(v, "forged") ||
					strings.Contains(v, "gopher") || strings.Contains(v, "sealed") || strings.Contains(v, "chunk") {
					t.Errorf("trusted=%v: spoofed header reached upstream: %s: %s", trusted, name, v)
				}
			}
			if strings.Contains(name, "_") {
				t.Errorf("trusted=%v: underscore header reached upstream: %s", trusted, name)
			}
		}
		if got := s.Header.Get("X-Auth-User"); got != "alice-sub" {
			t.Errorf("trusted=%v: X-Auth-User = %q, want the proxy's", trusted, got)
		}
		if got := s.Header.Get("Cookie"); got != "app=1" {
			t.Errorf("trusted=%v: Cookie = %q, want app=1", trusted, got)
		}
		wantXFF := "127.0.0.1"
		if trusted {
			wantXFF = "6.6.6.6, 127.0.0.1"
		}
		if got := s.Header.Get("X-Forwarded-For"); got != wantXFF {
			t.Errorf("trusted=%v: X-Forwarded-For = %q, want %q", trusted, got, wantXFF)
		}
		if got := s.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("trusted=%v: X-Forwarded-Proto = %q", trusted, got)
		}
		wantHost := "app.example.com" // the host routed and judged, even from a trusted proxy
		if got := s.Header.Get("X-Forwarded-Host"); got != wantHost {
			t.Errorf("trusted=%v: X-Forwarded-Host = %q, want %q", trusted, got, wantHost)
		}
	}
}

func TestClientIPFromTrustedProxy(t *testing.T) {
	cfg := baseConfig("http://127.0.0.1:1")
	cfg.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.1"}
	hp, err := newHeaderPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ remote, xff, want string }{
		{"203.0.113.9:1234", "1.2.3.4", "203.0.113.9"},
		{"10.1.2.3:1234", "198.51.100.7", "198.51.100.7"},
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7"},
		{"192.0.2.1:1", "10.0.0.1, 10.0.0.2", "10.0.0.1"},
		{"[::ffff:10.1.2.3]:1234", "2001:db8::1", "2001:db8::1"},
		// Hops with ports, as some load balancers write them.
		{"10.1.2.3:1234", "203.0.113.9:51234", "203.0.113.9"},
		{"10.1.2.3:1234", "[2001:db8::1]:443", "2001:db8::1"},
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.7:80, 10.9.9.9:1", "198.51.100.7"},
		// A trusted proxy without a readable chain: the client is unknown,
		// never the proxy itself (inside an office network, say).
		{"10.1.2.3:1234", "", "invalid IP"},
		{"10.1.2.3:1234", "garbage", "invalid IP"},
		{"10.1.2.3:1234", "unknown", "invalid IP"},
		{"10.1.2.3:1234", "198.51.100.7, unknown", "invalid IP"},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := hp.clientIP(r).String(); got != tc.want {
			t.Errorf("clientIP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestDownloadObserved(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	obs := &fakeObserver{}
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}, obs: []Observer{obs}})
	get(t, front, "files.example.com", "/docs/a.pdf", nil)
	get(t, front, "files.example.com", "/docs/a.html", nil)
	eventually(t, func() bool { return len(obs.all()) == 2 })
	dl := map[string]bool{}
	for _, c := range obs.all() {
		if c.Bytes == 0 {
			t.Errorf("%s: no bytes counted", c.Request.Path)
		}
		dl[c.Request.Path] = c.Download
	}
	if len(dl) != 2 || !dl["/docs/a.pdf"] || dl["/docs/a.html"] {
		t.Fatalf("downloads = %v", dl)
	}
}

// cutGuard cancels every request after a delay, as an anomaly block does.
type cutGuard struct{ after time.Duration }

func (g cutGuard) Guard(_ *Request, _ Identity, cut context.CancelCauseFunc) func() {
	t := time.AfterFunc(g.after, func() { cut(errors.New("cut by the test guard")) })
	return func() { t.Stop() }
}

func TestGuardCutsRequest(t *testing.T) {
	up, _ := echoUpstream(t, func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	rec := &fakeRecorder{}
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: rec,
		guards: []RequestGuard{cutGuard{50 * time.Millisecond}}})
	start := time.Now()
	resp, _ := get(t, front, "app.example.com", "/slow", nil)
	if resp.StatusCode != 403 || time.Since(start) > 3*time.Second {
		t.Fatalf("status %d after %v, want a 403 soon", resp.StatusCode, time.Since(start))
	}
	eventually(t, func() bool { return len(rec.Events()) == 2 })
	evs := rec.Events()
	if len(evs) != 2 || evs[1].Type != EventCompletion || evs[1].Fields["reason"] != ReasonGuardCut {
		t.Errorf("events = %+v", evs)
	}
}

// slowCompletion holds completion records until released.
type slowCompletion struct {
	fakeRecorder
	release chan struct{}
}

func (s *slowCompletion) Record(ctx context.Context, ev Event) error {
	if ev.Type == EventCompletion {
		select {
		case <-s.release:
		case <-time.After(5 * time.Second):
		}
	}
	return s.fakeRecorder.Record(ctx, ev)
}

func TestClientAnsweredBeforeCompletionRecord(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	rec := &slowCompletion{release: make(chan struct{})}
	defer close(rec.release)
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: rec})
	req, _ := http.NewRequest("GET", front.URL+"/x", nil)
	req.Host = "app.example.com"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := front.Client().Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if s := decodeSeenReader(t, resp); s.Path != "/x" {
		t.Fatalf("upstream saw %q", s.Path)
	}
	if n := rec.count(EventCompletion); n != 0 {
		t.Fatalf("completion recorded before the test released it: %d", n)
	}
}

// orderGuard notes when its release runs.
type orderGuard struct {
	name string
	log  *[]string
	mu   *sync.Mutex
}

func (g orderGuard) Guard(*Request, Identity, context.CancelCauseFunc) func() {
	return func() {
		g.mu.Lock()
		*g.log = append(*g.log, g.name)
		g.mu.Unlock()
	}
}

// TestGuardsReleasedLastFirst: every guard's release runs once the
// request is done, the last guard's first.
func TestGuardsReleasedLastFirst(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	var mu sync.Mutex
	var log []string
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{},
		guards: []RequestGuard{orderGuard{"a", &log, &mu}, orderGuard{"b", &log, &mu}, orderGuard{"c", &log, &mu}}})
	for range 2 {
		if resp, _ := get(t, front, "app.example.com", "/", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// The client has its answer before the handler returns (the response
	// is flushed before the completion is recorded): wait for the releases.
	eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(log) >= 6 })
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(log, ","); got != "c,b,a,c,b,a" {
		t.Errorf("releases ran %q, want c,b,a per request", got)
	}
}
