package proxy

import (
	"context"
	"testing"

	"github.com/gatehouse-dev/gatehouse/anomaly"
)

// An admin block that cannot be written down is refused before it takes
// effect: the block already in force stays (undoing an applied block used
// to lift it).
func TestAdminBlockUnrecordedKeepsBlockInForce(t *testing.T) {
	up := streamingUpstream(t)
	rec := &fakeRecorder{}
	s, _, admin := anomalyServer(t, anomalyConfig(up.URL), nil, rec)
	st := s.wiring.Risk.(*anomalyStage)
	ctx := context.Background()
	if code, out := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"user":"alice-sub","for":"24h","reason":"incident"}`); code != 200 {
		t.Fatalf("block: %d %v", code, out)
	}
	sub := anomaly.Subject{User: "alice-sub", Session: "s1"}
	if r, _ := st.d.Assess(ctx, sub); !r.Blocked {
		t.Fatal("the recorded block is not in force")
	}
	rec.mu.Lock()
	rec.err = context.DeadlineExceeded // the audit log briefly unwritable
	rec.mu.Unlock()
	if code, _ := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"user":"alice-sub","for":"1m"}`); code != 503 {
		t.Fatalf("unrecorded block answered %d, want 503", code)
	}
	if code, _ := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"user":"bob-sub","for":"1m"}`); code != 503 {
		t.Fatalf("unrecorded block answered %d, want 503", code)
	}
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	r, _ := st.d.Assess(ctx, sub)
	if !r.Blocked || r.Reason != "operator:incident" {
		t.Fatalf("after a refused block: blocked=%v reason=%q, want the recorded 24h block", r.Blocked, r.Reason)
	}
	if r, _ := st.d.Assess(ctx, anomaly.Subject{User: "bob-sub"}); r.Blocked {
		t.Fatal("an unrecorded block took effect")
	}
}
