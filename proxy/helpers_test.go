package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Fake stages: each records what it saw and answers as told.

type fakeAuth struct {
	mu      sync.Mutex
	id      Identity
	handled bool
	err     error
	calls   int
	stepUps []string
}

func (a *fakeAuth) Authenticate(w http.ResponseWriter, _ *Request) (Identity, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.handled {
		http.Redirect(w, &http.Request{}, "https://idp.example/login", http.StatusFound)
	}
	return a.id, a.handled, a.err
}

func (a *fakeAuth) StepUp(w http.ResponseWriter, _ *Request, _ Identity, reason string) {
	a.mu.Lock()
	a.stepUps = append(a.stepUps, reason)
	a.mu.Unlock()
	w.Header().Set("Location", "https://idp.example/stepup")
	w.WriteHeader(http.StatusFound)
}

type fakeRisk struct {
	risk Risk
	err  error
}

func (f *fakeRisk) Assess(context.Context, *Request, Identity) (Risk, error) { return f.risk, f.err }

type fakeAuthz struct {
	mu    sync.Mutex
	dec   Decision
	err   error
	paths []string
}

func (f *fakeAuthz) Decide(_ context.Context, req *Request, _ Identity, _ Risk) (Decision, error) {
	f.mu.Lock()
	f.paths = append(f.paths, req.Path)
	f.mu.Unlock()
	return f.dec, f.err
}

func allowAll() *fakeAuthz { return &fakeAuthz{dec: Decision{Allow: true, Revision: "rev1"}} }

type fakeRecorder struct {
	mu     sync.Mutex
	events []Event
	err    error
}

func (f *fakeRecorder) Record(_ context.Context, ev Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	ev.InputJSON = bytes.Clone(ev.InputJSON) // Recorder contract: the pipeline reuses the buffer
	f.events = append(f.events, ev)
	return nil
}

func (f *fakeRecorder) Events() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.events...)
}

func (f *fakeRecorder) count(typ string) int {
	n := 0
	for _, e := range f.Events() {
		if e.Type == typ {
			n++
		}
	}
	return n
}

type fakeObserver struct {
	mu sync.Mutex
	cs []Completion
}

func (f *fakeObserver) Observe(_ context.Context, c Completion) {
	f.mu.Lock()
	f.cs = append(f.cs, c)
	f.mu.Unlock()
}

func (f *fakeObserver) all() []Completion {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Completion(nil), f.cs...)
}

// identityHeaderer sets the configured user header, as authn's will.
type identityHeaderer struct{ name string }

func (h identityHeaderer) UpstreamHeaders(_ *Request, id Identity, hd http.Header) {
	if id.Subject != "" {
		hd.Set(h.name, id.Subject)
	}
}

// stages is what a test plugs into the pipeline.
type stages struct {
	auth   Authenticator
	risk   RiskAssessor
	authz  Authorizer
	rec    Recorder
	obs    []Observer
	hdrs   []UpstreamHeaderer
	guards []RequestGuard
	extra  func(w *Wiring)
	logger *zap.Logger
}

// seen is what the echo upstream received.
type seen struct {
	Path, RawPath, RequestURI, Host string
	Header                          http.Header
}

// echoUpstream answers with a JSON description of the request it got.
func echoUpstream(t *testing.T, before func(r *http.Request)) (*httptest.Server, *[]seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if before != nil {
			before(r)
		}
		s := seen{Path: r.URL.Path, RawPath: r.URL.RawPath, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func baseConfig(upstream string) *config.Config {
	return &config.Config{
		Listen:      "127.0.0.1:0",
		AdminListen: "127.0.0.1:0",
		Identity: config.Identity{
			Headers:   config.IdentityHeaders{User: "X-Auth-User", Email: "X-Auth-Email", Groups: "X-Auth-Groups", Roles: "X-Auth-Roles"},
			Assertion: config.Assertion{Header: "X-Identity-Assertion"},
		},
		Session: config.Session{Cookie: "_gatehouse"},
		Log:     config.Log{Access: true},
		Routes: []config.Route{
			{Name: "app", Host: "app.example.com", Upstream: upstream, MFA: "optional"},
			{Name: "public", Host: "public.example.com", Upstream: upstream, Public: true},
			{Name: "secure", Host: "secure.example.com", Upstream: upstream, MFA: "required"},
			{Name: "ws", Host: "ws.example.com", Upstream: upstream, WebSockets: true},
			{Name: "files", Host: "files.example.com", Upstream: upstream, Downloads: config.Downloads{Paths: []string{"*.pdf"}, ContentTypes: []string{"application/octet-stream"}}},
		},
	}
}

// newTestServer builds a Server with the given stages (no registered
// builders) and serves its pipeline over plain HTTP.
func newTestServer(t *testing.T, cfg *config.Config, st stages) (*Server, *httptest.Server) {
	t.Helper()
	if st.logger == nil {
		st.logger = zap.NewNop()
	}
	b := func(_ context.Context, w *Wiring) error {
		w.Auth, w.Risk, w.Authz, w.Recorder = st.auth, st.risk, st.authz, st.rec
		w.Observers = st.obs
		for _, h := range st.hdrs {
			w.AddUpstreamHeaderer(h)
		}
		for _, g := range st.guards {
			w.AddGuard(g)
		}
		if st.extra != nil {
			st.extra(w)
		}
		return nil
	}
	s, err := New(context.Background(), cfg, Options{Logger: st.logger, Builders: []Builder{b}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(s)
	t.Cleanup(front.Close)
	return s, front
}

// get sends a request for host+path to the front server.
func get(t *testing.T, front *httptest.Server, host, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = []string{v} // exactly as spelled
	}
	c := *front.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// rawRequest writes a request line byte for byte (no client-side cleaning)
// and returns the status code.
func rawRequest(t *testing.T, addr, host, target string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response for %q: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func decodeSeen(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("upstream answer %q: %v", body, err)
	}
	return s
}

// observedLogger captures log entries.
func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

var errFake = errors.New("fake failure")

func hostOnly(u string) string { return strings.TrimPrefix(u, "http://") }

// eventually waits for cond: completion records and observers run after the
// response has reached the client.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decodeSeenReader(t *testing.T, resp *http.Response) seen {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return decodeSeen(t, string(b))
}
