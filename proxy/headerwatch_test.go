package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// headerTimeoutServer is a pipeline in front of up whose upstream header
// timeout is d, with its recorder.
func headerTimeoutServer(t *testing.T, up string, d time.Duration) (*Server, *fakeRecorder, func(method, path string, body io.Reader) (*http.Response, string)) {
	t.Helper()
	cfg := baseConfig(up)
	cfg.Timeouts.UpstreamHeader = config.Duration(d)
	rec := &fakeRecorder{}
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: rec})
	do := func(method, path string, body io.Reader) (*http.Response, string) {
		req, err := http.NewRequest(method, front.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "app.example.com"
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	return s, rec, do
}

// completionReason is the reason of the completion of the request with
// the given id.
func completionReason(rec *fakeRecorder, id string) (string, bool) {
	for _, ev := range rec.Events() {
		if ev.Type == EventCompletion && ev.RequestID == id {
			r, _ := ev.Fields["reason"].(string)
			return r, true
		}
	}
	return "", false
}

// TestUpstreamHeaderTimeout holds headerWatch to what the transport's
// ResponseHeaderTimeout did: slow headers are a 502 and an upstream
// failure (not a guard cut); a slow body after the headers, and a slow
// upload before them, are not cut.
func TestUpstreamHeaderTimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/slow-headers", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/slow-body", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for i := range 6 {
			fmt.Fprintf(w, "part %d\n", i)
			http.NewResponseController(w).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "got %d bytes", n)
	})
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	_, rec, do := headerTimeoutServer(t, up.URL, 200*time.Millisecond)

	start := time.Now()
	resp, page := do("GET", "/slow-headers", nil)
	if resp.StatusCode != http.StatusBadGateway || time.Since(start) > 2*time.Second {
		t.Errorf("slow headers: %d after %v, want 502 after ~200ms", resp.StatusCode, time.Since(start))
	}
	// The page names the application the user asked for (the reverse
	// proxy hands the error handler its outbound request, Host "").
	if !strings.Contains(page, "<strong>app.example.com</strong>") {
		t.Errorf("502 page does not name app.example.com:\n%s", page)
	}
	id := resp.Header.Get("X-Request-Id")
	eventually(t, func() bool { _, ok := completionReason(rec, id); return ok })
	if r, _ := completionReason(rec, id); r != ReasonUpstream {
		t.Errorf("slow headers: completion reason %q, want %q", r, ReasonUpstream)
	}

	resp, body := do("GET", "/slow-body", nil)
	if resp.StatusCode != 200 || strings.Count(body, "part") != 6 {
		t.Errorf("slow body after the headers: %d %q, want all six parts", resp.StatusCode, body)
	}

	// 600 ms of upload, three times the timeout: the wait starts after it.
	pr, pw := io.Pipe()
	go func() {
		for range 6 {
			_, _ = pw.Write([]byte(strings.Repeat("x", 1000)))
			time.Sleep(100 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	resp, body = do("POST", "/upload", pr)
	if resp.StatusCode != 200 || body != "got 6000 bytes" {
		t.Errorf("slow upload: %d %q, want 200 and every byte", resp.StatusCode, body)
	}
}

// TestUpstreamHeaderTimeoutFollowsReload: the transport's
// ResponseHeaderTimeout was fixed at start; the header watch takes each
// config generation's timeout.
func TestUpstreamHeaderTimeoutFollowsReload(t *testing.T) {
	up, _ := echoUpstream(t, func(*http.Request) { time.Sleep(300 * time.Millisecond) })
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	yaml := func(timeout string) string {
		return fmt.Sprintf(reloadYAML, routeYAML("one", "one.example.com", up.URL)) +
			"timeouts:\n  upstream_response_header: " + timeout + "\n"
	}
	writeConfig(t, path, yaml("5s"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, front := newTestServer(t, cfg, stages{authz: allowAll(), rec: &fakeRecorder{}})
	if resp, _ := get(t, front, "one.example.com", "/", nil); resp.StatusCode != 200 {
		t.Fatalf("300ms upstream under a 5s timeout: %d", resp.StatusCode)
	}
	writeConfig(t, path, yaml("100ms"))
	if _, err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, front, "one.example.com", "/", nil); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("300ms upstream after reloading a 100ms timeout: %d, want 502", resp.StatusCode)
	}
}

// TestHeaderWatch drives the watch directly: a wait done in time is never
// cut, an overdue one is cut with errUpstreamHeaderTimeout, a wait ended
// before its body was read links nothing, and the timer stops when no
// request waits.
func TestHeaderWatch(t *testing.T) {
	var h headerWatch
	var mu sync.Mutex
	cuts := map[string]error{}
	wait := func(name string, timeout time.Duration) *headerWait {
		return &headerWait{timeout: timeout, hw: &h, cut: func(err error) {
			mu.Lock()
			cuts[name] = err
			mu.Unlock()
		}}
	}
	cutOf := func(name string) (error, bool) {
		mu.Lock()
		defer mu.Unlock()
		err, ok := cuts[name]
		return err, ok
	}
	now := time.Now()
	fast, slow, early := wait("fast", 50*time.Millisecond), wait("slow", 50*time.Millisecond), wait("early", 50*time.Millisecond)
	long := wait("long", time.Hour)
	h.start(fast, now)
	h.start(slow, now)
	h.start(long, now)
	h.done(fast)
	h.done(early)
	h.start(early, now) // the body ended after the answer: nothing to wait for
	eventually(t, func() bool { _, ok := cutOf("slow"); return ok })
	if err, _ := cutOf("slow"); !errors.Is(err, errUpstreamHeaderTimeout) {
		t.Errorf("slow: cut with %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	for _, name := range []string{"fast", "early", "long"} {
		if err, ok := cutOf(name); ok {
			t.Errorf("%s cut (%v)", name, err)
		}
	}
	h.done(long)
	h.done(long) // twice is harmless
	// With nothing waiting the timer is not re-armed.
	eventually(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return !h.armed })
	h.mu.Lock()
	if h.root.next != &h.root || h.root.prev != &h.root {
		t.Error("the list is not empty")
	}
	h.mu.Unlock()
}

// TestHeaderWatchShorterTimeoutRearms: a wait with a shorter timeout than
// the armed tick (after a reload) is still cut in time.
func TestHeaderWatchShorterTimeoutRearms(t *testing.T) {
	var h headerWatch
	cut := make(chan error, 1)
	long := &headerWait{timeout: time.Hour, hw: &h, cut: func(error) {}}
	h.start(long, time.Now()) // armed with a one-second tick
	defer h.done(long)
	short := &headerWait{timeout: 20 * time.Millisecond, hw: &h, cut: func(err error) { cut <- err }}
	start := time.Now()
	h.start(short, start)
	select {
	case err := <-cut:
		if !errors.Is(err, errUpstreamHeaderTimeout) || time.Since(start) > 500*time.Millisecond {
			t.Errorf("cut with %v after %v", err, time.Since(start))
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a 20ms wait was not cut within 3s")
	}
}

// TestRestartOnlyTimeouts: a changed upstream_response_header is applied by
// a reload, so no restart warning names it; the other timeouts still need
// one.
func TestRestartOnlyTimeouts(t *testing.T) {
	a, b := baseConfig("http://u"), baseConfig("http://u")
	b.Timeouts.UpstreamHeader = config.Duration(time.Second)
	if got := restartOnly(a, b); len(got) != 0 {
		t.Errorf("upstream_response_header changed: restart warning %v", got)
	}
	b.Timeouts.Idle = config.Duration(time.Hour)
	if got := restartOnly(a, b); len(got) != 1 || got[0] != "timeouts" {
		t.Errorf("idle changed: %v, want [timeouts]", got)
	}
}

// TestHeaderTimeoutCutAfterHeaders: a sweep that cut the request after the
// transport had its headers, but before the headers' done, makes
// ModifyResponse fail with the timeout (the reverse proxy then answers
// with the timeout's 502), instead of a cut body recorded as allowed.
func TestHeaderTimeoutCutAfterHeaders(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	s, _ := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}})
	for _, cause := range []error{errUpstreamHeaderTimeout, nil} {
		ctx, cut := context.WithCancelCause(context.Background())
		if cause != nil {
			cut(cause)
		}
		x := &exchange{}
		x.hwait = headerWait{cut: cut, timeout: time.Minute, hw: &s.headerWatch}
		x.fl = flight{Context: ctx, x: x, guard: ctx, client: context.Background()}
		req, _ := http.NewRequestWithContext(&x.fl, "GET", "http://upstream.internal/", nil)
		err := s.rp.ModifyResponse(&http.Response{Request: req, Header: http.Header{}})
		if cause != nil && !errors.Is(err, errUpstreamHeaderTimeout) {
			t.Errorf("cut by the timeout: ModifyResponse = %v, want the timeout", err)
		}
		if cause == nil && err != nil {
			t.Errorf("not cut: ModifyResponse = %v", err)
		}
		cut(nil)
	}
}
