package authn

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// watched starts Watch on s and waits until its view answers.
func watched(t *testing.T, s *RedisStore, o WatchOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx, o); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := s.view.answer("x", "x", time.Now()); ok {
			return
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("the revocation view never became fresh")
		}
	}
}

func revoked(t *testing.T, s *RedisStore, id, sub string, created time.Time) bool {
	t.Helper()
	rev, err := s.Revoked(context.Background(), id, sub, created)
	if err != nil {
		t.Fatalf("Revoked(%s, %s): %v", id, sub, err)
	}
	return rev
}

// within waits up to d for cond and returns how long it took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestRevocationViewAcrossReplicas: two replicas (own clients, one real
// redis-server) answer revocation checks from their local views, without
// a round trip; a revocation is seen at once by the replica that made it
// and within a second (in practice ~50ms) by the other.
func TestRevocationViewAcrossReplicas(t *testing.T) {
	ca, addr, _ := startRedisKill(t)
	cb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { cb.Close() })
	a, b := NewRedisStore(ca, "t:"), NewRedisStore(cb, "t:")
	watched(t, a, WatchOptions{})
	watched(t, b, WatchOptions{})
	ctx := context.Background()
	created := time.Now().Add(-time.Minute)

	for range 200 {
		if revoked(t, a, "s1", "alice", created) || revoked(t, b, "s1", "alice", created) {
			t.Fatal("revoked before any revocation")
		}
	}
	if n := a.checks.Load() + b.checks.Load(); n != 0 {
		t.Errorf("%d revocation checks went to Redis with fresh views, want 0", n)
	}

	if err := a.Revoke(ctx, "s1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, a, "s1", "alice", created) {
		t.Error("the replica that revoked the session still accepts it")
	}
	d := within(t, time.Second, "session revocation on the other replica", func() bool { return revoked(t, b, "s1", "alice", created) })
	t.Logf("session revocation reached the other replica in %v", d)
	if revoked(t, b, "s2", "alice", created) {
		t.Error("another session of the user is revoked too")
	}

	if err := b.RevokeUser(ctx, "alice", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, b, "s2", "alice", created) {
		t.Error("the replica that revoked the user still accepts the user's session")
	}
	d = within(t, time.Second, "user revocation on the other replica", func() bool { return revoked(t, a, "s2", "alice", created) })
	t.Logf("user revocation reached the other replica in %v", d)
	later := time.Now().Add(time.Second)
	if revoked(t, a, "s3", "alice", later) || revoked(t, b, "s3", "alice", later) {
		t.Error("a session made after the user revocation is refused")
	}
	// An older revocation time does not undo a newer one.
	if err := a.RevokeUser(ctx, "alice", created.Add(-time.Hour), time.Hour); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "user revocation kept", func() bool {
		return revoked(t, a, "s2", "alice", created) && revoked(t, b, "s2", "alice", created)
	})
	if n := a.checks.Load() + b.checks.Load(); n != 0 {
		t.Errorf("%d revocation checks went to Redis with fresh views, want 0", n)
	}
	// The per-request path (a replica without Watch) sees the same list.
	plain := NewRedisStore(ca, "t:")
	if !revoked(t, plain, "s1", "bob", created) || !revoked(t, plain, "s9", "alice", created) {
		t.Error("revocations made with the view are not in the per-request keys")
	}
}

// TestRevocationViewResync: an index entry whose generation bump was lost
// is still picked up by the periodic full reload.
func TestRevocationViewResync(t *testing.T) {
	c := startRedis(t)
	s := NewRedisStore(c, "t:")
	watched(t, s, WatchOptions{Resync: 300 * time.Millisecond})
	exp := time.Now().Add(time.Hour).UnixMilli()
	if err := c.ZAdd(context.Background(), "t:rsidx:", redis.Z{Score: float64(exp), Member: "quiet"}).Err(); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "resync", func() bool { return revoked(t, s, "quiet", "u", time.Now()) })
	// Expired user entries leave the index.
	old := strconv.FormatInt(time.Now().UnixMilli(), 10) + ":" + strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
	if err := c.HSet(context.Background(), "t:ruidx:", "gone", old).Err(); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "expired user entry dropped", func() bool {
		n, _ := c.HExists(context.Background(), "t:ruidx:", "gone").Result()
		return !n
	})
}

// TestRevocationViewFailsClosed: when Redis stops answering, the view is
// trusted only for Grace; then every check goes to Redis and fails.
func TestRevocationViewFailsClosed(t *testing.T) {
	_, addr, kill := startRedisKill(t)
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	s := NewRedisStore(c, "t:")
	grace := 300 * time.Millisecond
	watched(t, s, WatchOptions{Grace: grace})
	if st := s.ViewStats(); !st.Fresh || st.PollErrors != 0 {
		t.Errorf("with Redis up: %+v", st)
	}
	kill()
	down := time.Now()
	d := within(t, 2*time.Second, "view given up", func() bool {
		_, ok := s.view.answer("s1", "alice", time.Now())
		return !ok
	})
	if d > grace+250*time.Millisecond {
		t.Errorf("revocation checks answered from a stale view for %v (grace %v)", d, grace)
	}
	if _, err := s.Revoked(context.Background(), "s1", "alice", time.Now()); err == nil {
		t.Error("a revocation check with Redis down and a stale view did not fail")
	}
	t.Logf("checks failed %v after Redis went down", time.Since(down))
	if st := s.ViewStats(); st.Fresh || st.PollErrors == 0 || st.Fallbacks == 0 {
		t.Errorf("with Redis down: %+v, want not fresh, poll errors and fallbacks counted", st)
	}
}

// TestRevocationViewKeepsOwnRevocations: a reload from a snapshot older
// than this replica's own revocation does not drop it.
func TestRevocationViewKeepsOwnRevocations(t *testing.T) {
	v := &revView{watching: true, grace: time.Second, synced: time.Now(), gen: 3,
		sessions: map[string]int64{}, users: map[string]revUser{}}
	exp := time.Now().Add(time.Hour).UnixMilli()
	v.addOwn(ownRev{gen: 5, id: "mine", exp: exp})
	v.addOwn(ownRev{gen: 4, sub: "bob", user: revUser{at: time.Now().UnixMilli(), exp: exp}})
	// A snapshot at generation 4 that lacks both.
	v.swap(map[string]int64{}, map[string]revUser{}, 4, time.Now())
	if rev, ok := v.answer("mine", "x", time.Now()); !ok || !rev {
		t.Error("own revocation newer than the snapshot was dropped")
	}
	if len(v.own) != 1 {
		t.Errorf("own revocations kept: %d, want 1 (the one the snapshot already had is dropped)", len(v.own))
	}
}
