package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
)

// fakeClock is a settable clock for several servers in turn.
type fakeClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.at }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.at = t }

// replayServer is one Gatehouse instance over a real audit log and the
// real anomaly builder (memory store), for alice (session s1).
type replayServer struct {
	s     *Server
	front *httptest.Server
	admin *httptest.Server
}

func startReplayServer(t *testing.T, cfg *config.Config, clk *fakeClock) *replayServer {
	t.Helper()
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), extra: func(w *Wiring) {
		w.Clock = clk.now
		if err := buildAudit(context.Background(), w); err != nil {
			t.Fatalf("build audit: %v", err)
		}
		if err := buildAnomaly(context.Background(), w); err != nil {
			t.Fatalf("build anomaly: %v", err)
		}
	}})
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	return &replayServer{s: s, front: front, admin: admin}
}

// stop shuts the instance down as serve does (its last snapshot included).
func (r *replayServer) stop(t *testing.T) {
	t.Helper()
	r.front.Close()
	r.admin.Close()
	if err := r.s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// blocks lists the instance's blocks as "kind:id".
func (r *replayServer) blocks(t *testing.T) []string {
	t.Helper()
	code, body := adminCall(t, r.admin, "GET", "/api/v1/anomaly/blocks", "")
	if code != 200 {
		t.Fatalf("list blocks: %d %v", code, body)
	}
	var out []string
	list, _ := body["blocks"].([]any)
	for _, v := range list {
		m, _ := v.(map[string]any)
		out = append(out, fmt.Sprint(m["kind"], ":", m["id"]))
	}
	sort.Strings(out)
	return out
}

func (r *replayServer) status(t *testing.T) int {
	t.Helper()
	resp, _ := get(t, r.front, "files.example.com", "/index.html", nil)
	return resp.StatusCode
}

func (r *replayServer) replayWindow() time.Duration {
	r.s.wiring.Risk.(*anomalyStage).replay.mu.Lock()
	defer r.s.wiring.Risk.(*anomalyStage).replay.mu.Unlock()
	return r.s.wiring.Risk.(*anomalyStage).replay.stats.Window
}

// TestAnomalyBlocksSurviveRestart: with the memory store, a restart
// restores the blocks still running from the audit log — a rule's block of
// a session and an operator's block of a user — but not an operator's
// block that was lifted, nor blocks that have ended meanwhile.
func TestAnomalyBlocksSurviveRestart(t *testing.T) {
	up := streamingUpstream(t)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	a := anomalyConfig(up.URL)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	start := time.Date(2026, 12, 3, 2, 0, 0, 0, hk)
	clk := &fakeClock{at: start}

	one := startReplayServer(t, cfg, clk)
	for _, b := range []string{`{"user":"mallory","for":"2h","reason":"case 12"}`, `{"user":"carol","for":"2h"}`} {
		if code, body := adminCall(t, one.admin, "POST", "/api/v1/anomaly/block", b); code != 200 {
			t.Fatalf("block %s: %d %v", b, code, body)
		}
	}
	if code, body := adminCall(t, one.admin, "POST", "/api/v1/anomaly/unblock", `{"user":"carol"}`); code != 200 {
		t.Fatalf("unblock carol: %d %v", code, body)
	}
	// Six downloads at night trip the rule: alice's session s1 is blocked.
	for i := range 7 {
		clk.set(start.Add(time.Duration(i+1) * time.Second))
		resp, _ := get(t, one.front, "files.example.com", fmt.Sprintf("/reports/%d.pdf", i), nil)
		if want := map[bool]int{true: 403, false: 200}[i == 6]; resp.StatusCode != want {
			t.Fatalf("download %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	want := []string{"session:s1", "user:mallory"}
	if got := one.blocks(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("blocks before restart: %v, want %v", got, want)
	}
	one.stop(t)

	clk.set(start.Add(10 * time.Minute))
	two := startReplayServer(t, cfg, clk)
	if got := two.blocks(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("blocks after restart: %v, want %v", got, want)
	}
	if code := two.status(t); code != http.StatusForbidden {
		t.Errorf("alice's blocked session after restart: %d, want 403", code)
	}
	two.stop(t)

	// block_for is 1h (session), mallory's 2h: at +90 min only mallory's runs.
	clk.set(start.Add(90 * time.Minute))
	three := startReplayServer(t, cfg, clk)
	if got := three.blocks(t); strings.Join(got, ",") != "user:mallory" {
		t.Errorf("blocks at +90m: %v, want [user:mallory]", got)
	}
	if code := three.status(t); code != 200 {
		t.Errorf("alice after her block ended: %d, want 200", code)
	}
	three.stop(t)
}

// TestAnomalyLongBlockSurvivesViaSnapshots: a month-long block made long
// before the replay window is found in the snapshot an instance wrote at
// its start, and, when the window holds no snapshot at all, by reading
// back the long window.
func TestAnomalyLongBlockSurvivesViaSnapshots(t *testing.T) {
	up := streamingUpstream(t)
	cfg, base := auditTestConfig(t, up.URL, "batch")
	a := anomalyConfig(up.URL)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	start := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{at: start}

	one := startReplayServer(t, cfg, clk)
	if code, body := adminCall(t, one.admin, "POST", "/api/v1/anomaly/block", `{"user":"mallory","for":"720h"}`); code != 200 {
		t.Fatalf("block: %d %v", code, body)
	}
	one.stop(t)

	for _, step := range []struct {
		at     time.Duration
		window time.Duration
	}{
		{20 * time.Hour, blockReplayWindow},          // the block record itself is in the window
		{40 * time.Hour, blockReplayWindow},          // only the snapshot written at +20h is
		{10 * 24 * time.Hour, blockReplayLongWindow}, // down for a week: the long window
	} {
		clk.set(start.Add(step.at))
		s := startReplayServer(t, cfg, clk)
		if got := s.blocks(t); strings.Join(got, ",") != "user:mallory" {
			t.Errorf("+%v: blocks %v, want [user:mallory]", step.at, got)
		}
		if w := s.replayWindow(); w != step.window {
			t.Errorf("+%v: replay read %v, want %v", step.at, w, step.window)
		}
		s.stop(t)
	}
	// The snapshots are signed records like any other.
	if _, err := audit.Verify(cfg.Audit.Dir, audit.VerifyOptions{Verifiers: []note.Verifier{auditVerifier(t, base)}}); err != nil {
		t.Errorf("verify: %v", err)
	}
}

// TestAnomalyBlockReplayFailure: when the audit log cannot be read at
// start the blocks are unknown: failing closed, every request is refused
// as blocked and /readyz names the replay; failing open, requests are
// served while the replay is retried.
func TestAnomalyBlockReplayFailure(t *testing.T) {
	up := streamingUpstream(t)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	a := anomalyConfig(up.URL)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	clk := &fakeClock{at: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	one := startReplayServer(t, cfg, clk)
	one.stop(t)
	segs, _ := filepath.Glob(filepath.Join(cfg.Audit.Dir, "segments", "*"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("{\"v\":1,garbage}\n")
	f.Close()

	two := startReplayServer(t, cfg, clk)
	st := two.s.wiring.Risk.(*anomalyStage)
	if code := two.status(t); code != http.StatusForbidden {
		t.Errorf("request with the blocks unknown: %d, want 403", code)
	}
	if err := st.ready(context.Background()); err == nil || !strings.Contains(err.Error(), "replay blocks") {
		t.Errorf("readiness = %v, want the replay's error", err)
	}
	risk, err := st.Assess(context.Background(), &Request{ID: "r1", Path: "/"}, alice)
	if !risk.Blocked || err == nil {
		t.Errorf("fail_closed Assess = %+v, %v; want blocked with the error", risk, err)
	}

	// The same state failing open: judged without the blocks.
	cfg.Anomaly.OnStoreError = "fail_open"
	three := startReplayServer(t, cfg, clk)
	st3 := three.s.wiring.Risk.(*anomalyStage)
	st3.replayed.Store(false)
	st3.replay.mu.Lock()
	st3.replay.err = errBlocksPending
	st3.replay.mu.Unlock()
	if risk, _ := st3.Assess(context.Background(), &Request{ID: "r2", Path: "/"}, alice); risk.Blocked {
		t.Errorf("fail_open Assess = %+v, want not blocked", risk)
	}
	if err := st3.ready(context.Background()); err != nil {
		t.Errorf("fail_open readiness = %v, want ready", err)
	}
}

// blockSink records the blocks a replay applies.
type blockSink struct{ got []string }

func (b *blockSink) Block(_ context.Context, kind anomaly.BlockKind, id string, dur time.Duration, reason string) (anomaly.Block, error) {
	if kind == anomaly.BlockAddress && id != anomaly.UnknownAddress {
		if _, err := netip.ParseAddr(id); err != nil {
			return anomaly.Block{}, fmt.Errorf("%w: %v", anomaly.ErrBlockTarget, err) // as the detector refuses it
		}
	}
	b.got = append(b.got, fmt.Sprintf("%s:%s %v %s", kind, id, dur.Round(time.Minute), reason))
	return anomaly.Block{}, nil
}

// TestReplayBlocksFoldsRecords: the replay folds the records themselves, in
// order — a rule firing with two block actions (each naming its target), an
// operator's block and unblock, a legacy rule record without kind/id — and a
// snapshot only adds to what the records say (a block recorded while the
// snapshot was being taken survives it).
func TestReplayBlocksFoldsRecords(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	until := func(m int) string { return at(m).Format(time.RFC3339) }
	anomalyRec := func(m int, sub, sid string, actions []string, detail map[string]any, reason, rule string) *audit.Record {
		return &audit.Record{Type: audit.TypeAnomaly, Time: at(m), Subject: sub, SessionID: sid, Actions: actions, Detail: detail, Reason: reason, Rule: rule}
	}
	dir := t.TempDir()
	writeAuditLog(t, dir, false, []*audit.Record{
		anomalyRec(-300, "", "", []string{"snapshot"}, map[string]any{"action": "snapshot", "blocks": []any{
			map[string]any{"kind": "user", "id": "longterm", "until": until(10000), "reason": "operator:case 7"}}}, blockSnapshotReason, ""),
		anomalyRec(-120, "ana", "s-ana", []string{"alert", "block_session", "block_user"}, map[string]any{"actions": []any{
			map[string]any{"action": "alert", "ok": true},
			map[string]any{"action": "block_session", "ok": true, "until": until(60), "kind": "session", "id": "s-ana"},
			map[string]any{"action": "block_user", "ok": true, "until": until(60), "kind": "user", "id": "ana"},
		}}, "", "bulk-download-at-night"),
		// written before records named their targets
		anomalyRec(-100, "ben", "s-ben", []string{"block_session"}, map[string]any{"actions": []any{
			map[string]any{"action": "block_session", "ok": true, "until": until(30)}}}, "", "unusual-volume"),
		anomalyRec(-90, "cat", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "cat", "until": until(120), "ok": true}, "operator:case 9", ""),
		anomalyRec(-80, "dan", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "dan", "until": until(120), "ok": true}, "operator", ""),
		// a snapshot taken while eve's block was being recorded: it does not list eve
		anomalyRec(-70, "eve", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "eve", "until": until(120), "ok": true}, "operator", ""),
		anomalyRec(-69, "", "", []string{"snapshot"}, map[string]any{"action": "snapshot", "blocks": []any{
			map[string]any{"kind": "user", "id": "cat", "until": until(120), "reason": "operator:case 9"}}}, blockSnapshotReason, ""),
		anomalyRec(-60, "dan", "", []string{"unblock"}, map[string]any{"action": "unblock", "kind": "user", "id": "dan"}, "operator", ""),
		// refused, and ended
		anomalyRec(-50, "fay", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "fay", "until": until(120), "ok": false}, "operator", ""),
		anomalyRec(-40, "gil", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "gil", "until": until(-1), "ok": true}, "operator", ""),
		// an anonymous caller's address, as recorded now and as before
		// addresses had their own kind
		anomalyRec(-30, "", "", []string{"block_user"}, map[string]any{"actions": []any{
			map[string]any{"action": "block_user", "ok": true, "until": until(60), "kind": "address", "id": "203.0.113.9"}}}, "", "burst"),
		anomalyRec(-20, "", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "ip:198.51.100.7", "until": until(60), "ok": true}, "operator", ""),
		// legacy, but "bob" is no address: the user "ip:bob"
		anomalyRec(-19, "ip:bob", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "ip:bob", "until": until(60), "ok": true}, "operator", ""),
		// written since: a user id reading "ip:…" is a user
		anomalyRec(-18, "ip:10.0.0.1", "", []string{"block"}, map[string]any{"action": "block", "kind": "user", "id": "ip:10.0.0.1", "until": until(60), "ok": true, "address_kind": true}, "operator", ""),
		// the unknown address, and a record naming no address (skipped)
		anomalyRec(-17, "", "", []string{"block_user"}, map[string]any{"actions": []any{
			map[string]any{"action": "block_user", "ok": true, "until": until(60), "kind": "address", "id": "unknown"}}}, "", "burst"),
		anomalyRec(-16, "", "", []string{"block"}, map[string]any{"action": "block", "kind": "address", "id": "nope", "until": until(60), "ok": true, "address_kind": true}, "operator", ""),
	})
	sink := &blockSink{}
	stats, err := replayBlocks(context.Background(), dir, sink, now)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(sink.got)
	want := []string{
		"address:198.51.100.7 1h0m0s operator",
		"address:203.0.113.9 1h0m0s anomaly:burst",
		"address:unknown 1h0m0s anomaly:burst",
		"session:s-ana 1h0m0s anomaly:bulk-download-at-night",
		"session:s-ben 30m0s anomaly:unusual-volume",
		"user:ana 1h0m0s anomaly:bulk-download-at-night",
		"user:cat 2h0m0s operator:case 9",
		"user:eve 2h0m0s operator",
		"user:ip:10.0.0.1 1h0m0s operator",
		"user:ip:bob 1h0m0s operator",
		"user:longterm 166h40m0s operator:case 7",
	}
	if strings.Join(sink.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("restored:\n%s\nwant:\n%s", strings.Join(sink.got, "\n"), strings.Join(want, "\n"))
	}
	if stats.Restored != len(want) || stats.Expired != 1 || stats.Skipped != 1 || stats.Window != blockReplayWindow {
		t.Errorf("stats %+v", stats)
	}
}

// TestAnomalyBlocksSurviveCrash: an instance that dies without its
// shutdown snapshot (only the one at its start, before the blocks) still
// has its blocks restored from the records: a rule blocking both the
// session and the user, and an operator's block lifted again.
func TestAnomalyBlocksSurviveCrash(t *testing.T) {
	up := streamingUpstream(t)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	a := anomalyConfig(up.URL)
	cfg.AdminToken, cfg.Anomaly, cfg.Session = a.AdminToken, a.Anomaly, a.Session
	cfg.Anomaly.Rules[0].Action = []string{"alert", "block_session", "block_user"}
	hk, _ := time.LoadLocation("Asia/Hong_Kong")
	start := time.Date(2026, 12, 3, 2, 0, 0, 0, hk)
	clk := &fakeClock{at: start}
	one := startReplayServer(t, cfg, clk)
	for _, c := range []struct{ path, body string }{
		{"/api/v1/anomaly/block", `{"user":"mallory","for":"2h"}`},
		{"/api/v1/anomaly/block", `{"user":"carol","for":"2h"}`},
		{"/api/v1/anomaly/unblock", `{"user":"carol"}`},
	} {
		if code, body := adminCall(t, one.admin, "POST", c.path, c.body); code != 200 {
			t.Fatalf("%s %s: %d %v", c.path, c.body, code, body)
		}
	}
	for i := range 7 {
		clk.set(start.Add(time.Duration(i+1) * time.Second))
		get(t, one.front, "files.example.com", fmt.Sprintf("/reports/%d.pdf", i), nil)
	}
	want := []string{"session:s1", "user:alice-sub", "user:mallory"}
	if got := one.blocks(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("blocks before the crash: %v, want %v", got, want)
	}
	// A crash: no shutdown snapshot (the audit log itself is closed, as
	// its records were already written).
	one.s.wiring.Risk.(*anomalyStage).replayed.Store(false)
	one.stop(t)

	clk.set(start.Add(10 * time.Minute))
	two := startReplayServer(t, cfg, clk)
	if got := two.blocks(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("blocks after the crash: %v, want %v", got, want)
	}
	two.stop(t)
}

// TestOperatorBlockNeedsItsRecord: an operator's block or unblock that the
// audit log cannot hold is refused (503) and changes nothing.
func TestOperatorBlockNeedsItsRecord(t *testing.T) {
	up := streamingUpstream(t)
	cfg := anomalyConfig(up.URL)
	rec := &fakeRecorder{}
	_, _, admin := anomalyServer(t, cfg, nil, rec)
	if code, body := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"user":"kept","for":"1h"}`); code != 200 {
		t.Fatalf("block: %d %v", code, body)
	}
	rec.mu.Lock()
	rec.err = errors.New("disk full")
	rec.mu.Unlock()
	if code, _ := adminCall(t, admin, "POST", "/api/v1/anomaly/block", `{"user":"mallory","for":"1h"}`); code != http.StatusServiceUnavailable {
		t.Errorf("unrecorded block: %d, want 503", code)
	}
	if code, _ := adminCall(t, admin, "POST", "/api/v1/anomaly/unblock", `{"user":"kept"}`); code != http.StatusServiceUnavailable {
		t.Errorf("unrecorded unblock: %d, want 503", code)
	}
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	_, body := adminCall(t, admin, "GET", "/api/v1/anomaly/blocks", "")
	var got []string
	list, _ := body["blocks"].([]any)
	for _, v := range list {
		m, _ := v.(map[string]any)
		got = append(got, fmt.Sprint(m["id"]))
	}
	if strings.Join(got, ",") != "kept" {
		t.Errorf("blocks after refused changes: %v, want [kept]", got)
	}
}
