package proxy

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authn"
)

// TestReplayRevocationsStepUpSupersededSession: a step_up record's
// previous_session (revoked at the step-up) is revoked again by the replay;
// the step-up's own, new session is not.
func TestReplayRevocationsStepUpSupersededSession(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	const lifetime = 12 * time.Hour
	recs := []*audit.Record{
		{Type: audit.TypeStepUp, Time: now.Add(-13 * time.Hour), Subject: "alice", SessionID: "new-old", Outcome: "mfa",
			Detail: map[string]any{"previous_session": "prev-old"}},
		{Type: audit.TypeStepUp, Time: now.Add(-time.Hour), Subject: "alice", SessionID: "new-1", Outcome: "mfa",
			Detail: map[string]any{"previous_session": "prev-1"}},
		{Type: audit.TypeStepUp, Time: now.Add(-time.Hour), Subject: "bob", SessionID: "new-2", Outcome: "no_mfa",
			Detail: map[string]any{"previous_session": ""}},
	}
	dir := filepath.Join(t.TempDir(), "audit")
	writeAuditLog(t, dir, true, recs)

	clk := &testClock{t: now}
	ms := authn.NewMemoryStoreClock(clk.now)
	stats, err := replayRevocations(context.Background(), dir, ms, now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Sessions != 1 || stats.Expired != 1 {
		t.Errorf("stats %+v, want 1 session, 1 expired", stats)
	}
	ctx := context.Background()
	created := now.Add(-2 * time.Hour)
	for _, c := range []struct {
		id, sub     string
		wantRevoked bool
	}{
		{"prev-1", "alice", true},
		{"new-1", "alice", false},
		{"new-2", "bob", false},
		{"prev-old", "alice", false},
	} {
		got, err := ms.Revoked(ctx, c.id, c.sub, created)
		if err != nil || got != c.wantRevoked {
			t.Errorf("%s: revoked %v, %v; want %v", c.id, got, err, c.wantRevoked)
		}
	}
}
