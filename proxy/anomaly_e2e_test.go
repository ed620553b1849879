package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// End-to-end tests of the anomaly stage through the real pipeline: the
// registered builder (buildAnomaly) from config, a real upstream, the admin
// API, and for the replica test a real redis-server.

const anomalyAdminToken = "anomaly-admin-token-0123456789"

// streamingUpstream serves /big as an endless slow stream (until the client
// or the proxy goes away), everything else as a small PDF attachment.
func streamingUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Type", "application/octet-stream")
			fl := http.NewResponseController(w)
			for i := 0; i < 400; i++ {
				if _, err := w.Write([]byte(strings.Repeat("x", 1024))); err != nil {
					return
				}
				_ = fl.Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(25 * time.Millisecond):
				}
			}
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write([]byte("%PDF-1.7 demo file " + r.URL.Path))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func anomalyConfig(upstream string) *config.Config {
	cfg := baseConfig(upstream)
	cfg.AdminToken = anomalyAdminToken
	cfg.Session.Lifetime = config.Duration(12 * time.Hour)
	cfg.Anomaly = config.Anomaly{
		Timezone: "Asia/Hong_Kong", OnStoreError: "fail_closed", Night: "22:00-06:00", Store: "memory",
		BlockFor: config.Duration(time.Hour),
		Rules: []config.AnomalyRule{{
			Name: "bulk-download-at-night", When: "night", Window: config.Duration(time.Hour), DownloadsOver: 5,
			Per: "user", MinHistory: config.Duration(7 * 24 * time.Hour), Action: []string{"alert", "block_session"},
		}},
	}
	return cfg
}

// anomalyServer builds a server whose anomaly stage is the real builder.
func anomalyServer(t *testing.T, cfg *config.Config, clock func() time.Time, rec *fakeRecorder) (*Server, *httptest.Server, *httptest.Server) {
	t.Helper()
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: rec, extra: func(w *Wiring) {
		if clock != nil {
			w.Clock = clock
		}
		if err := buildAnomaly(context.Background(), w); err != nil {
			t.Fatalf("build anomaly: %v", err)
		}
	}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.runClose(ctx)
	})
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	return s, front, admin
}

func adminCall(t *testing.T, admin *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, admin.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+anomalyAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// startStream begins a GET of /big and returns once the first bytes
// arrived; done is closed when the body ends, with the total read.
func startStream(t *testing.T, front *httptest.Server) (done chan int64) {
	t.Helper()
	req, _ := http.NewRequest("GET", front.URL+"/big", nil)
	req.Host = "files.example.com"
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.Peek(1024); err != nil {
		t.Fatalf("stream did not start: %v", err)
	}
	done = make(chan int64, 1)
	go func() {
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, br)
		done <- n
	}()
	return done
}

func eventsOf(rec *fakeRecorder, typ string) []Event {
	var out []Event
	for _, e := range rec.Events() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestAnomalyBlockCutsLiveDownload: an operator block made while a
// download streams cuts it within a second; the next request is refused
// and unblocking lets the user back in.
func TestAnomalyBlockCutsLiveDownload(t *testing.T) {
	up := streamingUpstream(t)
	rec := &fakeRecorder{}
	_, front, admin := anomalyServer(t, anomalyConfig(up.URL), nil, rec)
	done := startStream(t, front)
	start := time.Now()
	if code, out := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"user":"alice-sub","for":"10m","reason":"test"}`); code != 200 {
		t.Fatalf("block: %d %v", code, out)
	}
	select {
	case n := <-done:
		if el := time.Since(start); el > time.Second {
			t.Fatalf("download cut after %v, want < 1s", el)
		}
		if n >= 400*1024 {
			t.Fatalf("download ran to the end (%d bytes)", n)
		}
		t.Logf("live download cut %v after the block, %d bytes sent", time.Since(start), n)
	case <-time.After(3 * time.Second):
		t.Fatal("live download not cut")
	}
	resp, _ := get(t, front, "files.example.com", "/a.pdf", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("next request after block: %d", resp.StatusCode)
	}
	code, out := adminCall(t, admin, "GET", "/api/v1/anomaly/blocks", "")
	if blocks, _ := out["blocks"].([]any); code != 200 || len(blocks) != 1 {
		t.Fatalf("blocks: %d %v", code, out)
	}
	if code, out := adminCall(t, admin, "POST", "/api/v1/anomaly/unblock", `{"user":"alice-sub"}`); code != 200 || out["unblocked"] != true {
		t.Fatalf("unblock: %d %v", code, out)
	}
	if resp, _ := get(t, front, "files.example.com", "/a.pdf", nil); resp.StatusCode != 200 {
		t.Fatalf("after unblock: %d", resp.StatusCode)
	}
	if code, _ := adminCall(t, admin, "POST", "/api/v1/anomaly/unblock", `{"user":"alice-sub"}`); code != 404 {
		t.Errorf("second unblock: %d, want 404", code)
	}
	// Operator actions are audit events.
	var actions []any
	for _, e := range eventsOf(rec, EventAnomaly) {
		actions = append(actions, e.Fields["action"])
	}
	if len(actions) < 2 || actions[0] != "block" || actions[1] != "unblock" {
		t.Errorf("anomaly events: %v", actions)
	}
}

// TestAnomalyBlockClosesWebSocket: a block closes an open WebSocket tunnel
// of the user within a second.
func TestAnomalyBlockClosesWebSocket(t *testing.T) {
	up := wsEcho(t)
	_, front, admin := anomalyServer(t, anomalyConfig(up.URL), nil, &fakeRecorder{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/socket", &websocket.DialOptions{Host: "ws.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "echo: hi" {
		t.Fatalf("echo: %q %v", msg, err)
	}
	closed := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		closed <- err
	}()
	start := time.Now()
	if code, out := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"session":"s1"}`); code != 200 {
		t.Fatalf("block: %d %v", code, out)
	}
	select {
	case err := <-closed:
		if err == nil || time.Since(start) > time.Second {
			t.Fatalf("websocket ended after %v with %v", time.Since(start), err)
		}
		t.Logf("websocket closed %v after the block", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("websocket still open 3s after the block")
	}
}

// TestAnomalyBulkDownloadAtNight: at 02:00 Hong Kong time, the sixth
// download trips the rule: a signed alert reaches the webhook, the session
// is blocked (next request 403), one anomaly record carries the counters,
// and the metrics count the flag and the actions.
func TestAnomalyBulkDownloadAtNight(t *testing.T) {
	up := streamingUpstream(t)
	secret := "webhook-secret-for-test"
	alerts := make(chan anomaly.Alert, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !anomaly.VerifySignature([]byte(secret), body, r.Header.Get(anomaly.SignatureHeader)) {
			t.Errorf("webhook signature %q does not verify", r.Header.Get(anomaly.SignatureHeader))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var a anomaly.Alert
		_ = json.Unmarshal(body, &a)
		alerts <- a
	}))
	defer hook.Close()
	cfg := anomalyConfig(up.URL)
	cfg.Anomaly.Alerts = []config.AlertSink{{Webhook: &config.WebhookSink{URL: hook.URL, Secret: config.Secret(secret)}}}
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	at := time.Date(2026, 12, 3, 2, 0, 0, 0, hk)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); at = at.Add(time.Second); return at }
	rec := &fakeRecorder{}
	s, front, admin := anomalyServer(t, cfg, clock, rec)
	for i := range 6 {
		if resp, _ := get(t, front, "files.example.com", fmt.Sprintf("/reports/%d.pdf", i), nil); resp.StatusCode != 200 {
			t.Fatalf("download %d: %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, front, "files.example.com", "/reports/6.pdf", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("7th download: %d %s", resp.StatusCode, body)
	}
	select {
	case a := <-alerts:
		if a.Record.Rule != "bulk-download-at-night" || a.Record.User != "alice-sub" || a.Record.Counts.Downloads != 6 || !a.Record.Night {
			t.Errorf("alert = %+v", a.Record)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert at the webhook")
	}
	anomalies := eventsOf(rec, EventAnomaly)
	if len(anomalies) != 1 {
		t.Fatalf("anomaly events = %+v", anomalies)
	}
	ev := anomalies[0]
	counters, _ := ev.Fields["counters"].(map[string]any)
	if ev.Subject != "alice-sub" || ev.SessionID != "s1" || counters["downloads"] != int64(6) || ev.Outcome != "alert,block_session" {
		t.Errorf("anomaly event = %+v", ev)
	}
	// The refusal is a decision record naming the block.
	var denied bool
	for _, e := range eventsOf(rec, EventDecision) {
		if e.Outcome == OutcomeDeny && len(e.Reasons) == 1 && strings.Contains(e.Reasons[0], "bulk-download-at-night") {
			denied = true
		}
	}
	if !denied {
		t.Error("no deny decision naming the rule")
	}
	eventually(t, func() bool { return len(eventsOf(rec, EventAlert)) == 1 })
	if a := eventsOf(rec, EventAlert)[0]; a.Fields["delivered"] != true {
		t.Errorf("alert event = %+v", a)
	}
	reg := s.Registry()
	rule := map[string]string{"rule": "bulk-download-at-night"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"gatehouse_anomaly_flags_total", map[string]string{"flag": "bulk_download"}},
		{"gatehouse_anomaly_flags_total", map[string]string{"flag": "night"}},
		{"gatehouse_anomaly_actions_total", map[string]string{"action": "alert", "result": "ok"}},
		{"gatehouse_anomaly_actions_total", map[string]string{"action": "block_session", "result": "ok"}},
	} {
		for k, v := range rule {
			tc.labels[k] = v
		}
		if got := anomalyCounter(t, reg, tc.name, tc.labels); got != 1 {
			t.Errorf("%s%v = %v, want 1", tc.name, tc.labels, got)
		}
	}
	_, out := adminCall(t, admin, "GET", "/api/v1/anomaly/blocks", "")
	if blocks, _ := out["blocks"].([]any); len(blocks) != 1 || blocks[0].(map[string]any)["kind"] != "session" {
		t.Errorf("blocks = %v", out)
	}
}

// anomalyCounter reads one counter series from a registry.
func anomalyCounter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestAnomalyStepUp: a step_up action sends the session's next request
// through MFA; once the user re-authenticated (a newer auth_time) it passes.
func TestAnomalyStepUp(t *testing.T) {
	up := streamingUpstream(t)
	cfg := anomalyConfig(up.URL)
	cfg.Anomaly.Rules = []config.AnomalyRule{{Name: "burst", Window: config.Duration(time.Minute), RequestsOver: 3, Per: "session", Action: []string{"step_up"}}}
	auth := &fakeAuth{id: Identity{Subject: "bob-sub", SessionID: "b1", AuthTime: time.Now().Add(-time.Hour)}}
	rec := &fakeRecorder{}
	s, front := newTestServer(t, cfg, stages{auth: auth, authz: allowAll(), rec: rec, extra: func(w *Wiring) {
		if err := buildAnomaly(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}})
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	for i := range 4 {
		if resp, _ := get(t, front, "app.example.com", "/", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	resp, _ := get(t, front, "app.example.com", "/", nil)
	auth.mu.Lock()
	stepUps := append([]string(nil), auth.stepUps...)
	auth.mu.Unlock()
	if resp.StatusCode != http.StatusFound || len(stepUps) != 1 || !strings.Contains(stepUps[0], "anomaly_step_up:burst") {
		t.Fatalf("after the burst: %d, step-ups %v", resp.StatusCode, stepUps)
	}
	// Re-authenticated with MFA just now: the request passes.
	auth.mu.Lock()
	auth.id.AuthTime, auth.id.MFA = time.Now().Add(time.Second), true
	auth.mu.Unlock()
	if resp, _ := get(t, front, "app.example.com", "/", nil); resp.StatusCode != 200 {
		t.Fatalf("after step-up: %d", resp.StatusCode)
	}
}

// anomalyRedis starts a real redis-server for one test.
func anomalyRedis(t *testing.T) (addr string, kill func()) {
	t.Helper()
	rs := testenv.StartRedis(t)
	return rs.Addr, rs.Kill
}

// TestAnomalyTwoInstancesShareRedis: downloads through instance A trip the
// rule; instance B refuses the user's next request and cuts the user's
// live download on B within a second. With Redis gone, fail_closed
// instances refuse and report not ready.
func TestAnomalyTwoInstancesShareRedis(t *testing.T) {
	up := streamingUpstream(t)
	addr, kill := anomalyRedis(t)
	cfg := func() *config.Config {
		c := anomalyConfig(up.URL)
		c.Anomaly.Store = "redis"
		c.Anomaly.Rules[0].Action = []string{"alert", "block_user"}
		c.Redis = config.Redis{Addr: addr, Timeout: config.Duration(time.Second)}
		return c
	}
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	night := func() time.Time {
		return time.Date(2026, 12, 3, 2, 0, 0, 0, hk).Add(time.Duration(time.Now().UnixNano() % int64(time.Minute)))
	}
	recA, recB := &fakeRecorder{}, &fakeRecorder{}
	_, frontA, _ := anomalyServer(t, cfg(), night, recA)
	_, frontB, adminB := anomalyServer(t, cfg(), night, recB)

	done := startStream(t, frontB) // alice's live download on B
	for i := range 6 {
		if resp, _ := get(t, frontA, "files.example.com", fmt.Sprintf("/r/%d.pdf", i), nil); resp.StatusCode != 200 {
			t.Fatalf("download %d on A: %d", i, resp.StatusCode)
		}
	}
	// A counts in the background (flushing every 50ms) and fires from its
	// flush; B learns of the block through the marker generation: within
	// a second B refuses the user's next request.
	start := time.Now()
	for {
		resp, _ := get(t, frontB, "files.example.com", "/r/next.pdf", nil)
		if resp.StatusCode == http.StatusForbidden {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("B still served the blocked user 1s after the downloads on A: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("B refused the user %v after the downloads on A", time.Since(start))
	select {
	case <-done:
		t.Logf("B cut the live download %v after the block was made on A", time.Since(start))
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("live download on B not cut within ~1s of the block on A")
	}
	if n := len(eventsOf(recA, EventAnomaly)) + len(eventsOf(recB, EventAnomaly)); n != 1 {
		t.Errorf("%d anomaly records across both instances, want 1", n)
	}
	if code, out := adminCall(t, adminB, "GET", "/api/v1/anomaly/blocks", ""); code != 200 || len(out["blocks"].([]any)) != 1 {
		t.Errorf("blocks on B: %d %v", code, out)
	}
	// Readiness while Redis is up (the whole /readyz also waits for
	// listeners, which these test servers do not bind).
	if _, out := adminCall(t, adminB, "GET", "/readyz", ""); out["checks"].(map[string]any)["anomaly-store"] != "ok" {
		t.Errorf("anomaly-store not ready with Redis up: %v", out)
	}
	kill()
	// A serves from its local view until its flusher's next round trip
	// fails (50ms): within a second it refuses.
	for down := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		resp, _ := get(t, frontA, "app.example.com", "/", nil)
		if resp.StatusCode == http.StatusForbidden {
			t.Logf("fail_closed refused %v after Redis went down", time.Since(down))
			break
		}
		if time.Since(down) > time.Second {
			t.Fatalf("fail_closed with Redis down for 1s: %d", resp.StatusCode)
		}
	}
	_, out := adminCall(t, adminB, "GET", "/readyz", "")
	if checks, _ := out["checks"].(map[string]any); checks["anomaly-store"] == "ok" || checks["anomaly-store"] == nil {
		t.Errorf("readiness with Redis down: %v", out)
	}
}

// BenchmarkAnomalyOverhead: requests per second through the pipeline (fake
// authn/policy/audit) without the anomaly stage, with it on the memory
// store, and on a real Redis; compare the req/s of the rows.
func BenchmarkAnomalyOverhead(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer up.Close()
	for _, row := range []string{"none", "memory", "redis"} {
		b.Run(row, func(b *testing.B) {
			cfg := anomalyConfig(up.URL)
			cfg.Anomaly.Rules = append(cfg.Anomaly.Rules, config.AnomalyRule{Name: "burst", Window: config.Duration(10 * time.Minute), RequestsOver: 1 << 40, Per: "user", Action: []string{"alert"}})
			redisPID := 0
			if row == "redis" {
				addr, pid, kill := anomalyRedisB(b)
				redisPID = pid
				defer kill()
				cfg.Anomaly.Store, cfg.Redis = "redis", config.Redis{Addr: addr, Timeout: config.Duration(time.Second)}
			}
			st := stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}}
			if row != "none" {
				st.extra = func(w *Wiring) {
					if err := buildAnomaly(context.Background(), w); err != nil {
						b.Fatal(err)
					}
				}
			}
			st.rec = discardRecorder{}
			cfg.Log.Access = false
			s, err := New(context.Background(), cfg, Options{Builders: []Builder{func(_ context.Context, w *Wiring) error {
				w.Auth, w.Authz, w.Recorder = st.auth, st.authz, st.rec
				if st.extra != nil {
					st.extra(w)
				}
				return nil
			}}})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.runClose(context.Background()) }()
			front := httptest.NewServer(s)
			defer front.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(8) // 16 concurrent clients on 2 cores
			cpu0, rcpu0 := selfCPU(), procCPU(redisPID)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", front.URL+"/", nil)
					req.Host = "app.example.com"
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			// CPU per request is steadier than req/s on a shared machine
			// (the process holds client, proxy and upstream alike).
			b.ReportMetric(float64((selfCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
			if redisPID != 0 {
				b.ReportMetric(float64((procCPU(redisPID)-rcpu0).Microseconds())/float64(b.N), "redis-cpu-µs/req")
			}
		})
	}
}

// discardRecorder accepts every event (the benchmark measures anomaly, not
// the fake recorder's growing slice).
type discardRecorder struct{}

func (discardRecorder) Record(context.Context, Event) error { return nil }

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time (Linux /proc).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

func anomalyRedisB(b *testing.B) (string, int, func()) {
	rs := testenv.StartRedis(b)
	return rs.Addr, rs.Pid, rs.Kill
}

// TestAnomalyRevokeNeedsRevocation: a rule with action revoke builds with
// the authn stage (which can revoke) and fails at start without one.
func TestAnomalyRevokeNeedsRevocation(t *testing.T) {
	cfg := anomalyConfig("http://127.0.0.1:1")
	cfg.Anomaly.Rules[0].Action = []string{"alert", "revoke"}
	for _, tc := range []struct {
		name string
		auth Authenticator
		ok   bool
	}{{"authn stage", &authnStage{}, true}, {"no revocation", &fakeAuth{}, false}, {"no authenticator", nil, false}} {
		w := &Wiring{Config: cfg, Auth: tc.auth, Clock: time.Now, mux: http.NewServeMux(), adminMux: http.NewServeMux(), Metrics: prometheus.NewRegistry()}
		err := buildAnomaly(context.Background(), w)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, anomaly.ErrBadRule)) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		for i := len(w.onClose) - 1; i >= 0; i-- {
			_ = w.onClose[i](context.Background())
		}
	}
}
