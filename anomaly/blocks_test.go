package anomaly

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A block made after a request was assessed but before it is watched (the
// pipeline judges policy and writes the decision in between) cuts it at
// Watch: nothing else would, with the memory store.
func TestWatchAfterBlockCuts(t *testing.T) {
	d := newDetector(t, Options{Rules: []Rule{{Name: "x", Window: time.Minute, RequestsOver: 1000, Actions: []Action{ActionAlert}}}})
	ana := Subject{User: "ana", Session: "s1"}
	if r, _ := d.Assess(t.Context(), ana); r.Blocked {
		t.Fatal("blocked before the block")
	}
	bob, releaseBob := d.Watch(t.Context(), Subject{User: "bob", Session: "s2"})
	defer releaseBob()
	if _, err := d.Block(t.Context(), BlockUser, "ana", time.Hour, "op"); err != nil {
		t.Fatal(err)
	}
	live, release := d.Watch(t.Context(), Subject{User: "ana", Session: "s3"})
	defer release()
	if !errors.Is(context.Cause(live), ErrBlocked) {
		t.Fatalf("a blocked user's request watched after the block: cause %v, want ErrBlocked", context.Cause(live))
	}
	if bob.Err() != nil {
		t.Fatal("another user's request was cut")
	}
	if n := d.Live(); n != 1 {
		t.Fatalf("live requests = %d, want 1 (the cut one is not tracked)", n)
	}
}

// A rule never shortens a block in force: the blocked client's refused
// retries trip a 1-hour rule, the operator's 30-day block stays.
func TestRuleNeverShortensBlock(t *testing.T) {
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			var store Store
			if name == "redis" {
				store = redisStore(t, startRedis(t).Addr)
			}
			clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
			fired := make(chan Record, 1)
			d := newDetector(t, Options{Clock: clk.Now, Store: store, SyncInterval: 10 * time.Millisecond,
				Hooks: Hooks{OnAnomaly: func(_ context.Context, r Record) { fired <- r }},
				Rules: []Rule{{Name: "burst", Window: time.Minute, RequestsOver: 5, Actions: []Action{ActionBlockUser}, BlockFor: time.Hour}}})
			ana := Subject{User: "ana", Session: "s1"}
			if _, err := d.Block(t.Context(), BlockUser, "ana", 30*24*time.Hour, "operator:incident"); err != nil {
				t.Fatal(err)
			}
			for range 7 {
				_ = d.Observe(t.Context(), ana, Observation{Status: 403})
			}
			var rec Record
			select {
			case rec = <-fired:
			case <-time.After(5 * time.Second):
				t.Fatal("the rule did not fire")
			}
			if len(rec.Actions) != 1 || !rec.Actions[0].OK || !rec.Actions[0].Until.Equal(clk.Now().Add(30*24*time.Hour)) {
				t.Fatalf("the rule's action %+v: want ok with the block in force's until", rec.Actions)
			}
			clk.Advance(61 * time.Minute)
			if r, _ := d.Assess(t.Context(), ana); !r.Blocked || r.Reason != "operator:incident" {
				t.Fatalf("after 61 minutes: blocked=%v reason=%q, want the operator's 30-day block", r.Blocked, r.Reason)
			}
		})
	}
}

// A longer rule block still replaces a shorter one.
func TestRuleLengthensBlock(t *testing.T) {
	clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	d := newDetector(t, Options{Clock: clk.Now,
		Rules: []Rule{{Name: "burst", Window: time.Minute, RequestsOver: 5, Actions: []Action{ActionBlockUser}, BlockFor: 24 * time.Hour}}})
	ana := Subject{User: "ana"}
	if _, err := d.Block(t.Context(), BlockUser, "ana", time.Minute, "operator"); err != nil {
		t.Fatal(err)
	}
	for range 7 {
		_ = d.Observe(t.Context(), ana, Observation{})
	}
	clk.Advance(time.Hour)
	if r, _ := d.Assess(t.Context(), ana); !r.Blocked || r.Reason != "anomaly:burst" {
		t.Fatalf("after an hour: blocked=%v reason=%q, want the rule's 24h block", r.Blocked, r.Reason)
	}
}

// A night rule's revoke cuts the subject's live requests (its counters are
// kept under the night key, the live requests under the subject's).
func TestRevokeCutsLiveRequests(t *testing.T) {
	for _, night := range []bool{false, true} {
		clk := newClock(time.Date(2026, 12, 3, 2, 0, 0, 0, mustZone(t, "Asia/Hong_Kong")))
		rv := &fakeRevoker{}
		d := newDetector(t, Options{Zone: mustZone(t, "Asia/Hong_Kong"), Night: "22:00-06:00", Clock: clk.Now, Revoker: rv,
			Rules: []Rule{{Name: "r", Night: night, Window: time.Hour, DownloadsOver: 3, Actions: []Action{ActionRevoke}}}})
		ana := Subject{User: "ana", Session: "s1"}
		live, release := d.Watch(t.Context(), Subject{User: "ana", Session: "s2"})
		for range 4 {
			_ = d.Observe(t.Context(), ana, Observation{Download: true, Path: "/f"})
		}
		if !errors.Is(context.Cause(live), ErrBlocked) {
			t.Errorf("night rule %v: live request of the revoked user not cut (cause %v)", night, context.Cause(live))
		}
		release()
	}
}

// An anonymous caller's address has its own block kind: a user id that
// reads "ip:…" is a user, never an address.
func TestAddressBlocksAreTheirOwnKind(t *testing.T) {
	d := newDetector(t, Options{Rules: []Rule{{Name: "burst", Window: time.Minute, RequestsOver: 2, Actions: []Action{ActionBlockUser}}}})
	odd := Subject{User: "ip:10.0.0.1", Session: "s1"} // an OIDC sub
	anon := Subject{IP: "10.0.0.1"}
	for range 3 {
		_ = d.Observe(t.Context(), odd, Observation{})
	}
	if r, _ := d.Assess(t.Context(), odd); !r.Blocked || r.Block.Kind != BlockUser || r.Block.ID != "ip:10.0.0.1" {
		t.Fatalf("user: blocked=%v block=%+v, want a user block of ip:10.0.0.1", r.Blocked, r.Block)
	}
	if r, _ := d.Assess(t.Context(), anon); r.Blocked {
		t.Fatal("the user's block covers the anonymous address 10.0.0.1")
	}
	if ok, err := d.Unblock(t.Context(), BlockUser, "ip:10.0.0.1"); !ok || err != nil {
		t.Fatalf("unblock user ip:10.0.0.1: %v %v", ok, err)
	}
	if r, _ := d.Assess(t.Context(), odd); r.Blocked {
		t.Fatal("still blocked after unblock")
	}
	for range 3 {
		_ = d.Observe(t.Context(), anon, Observation{})
	}
	r, _ := d.Assess(t.Context(), anon)
	if !r.Blocked || r.Block.Kind != BlockAddress || r.Block.ID != "10.0.0.1" {
		t.Fatalf("anonymous: blocked=%v block=%+v, want an address block of 10.0.0.1", r.Blocked, r.Block)
	}
	if ok, err := d.Unblock(t.Context(), BlockAddress, "10.0.0.1"); !ok || err != nil {
		t.Fatalf("unblock address: %v %v", ok, err)
	}
	if _, err := d.Block(t.Context(), BlockAddress, "not-an-ip", time.Minute, ""); err == nil {
		t.Fatal("an address block of a non-address was accepted")
	}
}

// Failing open lets the unknown through, not the known: a block another
// replica made, which this one has seen, still applies while Redis is
// down.
func TestFailOpenKeepsKnownReplicaBlocks(t *testing.T) {
	rs := startRedis(t)
	mk := func() *Detector {
		return newDetector(t, Options{Store: redisStore(t, rs.Addr), FailOpen: true, SyncInterval: 20 * time.Millisecond,
			Rules: []Rule{{Name: "x", Window: time.Minute, RequestsOver: 1000, Actions: []Action{ActionAlert}}}})
	}
	a, b := mk(), mk()
	ana, bob := Subject{User: "ana"}, Subject{User: "bob"}
	_, _ = b.Assess(t.Context(), ana)
	_, _ = b.Assess(t.Context(), bob)
	if _, err := a.Block(t.Context(), BlockUser, "ana", time.Hour, "op"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if r, _ := b.Assess(t.Context(), ana); r.Blocked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B never saw A's block")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs.Kill()
	time.Sleep(300 * time.Millisecond)
	if r, err := b.Assess(t.Context(), ana); !r.Blocked || r.Reason != "op" || err == nil {
		t.Fatalf("B, Redis down, fail_open: blocked=%v reason=%q err=%v; want A's block, and the store error", r.Blocked, r.Reason, err)
	}
	if r, _ := b.Assess(t.Context(), bob); r.Blocked {
		t.Fatal("fail_open refused a user without a block")
	}
}

// A block made on one replica and lifted on another is lifted on the
// first too: its requests are not cut at Watch by what it remembers, and
// a rule firing there again blocks for real (it used to find the lifted
// block "in force" and write nothing).
func TestRemoteUnblockLiftsLocalBlock(t *testing.T) {
	rs := startRedis(t)
	clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	fired := make(chan Record, 4)
	rules := []Rule{{Name: "burst", Window: time.Minute, RequestsOver: 5, Actions: []Action{ActionBlockUser}, BlockFor: time.Hour}}
	a := newDetector(t, Options{Clock: clk.Now, Store: redisStore(t, rs.Addr), SyncInterval: 10 * time.Millisecond,
		Hooks: Hooks{OnAnomaly: func(_ context.Context, r Record) { fired <- r }}, Rules: rules})
	b := newDetector(t, Options{Clock: clk.Now, Store: redisStore(t, rs.Addr), SyncInterval: 10 * time.Millisecond, Rules: rules})
	ctx := t.Context()
	ana := Subject{User: "ana", Session: "s1"}
	if _, err := a.Block(ctx, BlockUser, "ana", 30*24*time.Hour, "operator:oops"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Unblock(ctx, BlockUser, "ana"); !ok || err != nil {
		t.Fatalf("unblock on B: %v %v", ok, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		r, _ := a.Assess(ctx, ana)
		if !r.Blocked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A never saw the unblock in Assess")
		}
		time.Sleep(20 * time.Millisecond)
	}
	live, release := a.Watch(ctx, ana)
	if errors.Is(context.Cause(live), ErrBlocked) {
		t.Errorf("(1) the unblocked user's request passed Assess on A and was cut at Watch by a stale local block")
	}
	release()

	for range 7 {
		_ = a.Observe(ctx, ana, Observation{})
	}
	var rec Record
	select {
	case rec = <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("rule did not fire")
	}
	time.Sleep(100 * time.Millisecond)
	if r, _ := b.Assess(ctx, ana); !r.Blocked {
		t.Errorf("(2) the rule fired on A (record ok, until %v) but B does not block ana: no block was written", rec.Actions[0].Until)
	}
}

// Callers whose address is unknown share one key; a block of it names the
// address "unknown" and can be lifted by that name.
func TestUnknownAddressBlockCanBeLifted(t *testing.T) {
	d := newDetector(t, Options{Rules: []Rule{{Name: "burst", Window: time.Minute, RequestsOver: 2, Actions: []Action{ActionBlockUser}}}})
	nobody := Subject{}
	for range 3 {
		_ = d.Observe(t.Context(), nobody, Observation{})
	}
	r, _ := d.Assess(t.Context(), nobody)
	if !r.Blocked || r.Block.Kind != BlockAddress || r.Block.ID != UnknownAddress {
		t.Fatalf("blocked=%v block=%+v, want an address block of %q", r.Blocked, r.Block, UnknownAddress)
	}
	if ok, err := d.Unblock(t.Context(), BlockAddress, UnknownAddress); !ok || err != nil {
		t.Fatalf("unblock %s: %v %v", UnknownAddress, ok, err)
	}
	if r, _ := d.Assess(t.Context(), nobody); r.Blocked {
		t.Fatal("still blocked after unblock")
	}
	if r, _ := d.Assess(t.Context(), Subject{IP: "192.0.2.1"}); r.Blocked {
		t.Fatal("a known address was blocked")
	}
}

// SetMarkerLonger never shortens what is stored, in either store: the
// longer of two writes wins whatever their order.
func TestSetMarkerLonger(t *testing.T) {
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
			var st Store = NewMemoryStore(clk.Now)
			if name == "redis" {
				st = redisStore(t, startRedis(t).Addr)
			}
			ctx := t.Context()
			steps := []struct {
				val    string
				ttl    time.Duration
				stored bool
			}{
				{"1h", time.Hour, true},          // absent: stored
				{"10m", 10 * time.Minute, false}, // shorter: refused
				{"30d", 720 * time.Hour, true},   // longer: replaces
				{"1h again", time.Hour, false},   // shorter than what is there
			}
			for _, s := range steps {
				ok, err := st.SetMarkerLonger(ctx, "block:u:ana", []byte(s.val), s.ttl)
				if err != nil || ok != s.stored {
					t.Fatalf("%s: stored=%v err=%v, want %v", s.val, ok, err, s.stored)
				}
			}
			snap, err := st.Load(ctx, clk.Now(), Query{Markers: []string{"block:u:ana"}})
			if err != nil || string(snap.Markers["block:u:ana"]) != "30d" {
				t.Fatalf("stored %q (%v), want the 30d block", snap.Markers["block:u:ana"], err)
			}
		})
	}
}
