package anomaly

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

var hkNight2am = func(t testing.TB) time.Time {
	return time.Date(2026, 12, 3, 2, 0, 0, 0, mustZone(t, "Asia/Hong_Kong"))
}

// TestRules drives each rule type with a sequence of observations and
// checks whether (and how often) it fires and which flags Assess reports.
func TestRules(t *testing.T) {
	hk := mustZone(t, "Asia/Hong_Kong")
	day := time.Date(2026, 12, 3, 14, 0, 0, 0, hk)
	night := time.Date(2026, 12, 3, 2, 0, 0, 0, hk)
	type obs struct {
		n        int
		bytes    int64
		download bool
		distinct bool // a new path each time
		session  string
		every    time.Duration
		after    time.Duration // wait after the group
	}
	for _, tc := range []struct {
		name   string
		rule   Rule
		at     time.Time
		obs    []obs
		fires  int
		flags  []string // after the observations, in Assess
		nflags []string // must not be there
	}{
		{"downloads over at night", Rule{Night: true, Window: time.Hour, DownloadsOver: 50},
			night, []obs{{n: 51, download: true}}, 1, []string{FlagNight, FlagBulkDownload, "r"}, nil},
		{"downloads at the threshold do not fire", Rule{Night: true, Window: time.Hour, DownloadsOver: 50},
			night, []obs{{n: 50, download: true}, {n: 20}}, 0, []string{FlagNight}, []string{FlagBulkDownload}},
		{"night rule silent by day", Rule{Night: true, Window: time.Hour, DownloadsOver: 5},
			day, []obs{{n: 60, download: true}}, 0, nil, []string{FlagNight, FlagBulkDownload}},
		{"night rule across midnight", Rule{Night: true, Window: time.Hour, DownloadsOver: 5},
			time.Date(2026, 12, 3, 23, 50, 0, 0, hk), []obs{{n: 6, download: true, every: 3 * time.Minute}}, 1, []string{FlagNight, FlagBulkDownload}, nil},
		{"night rule ignores the evening before", Rule{Night: true, Window: time.Hour, DownloadsOver: 50},
			time.Date(2026, 12, 3, 21, 30, 0, 0, hk), []obs{{n: 40, download: true, after: 35 * time.Minute}, {n: 11, download: true}}, 0, []string{FlagNight}, []string{FlagBulkDownload}},
		{"sliding window forgets old downloads", Rule{Window: 10 * time.Minute, DownloadsOver: 5},
			day, []obs{{n: 10, download: true, every: 3 * time.Minute}}, 0, nil, []string{FlagBulkDownload}},
		{"bytes over", Rule{Window: time.Hour, BytesOver: 1000},
			day, []obs{{n: 3, bytes: 400}}, 1, []string{FlagBulkBytes}, nil},
		{"bytes at threshold", Rule{Window: time.Hour, BytesOver: 1200},
			day, []obs{{n: 3, bytes: 400}}, 0, nil, []string{FlagBulkBytes}},
		{"requests over", Rule{Window: time.Minute, RequestsOver: 100},
			day, []obs{{n: 101}}, 1, []string{FlagRequestBurst}, nil},
		{"requests over fires once (idempotent)", Rule{Window: time.Minute, RequestsOver: 10},
			day, []obs{{n: 50}}, 1, []string{FlagRequestBurst}, nil},
		{"distinct paths over", Rule{Window: time.Hour, DistinctPathsOver: 20},
			day, []obs{{n: 21, distinct: true}}, 1, []string{FlagManyPaths}, nil},
		{"same path is one distinct path", Rule{Window: time.Hour, DistinctPathsOver: 20},
			day, []obs{{n: 100}}, 0, nil, []string{FlagManyPaths}},
		{"all conditions must hold", Rule{Window: time.Hour, DownloadsOver: 3, BytesOver: 10_000},
			day, []obs{{n: 10, download: true, bytes: 10}}, 0, nil, []string{FlagBulkDownload}},
		{"per session counts sessions apart", Rule{Window: time.Hour, Per: PerSession, DownloadsOver: 5},
			day, []obs{{n: 5, download: true, session: "s1"}, {n: 5, download: true, session: "s2"}}, 0, nil, nil},
		{"per user adds sessions up", Rule{Window: time.Hour, DownloadsOver: 5},
			day, []obs{{n: 5, download: true, session: "s1"}, {n: 5, download: true, session: "s2"}}, 1, []string{FlagBulkDownload}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(tc.at)
			rec := &recorder{}
			r := tc.rule
			r.Name = "r"
			r.Actions = []Action{ActionAlert}
			d := newDetector(t, Options{Zone: hk, Night: "22:00-06:00", Clock: clk.Now, Hooks: rec.hooks(), Rules: []Rule{r}})
			sess := ""
			k := 0
			for _, o := range tc.obs {
				for range o.n {
					sess = o.session
					p := "/same"
					if o.distinct {
						p = fmt.Sprintf("/p/%d", k)
					}
					k++
					if err := d.Observe(t.Context(), Subject{User: "ana", Session: o.session}, Observation{Path: p, Bytes: o.bytes, Download: o.download}); err != nil {
						t.Fatal(err)
					}
					clk.Advance(o.every)
				}
				clk.Advance(o.after)
			}
			if got := len(rec.Records()); got != tc.fires {
				t.Fatalf("fired %d times, want %d", got, tc.fires)
			}
			risk, err := d.Assess(t.Context(), Subject{User: "ana", Session: sess})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.flags {
				if !contains(risk.Flags, f) {
					t.Errorf("flags %v lack %q", risk.Flags, f)
				}
			}
			for _, f := range tc.nflags {
				if contains(risk.Flags, f) {
					t.Errorf("flags %v have %q", risk.Flags, f)
				}
			}
			if tc.fires > 0 {
				got := rec.Records()[0]
				if got.Rule != "r" || got.User != "ana" || len(got.Actions) != 1 || got.Actions[0].Action != ActionAlert || !got.Actions[0].OK {
					t.Errorf("record = %+v", got)
				}
				if got.Counts.Requests == 0 {
					t.Errorf("record has no counters: %+v", got)
				}
			}
		})
	}
}

func TestRuleValidation(t *testing.T) {
	ok := Rule{Name: "a", Window: time.Hour, DownloadsOver: 1, Actions: []Action{ActionAlert}}
	for _, tc := range []struct {
		name  string
		night string
		mod   func(r *Rule)
	}{
		{"no name", "", func(r *Rule) { r.Name = "" }},
		{"no window", "", func(r *Rule) { r.Window = 0 }},
		{"no condition", "", func(r *Rule) { r.DownloadsOver = 0 }},
		{"no action", "", func(r *Rule) { r.Actions = nil }},
		{"unknown action", "", func(r *Rule) { r.Actions = []Action{"shout"} }},
		{"revoke without revoker", "", func(r *Rule) { r.Actions = []Action{ActionRevoke} }},
		{"night without window", "", func(r *Rule) { r.Night = true }},
		{"bad per", "", func(r *Rule) { r.Per = "team" }},
		{"negative", "", func(r *Rule) { r.BytesOver = -1 }},
		{"bad metric", "", func(r *Rule) { r.AboveBaseline = 2; r.Metric = "moon" }},
		{"duplicate action", "", func(r *Rule) { r.Actions = []Action{ActionAlert, ActionAlert} }},
	} {
		r := ok
		tc.mod(&r)
		if _, err := New(Options{Night: tc.night, Rules: []Rule{r}}); !errors.Is(err, ErrBadRule) {
			t.Errorf("%s: err = %v, want ErrBadRule", tc.name, err)
		}
	}
	if _, err := New(Options{Rules: []Rule{ok, ok}}); !errors.Is(err, ErrBadRule) {
		t.Errorf("duplicate rule: %v", err)
	}
	if _, err := New(Options{Night: "late", Rules: []Rule{ok}}); !errors.Is(err, ErrBadNight) {
		t.Errorf("bad night: %v", err)
	}
	d, err := New(Options{Rules: []Rule{ok}})
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close(context.Background())
}

type fakeRevoker struct {
	users, sessions []string
}

func (f *fakeRevoker) RevokeUser(_ context.Context, sub, _ string) error {
	f.users = append(f.users, sub)
	return nil
}

func (f *fakeRevoker) RevokeSession(_ context.Context, id, _ string) error {
	f.sessions = append(f.sessions, id)
	return nil
}

// TestActions: block_session, block_user, step_up and revoke take effect
// for the next Assess, and each firing is one record with every action.
func TestActions(t *testing.T) {
	clk := newClock(hkNight2am(t))
	rec := &recorder{}
	rv := &fakeRevoker{}
	d := newDetector(t, Options{Zone: mustZone(t, "Asia/Hong_Kong"), Night: "22:00-06:00", Clock: clk.Now, Hooks: rec.hooks(), Revoker: rv,
		Rules: []Rule{
			{Name: "bulk-download-at-night", Night: true, Window: time.Hour, DownloadsOver: 3, Actions: []Action{ActionAlert, ActionBlockSession}, BlockFor: 15 * time.Minute},
			{Name: "many", Window: time.Hour, RequestsOver: 20, Actions: []Action{ActionStepUp, ActionRevoke}, Per: PerSession},
			{Name: "huge", Window: time.Hour, BytesOver: 1 << 30, Actions: []Action{ActionBlockUser}},
		}})
	ana := Subject{User: "ana", Session: "s1", AuthTime: clk.Now().Add(-time.Hour)}
	ctx := t.Context()
	for range 4 {
		if err := d.Observe(ctx, ana, Observation{Download: true, Path: "/f.pdf", Bytes: 10}); err != nil {
			t.Fatal(err)
		}
	}
	risk, err := d.Assess(ctx, ana)
	if err != nil {
		t.Fatal(err)
	}
	if !risk.Blocked || risk.Reason != "anomaly:bulk-download-at-night" || risk.Block == nil || risk.Block.Kind != BlockSession {
		t.Fatalf("session not blocked: %+v", risk)
	}
	if !slices.Contains(risk.Flags, FlagBulkDownload) || !risk.Night || risk.Counts.Downloads != 4 {
		t.Errorf("risk = %+v", risk)
	}
	// Another session of the same user is not blocked by block_session.
	other, err := d.Assess(ctx, Subject{User: "ana", Session: "s2"})
	if err != nil || other.Blocked {
		t.Errorf("other session: %+v %v", other, err)
	}
	recs := rec.Records()
	if len(recs) != 1 || len(recs[0].Actions) != 2 || recs[0].Counts.Downloads != 4 || !recs[0].Actions[1].OK || recs[0].Actions[1].Until.IsZero() {
		t.Fatalf("records = %+v", recs)
	}

	// Operators see and lift the block.
	blocks, err := d.Blocks(ctx)
	if err != nil || len(blocks) != 1 || blocks[0].ID != "s1" || blocks[0].Rule != "bulk-download-at-night" {
		t.Fatalf("blocks = %+v %v", blocks, err)
	}
	if ok, err := d.Unblock(ctx, BlockSession, "s1"); !ok || err != nil {
		t.Fatalf("unblock: %v %v", ok, err)
	}
	if risk, _ := d.Assess(ctx, ana); risk.Blocked {
		t.Fatalf("still blocked after unblock: %+v", risk)
	}
	// The same counters do not block again at once (fired marker stands).
	_ = d.Observe(ctx, ana, Observation{Download: true})
	if risk, _ := d.Assess(ctx, ana); risk.Blocked {
		t.Fatal("re-blocked right after unblock")
	}

	// step_up + revoke, per session.
	for range 20 {
		_ = d.Observe(ctx, ana, Observation{})
	}
	risk, _ = d.Assess(ctx, ana)
	if !risk.StepUp || risk.Blocked {
		t.Fatalf("no step-up: %+v", risk)
	}
	if len(rv.sessions) != 1 || rv.sessions[0] != "s1" || len(rv.users) != 0 {
		t.Errorf("revoked %v / %v", rv.users, rv.sessions)
	}
	// Re-authenticating clears step-up.
	ana.AuthTime = clk.Now().Add(time.Second)
	if risk, _ := d.Assess(ctx, ana); risk.StepUp {
		t.Fatal("step-up still asked after re-authentication")
	}

	// block_user blocks every session of the user.
	_ = d.Observe(ctx, Subject{User: "bob", Session: "b1"}, Observation{Bytes: 2 << 30})
	for _, s := range []string{"b1", "b2", ""} {
		if risk, _ := d.Assess(ctx, Subject{User: "bob", Session: s}); !risk.Blocked || risk.Block.Kind != BlockUser {
			t.Errorf("bob session %q not blocked: %+v", s, risk)
		}
	}
	if ok, _ := d.Unblock(ctx, BlockUser, "bob"); !ok {
		t.Error("unblock bob")
	}
	if risk, _ := d.Assess(ctx, Subject{User: "bob", Session: "b1"}); risk.Blocked {
		t.Error("bob still blocked")
	}
}

func TestBlockExpires(t *testing.T) {
	clk := newClock(hkNight2am(t))
	d := newDetector(t, Options{Clock: clk.Now, Rules: []Rule{{Name: "x", Window: time.Minute, RequestsOver: 1, Actions: []Action{ActionBlockUser}, BlockFor: 10 * time.Minute}}})
	s := Subject{User: "u"}
	_ = d.Observe(t.Context(), s, Observation{})
	_ = d.Observe(t.Context(), s, Observation{})
	if r, _ := d.Assess(t.Context(), s); !r.Blocked {
		t.Fatal("not blocked")
	}
	clk.Advance(11 * time.Minute)
	if r, _ := d.Assess(t.Context(), s); r.Blocked {
		t.Fatal("block outlived block_for")
	}
}

func TestAnonymousKeyedByIP(t *testing.T) {
	clk := newClock(hkNight2am(t))
	d := newDetector(t, Options{Clock: clk.Now, Rules: []Rule{{Name: "x", Window: time.Minute, RequestsOver: 2, Actions: []Action{ActionBlockUser}}}})
	a := Subject{IP: "203.0.113.9"}
	for range 3 {
		_ = d.Observe(t.Context(), a, Observation{})
	}
	if r, _ := d.Assess(t.Context(), a); !r.Blocked {
		t.Fatal("anonymous caller not blocked")
	}
	if r, _ := d.Assess(t.Context(), Subject{IP: "203.0.113.10"}); r.Blocked {
		t.Fatal("other address blocked")
	}
}

// TestWatchCutsLiveRequest: a block made while a request is served cancels
// its context at once; other users' requests go on.
func TestWatchCutsLiveRequest(t *testing.T) {
	d := newDetector(t, Options{Rules: []Rule{{Name: "x", Window: time.Minute, RequestsOver: 1000, Actions: []Action{ActionAlert}}}})
	ana := Subject{User: "ana", Session: "s1"}
	ctx1, release1 := d.Watch(t.Context(), ana)
	defer release1()
	ctx2, release2 := d.Watch(t.Context(), Subject{User: "bob", Session: "b1"})
	defer release2()
	if _, err := d.Block(t.Context(), BlockSession, "s1", time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx1.Done():
		if !errors.Is(context.Cause(ctx1), ErrBlocked) {
			t.Errorf("cause = %v", context.Cause(ctx1))
		}
	case <-time.After(time.Second):
		t.Fatal("live request of the blocked session not cut within 1s")
	}
	if ctx2.Err() != nil {
		t.Fatal("another user's request was cut")
	}
	if d.Live() != 1 {
		t.Errorf("live = %d", d.Live())
	}
}

// TestRiskCountersCoverOneHour: Risk reports the last hour (policy's
// input.risk.*_1h) even when every rule uses a shorter window.
func TestRiskCountersCoverOneHour(t *testing.T) {
	clk := newClock(hkNight2am(t))
	d := newDetector(t, Options{Clock: clk.Now, Rules: []Rule{{Name: "x", Window: 10 * time.Minute, RequestsOver: 1000, Actions: []Action{ActionAlert}}}})
	s := Subject{User: "ana"}
	for range 5 {
		_ = d.Observe(t.Context(), s, Observation{Bytes: 10, Download: true})
	}
	clk.Advance(20 * time.Minute)
	for range 3 {
		_ = d.Observe(t.Context(), s, Observation{Bytes: 10})
	}
	r, err := d.Assess(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Window != time.Hour || r.Counts != (Counts{Requests: 8, Bytes: 80, Downloads: 5}) {
		t.Fatalf("risk window %v counts %+v", r.Window, r.Counts)
	}
	clk.Advance(time.Hour)
	if r, _ := d.Assess(t.Context(), s); r.Counts.Requests != 0 {
		t.Fatalf("an hour later: %+v", r.Counts)
	}
}

// TestNightRuleStepUp: a night rule counts under its own key, yet its
// step_up action asks the subject's next request for MFA.
func TestNightRuleStepUp(t *testing.T) {
	for _, per := range []Scope{PerUser, PerSession} {
		t.Run(string(per), func(t *testing.T) {
			hk := mustZone(t, "Asia/Hong_Kong")
			clk := newClock(time.Date(2026, 12, 3, 2, 0, 0, 0, hk))
			rule := Rule{Name: "night-burst", Night: true, Window: time.Hour, RequestsOver: 3, Per: per, Actions: []Action{ActionStepUp}}
			d := newDetector(t, Options{Zone: hk, Night: "22:00-06:00", Clock: clk.Now, Rules: []Rule{rule}})
			s := Subject{User: "ana", Session: "s1"}
			for range 4 {
				if err := d.Observe(t.Context(), s, Observation{Path: "/"}); err != nil {
					t.Fatal(err)
				}
			}
			r, err := d.Assess(t.Context(), s)
			if err != nil || !r.StepUp {
				t.Fatalf("risk after the night rule fired = %+v, %v; want StepUp", r, err)
			}
		})
	}
}
