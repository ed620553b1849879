package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authn"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// writeAuditLog writes recs (with their Time) to a new audit log in dir,
// encrypted when encrypt is set, and closes it.
func writeAuditLog(t testing.TB, dir string, encrypt bool, recs []*audit.Record) {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "audit.replay.test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.ParseSigningKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	clk := &testClock{t: time.Now()}
	if len(recs) > 0 {
		clk.set(recs[0].Time)
	}
	opts := audit.Options{Dir: dir, Key: key, Durability: audit.DurabilityBatch, Clock: clk.now, CheckpointInterval: time.Hour}
	if encrypt {
		opts.EncryptionKey = make([]byte, 32)
		_, _ = rand.Read(opts.EncryptionKey)
	}
	ctx := context.Background()
	l, err := audit.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		clk.set(r.Time)
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReplayRevocations: only revocations newer than now-lifetime are
// loaded, each for what is left of its lifetime; session ids and subjects
// are read from an encrypted log without its key (they are never sealed).
func TestReplayRevocations(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	const lifetime = 12 * time.Hour
	recs := []*audit.Record{
		{Type: audit.TypeLogout, Time: now.Add(-13 * time.Hour), Subject: "alice", SessionID: "old-logout", Email: "alice@example.com"},
		{Type: audit.TypeSessionRevoked, Time: now.Add(-13 * time.Hour), Subject: "old-user", Detail: map[string]any{"scope": "user"}},
		{Type: audit.TypeDecision, Time: now.Add(-3 * time.Hour), Outcome: audit.OutcomeAllow, Subject: "carol", SessionID: "decided"},
		{Type: audit.TypeSessionRevoked, Time: now.Add(-2 * time.Hour), Subject: "bob", Detail: map[string]any{"scope": "user"}},
		{Type: audit.TypeLogout, Time: now.Add(-time.Hour), Subject: "alice", SessionID: "recent-logout", Email: "alice@example.com"},
		{Type: audit.TypeSessionRevoked, Time: now.Add(-30 * time.Minute), SessionID: "recent-revoke"},
	}
	dir := filepath.Join(t.TempDir(), "audit")
	writeAuditLog(t, dir, true, recs)

	clk := &testClock{t: now}
	ms := authn.NewMemoryStoreClock(clk.now)
	stats, err := replayRevocations(context.Background(), dir, ms, now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	// The decision record is skipped undecoded: 5 revocation records read.
	if stats.Sessions != 2 || stats.Users != 1 || stats.Expired != 2 || stats.Scanned != len(recs)-1 {
		t.Errorf("stats %+v, want 2 sessions, 1 user, 2 expired, %d scanned", stats, len(recs)-1)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		at          time.Time
		id, sub     string
		created     time.Time
		wantRevoked bool
	}{
		{"logout older than the lifetime", now, "old-logout", "alice", now.Add(-14 * time.Hour), false},
		{"user revocation older than the lifetime", now, "s1", "old-user", now.Add(-14 * time.Hour), false},
		{"a decision is no revocation", now, "decided", "carol", now.Add(-4 * time.Hour), false},
		{"recent logout", now, "recent-logout", "alice", now.Add(-2 * time.Hour), true},
		{"recent logout, just before its lifetime ends", now.Add(11*time.Hour - time.Second), "recent-logout", "alice", now.Add(-2 * time.Hour), true},
		{"recent logout, after its lifetime", now.Add(11*time.Hour + time.Second), "recent-logout", "alice", now.Add(-2 * time.Hour), false},
		{"revoked by id", now, "recent-revoke", "", now.Add(-time.Hour), true},
		{"user session made before the revocation", now, "b1", "bob", now.Add(-3 * time.Hour), true},
		{"user session made after the revocation", now, "b2", "bob", now.Add(-time.Hour), false},
	} {
		clk.set(c.at)
		got, err := ms.Revoked(ctx, c.id, c.sub, c.created)
		if err != nil || got != c.wantRevoked {
			t.Errorf("%s: revoked %v, %v; want %v", c.name, got, err, c.wantRevoked)
		}
	}
}

// TestReplayFailsClosed: a log that cannot be read leaves the store
// refusing revocation checks and /readyz "authn" failing with the reason;
// a missing log (first start) is an empty one.
func TestReplayFailsClosed(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "audit")
	writeAuditLog(t, dir, false, []*audit.Record{{Type: audit.TypeLogout, Time: time.Now(), Subject: "alice", SessionID: "s"}})
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*"))
	if len(segs) == 0 {
		t.Fatal("no segment written")
	}
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("{not a record}\n")
	f.Close()

	r := newRevocationReplay(authn.NewMemoryStore(), dir, time.Hour, nil, zap.NewNop())
	if _, err := r.Revoked(ctx, "s", "alice", time.Now()); !errors.Is(err, errReplayPending) {
		t.Errorf("before replay: %v, want errReplayPending", err)
	}
	if err := r.run(ctx); err == nil {
		t.Fatal("replay of a corrupt log succeeded")
	}
	if _, err := r.Revoked(ctx, "x", "bob", time.Now()); err == nil {
		t.Error("revocation check answered after a failed replay")
	}
	if err := r.ready(ctx); err == nil {
		t.Error("ready after a failed replay")
	}

	empty := newRevocationReplay(authn.NewMemoryStore(), filepath.Join(t.TempDir(), "none"), time.Hour, nil, zap.NewNop())
	if err := empty.run(ctx); err != nil {
		t.Fatalf("missing log: %v", err)
	}
	if rev, err := empty.Revoked(ctx, "x", "bob", time.Now()); err != nil || rev {
		t.Errorf("after an empty replay: %v, %v", rev, err)
	}
}

// BenchmarkReplayRevocations100k replays a 100,000-record log (one
// revocation in 100) with a 12h lifetime.
func BenchmarkReplayRevocations100k(b *testing.B) {
	now := time.Now()
	start := now.Add(-48 * time.Hour)
	const n = 100_000
	recs := make([]*audit.Record, 0, n)
	for i := range n {
		r := &audit.Record{Type: audit.TypeDecision, Time: start.Add(time.Duration(i) * (48 * time.Hour / n)), Outcome: audit.OutcomeAllow,
			Subject: "u" + base64.RawURLEncoding.EncodeToString([]byte{byte(i)}), SessionID: "s", Route: "chat", Path: "/channels/town"}
		if i%100 == 0 {
			r.Type, r.Outcome = audit.TypeLogout, ""
		}
		recs = append(recs, r)
	}
	dir := filepath.Join(b.TempDir(), "audit")
	t0 := time.Now()
	writeAuditLog(b, dir, false, recs)
	b.Logf("wrote %d records in %v", n, time.Since(t0))
	b.ResetTimer()
	for range b.N {
		stats, err := replayRevocations(context.Background(), dir, authn.NewMemoryStore(), now, 12*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		if stats.Sessions == 0 || stats.Scanned < n/100/4 {
			b.Fatalf("stats %+v", stats)
		}
	}
}
