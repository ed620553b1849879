package anomaly

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// startRedis is a real redis-server on loopback for one test.
func startRedis(t testing.TB) *testenv.Redis { return testenv.StartRedis(t) }

func redisStore(t testing.TB, addr string) *RedisStore {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { c.Close() })
	return NewRedisStore(c, "t:")
}

// TestRedisStoreMatchesMemory runs the same observations through both
// stores and compares every counter.
func TestRedisStoreMatchesMemory(t *testing.T) {
	rs := startRedis(t)
	hk := mustZone(t, "Asia/Hong_Kong")
	now := time.Date(2026, 12, 3, 2, 0, 0, 0, hk)
	ctx := t.Context()
	for name, st := range map[string]Store{"memory": NewMemoryStore(nil), "redis": redisStore(t, rs.Addr)} {
		t.Run(name, func(t *testing.T) {
			ws := []time.Duration{10 * time.Minute, time.Hour}
			q := Query{Keys: []string{"u:ana"}, Windows: ws}
			at := now
			for i := range 30 {
				inc := Increment{Keys: []string{"u:ana"}, Windows: ws, Bytes: 100, Download: i%2 == 0, Path: fmt.Sprintf("/p%d", i%7)}
				if _, err := st.Add(ctx, at, inc, q); err != nil {
					t.Fatal(err)
				}
				at = at.Add(time.Minute)
			}
			snap, err := st.Load(ctx, at, q)
			if err != nil {
				t.Fatal(err)
			}
			// Last 10 minutes, (02:20, 02:30]: observations 21..29.
			want10 := Counts{Requests: 9, Bytes: 900, Downloads: 4, Paths: 7}
			want60 := Counts{Requests: 30, Bytes: 3000, Downloads: 15, Paths: 7}
			if got := snap.Counts["u:ana"][10*time.Minute]; got != want10 {
				t.Errorf("10m = %+v, want %+v", got, want10)
			}
			if got := snap.Counts["u:ana"][time.Hour]; got != want60 {
				t.Errorf("1h = %+v, want %+v", got, want60)
			}
			// Later reads expire what left the window: (02:25, 02:35] holds
			// 26..29; two hours later nothing, and counting starts afresh.
			snap, _ = st.Load(ctx, at.Add(5*time.Minute), q)
			if got := snap.Counts["u:ana"][10*time.Minute]; got.Requests != 4 || got.Bytes != 400 || got.Downloads != 2 {
				t.Errorf("10m five minutes later = %+v", got)
			}
			if got := snap.Counts["u:ana"][time.Hour]; got.Requests != 30 {
				t.Errorf("1h five minutes later = %+v", got)
			}
			later := at.Add(2 * time.Hour)
			if snap, _ = st.Load(ctx, later, q); snap.Counts["u:ana"][time.Hour] != (Counts{}) {
				t.Errorf("2h later = %+v", snap.Counts["u:ana"][time.Hour])
			}
			snap, err = st.Add(ctx, later, Increment{Keys: []string{"u:ana"}, Windows: ws, Bytes: 7, Path: "/new"}, q)
			if err != nil || snap.Counts["u:ana"][time.Hour] != (Counts{Requests: 1, Bytes: 7, Paths: 1}) {
				t.Errorf("after idle = %+v %v", snap.Counts["u:ana"][time.Hour], err)
			}
			// Markers: NX, TTL, list, delete.
			if ok, err := st.SetMarker(ctx, "fired:r:u:ana", []byte("1"), time.Minute, true); !ok || err != nil {
				t.Fatalf("first SET NX: %v %v", ok, err)
			}
			if ok, _ := st.SetMarker(ctx, "fired:r:u:ana", []byte("2"), time.Minute, true); ok {
				t.Fatal("second SET NX stored")
			}
			_, _ = st.SetMarker(ctx, "block:u:a*b", []byte("x"), time.Minute, false)
			ms, err := st.Markers(ctx, "block:")
			if err != nil || len(ms) != 1 || string(ms["block:u:a*b"]) != "x" {
				t.Fatalf("markers = %v %v", ms, err)
			}
			if ok, _ := st.DeleteMarker(ctx, "block:u:a*b"); !ok {
				t.Fatal("delete")
			}
			// Baseline fold round trip.
			b, err := st.FoldBaseline(ctx, "u:ana", func(b *Baseline, periods map[int64]Counts) *Baseline {
				if b != nil {
					t.Errorf("baseline exists: %+v", b)
				}
				return &Baseline{First: 1, Next: 5}
			})
			if err != nil || b.Next != 5 {
				t.Fatalf("fold: %+v %v", b, err)
			}
		})
	}
}

// TestTwoReplicasShareRedis: downloads through replica A trip the rule;
// replica B refuses the user's next request and cuts its live one.
func TestTwoReplicasShareRedis(t *testing.T) {
	rs := startRedis(t)
	hk := mustZone(t, "Asia/Hong_Kong")
	clk := newClock(time.Date(2026, 12, 3, 2, 0, 0, 0, hk))
	recA, recB := &recorder{}, &recorder{}
	opts := func(rec *recorder) Options {
		return Options{Zone: hk, Night: "22:00-06:00", Clock: clk.Now, Store: redisStore(t, rs.Addr), Hooks: rec.hooks(), PollInterval: 100 * time.Millisecond,
			Rules: []Rule{{Name: "bulk-download-at-night", Night: true, Window: time.Hour, DownloadsOver: 50, Actions: []Action{ActionAlert, ActionBlockUser}}}}
	}
	a := newDetector(t, opts(recA))
	b := newDetector(t, opts(recB))
	ctx := t.Context()
	ana := Subject{User: "ana", Session: "s1"}
	liveB, release := b.Watch(ctx, Subject{User: "ana", Session: "s2"})
	defer release()
	// 51 downloads, alternating replicas: the counters are shared, and the
	// 51st trips the rule.
	for i := range 51 {
		d := a
		if i%2 == 1 {
			d = b
		}
		if r, err := d.Assess(ctx, ana); err != nil || r.Blocked {
			t.Fatalf("download %d refused early: %+v %v", i, r, err)
		}
		if err := d.Observe(ctx, ana, Observation{Download: true, Path: fmt.Sprintf("/files/%d", i), Bytes: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	// Observations are flushed in the background (every SyncInterval):
	// within a second B refuses the user's next request (a session B has
	// not seen, and then one it has) and has cut B's live request.
	start := time.Now()
	var r Risk
	var err error
	for _, sess := range []string{"s3", "s1"} {
		for {
			r, err = b.Assess(ctx, Subject{User: "ana", Session: sess})
			if err == nil && r.Blocked && r.Counts.Downloads == 51 || time.Since(start) > time.Second {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil || !r.Blocked || r.Counts.Downloads != 51 || !contains(r.Flags, FlagBulkDownload) {
			t.Fatalf("replica B, session %s, after %v: %+v %v", sess, time.Since(start), r, err)
		}
	}
	t.Logf("B refused %v after the last download", time.Since(start))
	select {
	case <-liveB.Done():
	case <-time.After(time.Second):
		t.Fatal("live request on replica B not cut within 1s")
	}
	t.Logf("B refused and cut within %v", time.Since(start))
	// The rule fired exactly once across both replicas (both flushers judged
	// the same sums).
	time.Sleep(200 * time.Millisecond)
	if n := len(recA.Records()) + len(recB.Records()); n != 1 {
		t.Fatalf("rule fired %d times across replicas", n)
	}
	// Unblock on B lifts it for A within a second (A had the user in its
	// view, blocked).
	if r, _ := a.Assess(ctx, ana); !r.Blocked {
		t.Fatalf("A does not block: %+v", r)
	}
	if ok, err := b.Unblock(ctx, BlockUser, "ana"); !ok || err != nil {
		t.Fatalf("unblock: %v %v", ok, err)
	}
	start = time.Now()
	for {
		r, _ := a.Assess(ctx, ana)
		if !r.Blocked {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("A still blocks 1s after unblock on B: %+v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("A lifted the block %v after the unblock on B", time.Since(start))
}

// TestStoreUnavailable: with Redis killed, fail_closed refuses (reason
// store_unavailable) and fail_open lets through; counting errors are
// reported, never fatal; readiness fails.
func TestStoreUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failOpen bool
	}{{"fail_closed", false}, {"fail_open", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rs := startRedis(t)
			rec := &recorder{}
			clk := newClock(time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC))
			d := newDetector(t, Options{Clock: clk.Now, Store: redisStore(t, rs.Addr), FailOpen: tc.failOpen, Hooks: rec.hooks(), StoreTimeout: 300 * time.Millisecond,
				Rules: []Rule{{Name: "x", Window: time.Hour, RequestsOver: 1000, Actions: []Action{ActionAlert}}}})
			ctx := t.Context()
			if r, err := d.Assess(ctx, Subject{User: "ana"}); err != nil || r.Blocked {
				t.Fatalf("healthy: %+v %v", r, err)
			}
			if err := d.Ready(ctx); err != nil {
				t.Fatal(err)
			}
			rs.Kill()
			// The local view serves ana until the flusher's next round
			// trip fails (SyncInterval): within a second Assess must say
			// the store is gone, each call bounded.
			start := time.Now()
			var r Risk
			var err error
			for {
				t0 := time.Now()
				r, err = d.Assess(ctx, Subject{User: "ana"})
				if el := time.Since(t0); el > time.Second {
					t.Errorf("Assess took %v with Redis down", el)
				}
				if err != nil || time.Since(start) > time.Second {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !errors.Is(err, ErrStore) {
				t.Fatalf("err = %v, want ErrStore", err)
			}
			t.Logf("Assess reported the store down %v after the kill", time.Since(start))
			if r.Blocked == tc.failOpen || (!tc.failOpen && r.Reason != ReasonStoreUnavail) {
				t.Fatalf("risk = %+v", r)
			}
			if !contains(r.Flags, FlagStoreUnavail) {
				t.Errorf("flags = %v", r.Flags)
			}
			if err := d.Observe(ctx, Subject{User: "ana"}, Observation{}); !errors.Is(err, ErrStore) {
				t.Errorf("Observe err = %v", err)
			}
			if err := d.Ready(ctx); !errors.Is(err, ErrStore) {
				t.Errorf("Ready = %v", err)
			}
			rec.mu.Lock()
			errs := append([]string(nil), rec.errs...)
			rec.mu.Unlock()
			if !contains(errs, "assess") || !contains(errs, "observe") {
				t.Errorf("store errors reported: %v", errs)
			}
		})
	}
}

// TestFailOpenKeepsLocalBlocks: a block this instance made still applies
// while Redis is down, even failing open.
func TestFailOpenKeepsLocalBlocks(t *testing.T) {
	rs := startRedis(t)
	d := newDetector(t, Options{Store: redisStore(t, rs.Addr), FailOpen: true,
		Rules: []Rule{{Name: "x", Window: time.Hour, RequestsOver: 1000, Actions: []Action{ActionAlert}}}})
	if _, err := d.Block(t.Context(), BlockUser, "ana", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	r, err := d.Assess(t.Context(), Subject{User: "ana"})
	if err == nil || !r.Blocked {
		t.Fatalf("local block lost: %+v %v", r, err)
	}
	if r, _ := d.Assess(context.Background(), Subject{User: "bob"}); r.Blocked {
		t.Fatal("fail_open refused an unblocked user")
	}
}

// TestHungStoreBacksOff: a Redis that accepts connections but never
// answers costs one StoreTimeout; the requests right after take the
// store-error path at once (failing closed), and the store is tried again
// after StoreBackoff.
func TestHungStoreBacksOff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	d := newDetector(t, Options{Store: NewRedisStore(c, "t:"), StoreTimeout: 200 * time.Millisecond, StoreBackoff: 400 * time.Millisecond,
		Rules: []Rule{{Name: "x", Window: time.Hour, RequestsOver: 10, Actions: []Action{ActionAlert}}}})
	ctx := t.Context()
	timed := func() (Risk, time.Duration, error) {
		start := time.Now()
		r, err := d.Assess(ctx, Subject{User: "ana"})
		return r, time.Since(start), err
	}
	r, el, err := timed()
	if !errors.Is(err, ErrStore) || !r.Blocked || el < 150*time.Millisecond || el > time.Second {
		t.Fatalf("first call: %+v %v after %v", r, err, el)
	}
	for range 5 {
		r, el, err := timed()
		// Under the 200 ms store timeout with room for a loaded CI machine:
		// during the backoff Redis is not asked at all.
		if !errors.Is(err, ErrStoreBackoff) || !r.Blocked || el > 150*time.Millisecond {
			t.Fatalf("during backoff: %+v %v after %v", r, err, el)
		}
	}
	if err := d.Observe(ctx, Subject{User: "ana"}, Observation{}); !errors.Is(err, ErrStoreBackoff) {
		t.Fatalf("observe during backoff: %v", err)
	}
	time.Sleep(450 * time.Millisecond)
	if _, el, err := timed(); errors.Is(err, ErrStoreBackoff) || el < 150*time.Millisecond {
		t.Fatalf("after backoff the store was not tried again: %v after %v", err, el)
	}
}

// ctxKey marks the calls a test makes itself, so a client hook can count
// the Redis commands issued on the request path (not the flusher's).
type ctxKey struct{}

type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(ctxKey{}) != nil {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(ctxKey{}) != nil {
			h.n.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

// TestRedisOffRequestPath: with Redis, Observe only buffers and Assess of
// a subject already in the local view issues no command; the flusher
// writes the counts within SyncInterval (another replica reads them), the
// rule fires from the flush, and Close flushes what is still buffered.
func TestRedisOffRequestPath(t *testing.T) {
	rs := startRedis(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1})
	defer c.Close()
	var n atomic.Int64
	c.AddHook(countHook{&n})
	rec := &recorder{}
	rules := []Rule{{Name: "burst", Window: time.Hour, RequestsOver: 40, Actions: []Action{ActionAlert, ActionBlockUser}}}
	d, err := New(Options{Store: NewRedisStore(c, "t:"), Rules: rules, Hooks: rec.hooks(), SyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	other := newDetector(t, Options{Store: redisStore(t, rs.Addr), Rules: rules})
	ctx := context.WithValue(t.Context(), ctxKey{}, true)
	ana := Subject{User: "ana", Session: "s1"}
	if _, err := d.Assess(ctx, ana); err != nil { // not in the view yet: one read
		t.Fatal(err)
	}
	if n.Load() == 0 {
		t.Fatal("first Assess did not read Redis (the hook counts nothing?)")
	}
	time.Sleep(100 * time.Millisecond) // the flusher's first round trip makes the view current
	n.Store(0)
	for i := range 40 {
		if r, err := d.Assess(ctx, ana); err != nil || r.Blocked {
			t.Fatalf("request %d: %+v %v", i, r, err)
		}
		if err := d.Observe(ctx, ana, Observation{Path: fmt.Sprintf("/p/%d", i), Bytes: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 0 {
		t.Errorf("40 Assess+Observe issued %d Redis commands on the request path, want 0", got)
	}
	// The flusher wrote the counts: another replica reads all 40.
	deadline := time.Now().Add(time.Second)
	for {
		r, err := other.Assess(t.Context(), Subject{User: "ana"})
		if err == nil && r.Counts.Requests == 40 && r.Counts.Paths == 40 && r.Counts.Bytes == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("other replica after 1s: %+v %v", r, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The 41st request trips the rule from the flush; this instance then
	// refuses at once from its view.
	_ = d.Observe(ctx, ana, Observation{Path: "/p/x"})
	for deadline := time.Now().Add(time.Second); len(rec.Records()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("rule did not fire from the flush within 1s")
		}
	}
	if r, _ := d.Assess(ctx, ana); !r.Blocked || r.Counts.Requests != 41 {
		t.Fatalf("after firing: %+v", r)
	}
	// Close flushes what is buffered.
	_ = d.Observe(ctx, Subject{User: "bo"}, Observation{Path: "/q"})
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if r, err := other.Assess(t.Context(), Subject{User: "bo"}); err != nil || r.Counts.Requests != 1 {
		t.Fatalf("bo after Close: %+v %v", r, err)
	}
}
