package proxy

import (
	"strings"
	"testing"
	"time"
)

// A block of an OIDC user whose id reads "ip:…" (admin API, kind user) is
// the same user block after a restart: never an address block (that would
// let the user in again and block a stranger), and never a record the
// replay cannot restore ("ip:bob" is no address), which would fail the
// replay and, failing closed, refuse every request.
func TestReplayKeepsUserIDsReadingIP(t *testing.T) {
	for _, user := range []string{"ip:10.0.0.1", "ip:bob"} {
		t.Run(user, func(t *testing.T) {
			up := streamingUpstream(t)
			cfg, _ := auditTestConfig(t, up.URL, "batch")
			a := anomalyConfig(up.URL)
			cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
			start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
			clk := &fakeClock{at: start}
			one := startReplayServer(t, cfg, clk)
			if code, body := adminCall(t, one.admin, "POST", "/api/v1/anomaly/block", `{"user":"`+user+`","for":"2h"}`); code != 200 {
				t.Fatalf("block: %d %v", code, body)
			}
			if code := one.status(t); code != 200 {
				t.Fatalf("alice before restart: %d", code)
			}
			before := one.blocks(t)
			one.stop(t)
			clk.set(start.Add(time.Minute))
			two := startReplayServer(t, cfg, clk)
			defer two.stop(t)
			if after := two.blocks(t); strings.Join(before, ",") != strings.Join(after, ",") {
				t.Errorf("restart changed the blocks: %v -> %v", before, after)
			}
			st := two.s.wiring.Risk.(*anomalyStage)
			if code := two.status(t); st.replay.state() != nil || code != 200 {
				t.Errorf("after restart: replay %v, alice gets %d", st.replay.state(), code)
			}
		})
	}
}
