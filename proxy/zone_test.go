package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestOptionsZoneMovesTimeOfDay: Options.Zone (what `gatehouse demo --at`
// passes) is the zone of the anomaly stage's night and of the policy's
// input.time, in place of anomaly.timezone, while the clock stays real.
func TestOptionsZoneMovesTimeOfDay(t *testing.T) {
	// Each policy allows only at its hour, and only by night or by day:
	// without the zone, at most one of the two could pass at any real time.
	policyAt := map[int]string{
		2:  "package gatehouse.authz\n\ndefault allow := false\n\nallow if {\n\tinput.time.hour == 2\n\tinput.time.night\n}\n",
		14: "package gatehouse.authz\n\ndefault allow := false\n\nallow if {\n\tinput.time.hour == 14\n\tnot input.time.night\n}\n",
	}
	// A fixed zone in which it is hh:00 now.
	zoneAt := func(h int) *time.Location {
		n := time.Now().UTC()
		off := (h*3600 - (n.Hour()*3600 + n.Minute()*60 + n.Second())) % 86400
		if off > 43200 {
			off -= 86400
		} else if off <= -43200 {
			off += 86400
		}
		return time.FixedZone("test", off)
	}
	for _, hour := range []int{2, 14} {
		up, _ := echoUpstream(t, nil)
		cfg := anomalyConfig(up.URL)
		dir := t.TempDir()
		writePolicyFile(t, dir, "authz.rego", policyAt[hour])
		cfg.Policy.Dir = dir
		cfg.Log.Access = false
		s, err := New(context.Background(), cfg, Options{Logger: zap.NewNop(), Zone: zoneAt(hour), Builders: []Builder{
			func(ctx context.Context, w *Wiring) error {
				w.Auth, w.Recorder = &fakeAuth{id: alice}, discardRecorder{}
				if err := buildAnomaly(ctx, w); err != nil {
					return err
				}
				return buildPolicy(ctx, w)
			}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.runClose(context.Background()) })
		front := httptest.NewServer(s)
		t.Cleanup(front.Close)
		eventually(t, func() bool { // the policy compiles in the background
			resp, _ := get(t, front, "app.example.com", "/", nil)
			return resp.StatusCode == http.StatusOK
		})
		if resp, _ := get(t, front, "app.example.com", "/", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("zone at %02d:00: %d, want the policy of that hour to allow", hour, resp.StatusCode)
		}
	}
}
