package proxy

import (
	"strings"
	"testing"
	"time"
)

// A block of the OIDC user "ip:10.0.0.1" (admin API, kind user) is the
// same user block after a restart: never an address block of 10.0.0.1
// (that would let the user in again and block a stranger).
func TestReplayKeepsUserIDsReadingIP(t *testing.T) {
	up := streamingUpstream(t)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	a := anomalyConfig(up.URL)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{at: start}
	one := startReplayServer(t, cfg, clk)
	if code, body := adminCall(t, one.admin, "POST", "/api/v1/anomaly/block", `{"user":"ip:10.0.0.1","for":"2h"}`); code != 200 {
		t.Fatalf("block: %d %v", code, body)
	}
	before := one.blocks(t)
	one.stop(t)
	clk.set(start.Add(time.Minute))
	two := startReplayServer(t, cfg, clk)
	after := two.blocks(t)
	two.stop(t)
	if strings.Join(before, ",") != strings.Join(after, ",") {
		t.Errorf("restart changed the blocks: %v -> %v", before, after)
	}
}

// A user "ip:bob" is blocked and restored as a user; and a record naming
// nothing that can be blocked is skipped, never failing the replay (which,
// failing closed, refuses every request).
func TestReplaySurvivesUnblockableRecord(t *testing.T) {
	up := streamingUpstream(t)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	a := anomalyConfig(up.URL)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{at: start}
	one := startReplayServer(t, cfg, clk)
	if code, body := adminCall(t, one.admin, "POST", "/api/v1/anomaly/block", `{"user":"ip:bob","for":"2h"}`); code != 200 {
		t.Fatalf("block: %d %v", code, body)
	}
	if code := one.status(t); code != 200 {
		t.Fatalf("alice before restart: %d", code)
	}
	one.stop(t)
	clk.set(start.Add(time.Minute))
	two := startReplayServer(t, cfg, clk)
	defer two.stop(t)
	st := two.s.wiring.Risk.(*anomalyStage)
	code := two.status(t)
	if st.replay.state() != nil || code != 200 {
		t.Errorf("one block of user ip:bob broke the replay: %v, alice gets %d", st.replay.state(), code)
	}
}
