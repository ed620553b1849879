package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/config"
)

// TestAnomalyStateSurvivesRestart: with anomaly.state_file a restarted
// instance keeps counting where it stopped — four night downloads before
// the restart and two after trip the five-download rule, and the next
// request is refused. Without the file the counters start over and the
// same traffic passes.
func TestAnomalyStateSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stateFile bool
		last      int // status of the 7th download
	}{
		{"state file", true, 403},
		{"no state file", false, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := streamingUpstream(t)
			cfg, base := auditTestConfig(t, up.URL, "batch")
			a := anomalyConfig(up.URL)
			cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
			statePath := filepath.Join(base, "anomaly.state")
			if tc.stateFile {
				cfg.Anomaly.StateFile = statePath
			}
			hk, _ := time.LoadLocation("Asia/Hong_Kong")
			start := time.Date(2026, 12, 3, 2, 0, 0, 0, hk)
			clk := &fakeClock{at: start}
			download := func(r *replayServer, i, want int) {
				t.Helper()
				clk.set(start.Add(time.Duration(i+1) * time.Second))
				resp, _ := get(t, r.front, "files.example.com", fmt.Sprintf("/reports/%d.pdf", i), nil)
				if resp.StatusCode != want {
					t.Fatalf("download %d: %d, want %d", i, resp.StatusCode, want)
				}
			}
			one := startReplayServer(t, cfg, clk)
			for i := range 4 {
				download(one, i, 200)
			}
			one.stop(t)
			if _, err := os.Stat(statePath); (err == nil) != tc.stateFile {
				t.Fatalf("state file after shutdown: %v", err)
			}

			two := startReplayServer(t, cfg, clk)
			download(two, 4, 200)
			download(two, 5, 200) // the sixth: over five, the rule fires
			download(two, 6, tc.last)
			two.stop(t)
		})
	}
}

// TestAnomalyStateUnreadable: a state file that is not one is moved aside,
// the instance starts fresh and serves.
func TestAnomalyStateUnreadable(t *testing.T) {
	up := streamingUpstream(t)
	cfg, base := auditedAnomalyConfig(t, up.URL)
	cfg.Anomaly.StateFile = filepath.Join(base, "anomaly.state")
	if err := os.WriteFile(cfg.Anomaly.StateFile, []byte("not a state {"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{at: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	one := startReplayServer(t, cfg, clk)
	if code := one.status(t); code != 200 {
		t.Fatalf("status %d", code)
	}
	one.stop(t)
	matches, _ := filepath.Glob(cfg.Anomaly.StateFile + ".unreadable-*")
	if len(matches) != 1 {
		t.Fatalf("moved-aside copies: %v", matches)
	}
	if b, _ := os.ReadFile(matches[0]); string(b) != "not a state {" {
		t.Errorf("moved-aside content %q", b)
	}
	// The shutdown saved a good state in its place.
	if b, err := os.ReadFile(cfg.Anomaly.StateFile); err != nil || !strings.HasPrefix(string(b), `{"version":1`) {
		t.Errorf("state after shutdown: %q %v", b, err)
	}
}

// TestAnomalyStateUnwritable: a state file that cannot be written stops
// the start, instead of failing every minute unseen.
func TestAnomalyStateUnwritable(t *testing.T) {
	up := streamingUpstream(t)
	cfg, base := auditedAnomalyConfig(t, up.URL)
	cfg.Anomaly.StateFile = filepath.Join(base, "no-such-dir", "anomaly.state")
	buildErr := buildAnomalyErr(t, cfg, true)
	if buildErr == nil || !strings.Contains(buildErr.Error(), "anomaly.state_file") || !errors.Is(buildErr, fs.ErrNotExist) {
		t.Fatalf("build error = %v, want anomaly.state_file wrapping ErrNotExist", buildErr)
	}
}

// TestAnomalyStateNeedsAuditLog: without the audit log nobody restores the
// blocks, so the state file (which leaves them out) is refused.
func TestAnomalyStateNeedsAuditLog(t *testing.T) {
	up := streamingUpstream(t)
	cfg := anomalyConfig(up.URL)
	cfg.Audit.Dir = ""
	cfg.Anomaly.StateFile = filepath.Join(t.TempDir(), "anomaly.state")
	buildErr := buildAnomalyErr(t, cfg, false)
	if buildErr == nil || !strings.Contains(buildErr.Error(), "needs the audit log") {
		t.Fatalf("build error = %v", buildErr)
	}
	if _, err := os.Stat(cfg.Anomaly.StateFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused start wrote the state file: %v", err)
	}
}

// TestAnomalyStateIsADirectory: a path that cannot be read (here a
// directory) stops the start and is not moved aside.
func TestAnomalyStateIsADirectory(t *testing.T) {
	up := streamingUpstream(t)
	cfg, base := auditedAnomalyConfig(t, up.URL)
	cfg.Anomaly.StateFile = filepath.Join(base, "state-dir")
	if err := os.Mkdir(cfg.Anomaly.StateFile, 0o700); err != nil {
		t.Fatal(err)
	}
	buildErr := buildAnomalyErr(t, cfg, true)
	if buildErr == nil || errors.Is(buildErr, anomaly.ErrState) {
		t.Fatalf("build error = %v, want a read error", buildErr)
	}
	if fi, err := os.Stat(cfg.Anomaly.StateFile); err != nil || !fi.IsDir() {
		t.Errorf("the unreadable path was moved: %v", err)
	}
}

// auditedAnomalyConfig is the anomaly test config with a batch audit log
// (which restores blocks) under base.
func auditedAnomalyConfig(t *testing.T, upstream string) (*config.Config, string) {
	t.Helper()
	cfg, base := auditTestConfig(t, upstream, "batch")
	a := anomalyConfig(upstream)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	return cfg, base
}

// buildAnomalyErr builds the anomaly stage for cfg (after the audit log
// when withAudit) and returns its error. Whatever was built is closed
// before the test's temporary directories go.
func buildAnomalyErr(t *testing.T, cfg *config.Config, withAudit bool) error {
	t.Helper()
	var buildErr error
	s, _ := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), extra: func(w *Wiring) {
		if withAudit {
			if err := buildAudit(context.Background(), w); err != nil {
				t.Fatalf("build audit: %v", err)
			}
		}
		buildErr = buildAnomaly(context.Background(), w)
	}})
	t.Cleanup(func() { _ = s.runClose(context.Background()) })
	return buildErr
}
