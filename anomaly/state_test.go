package anomaly

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestStateSurvivesRestart: a single instance on the memory store saves
// its state, restarts and goes on judging with the baseline it learnt and
// the window counters it had — without the saved state the same traffic
// does not fire (no history, counters from zero).
func TestStateSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restore bool
		fires   int
	}{
		{"restored", true, 1},
		{"fresh store", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hk := mustZone(t, "Asia/Hong_Kong")
			start := time.Date(2026, 11, 1, 10, 0, 0, 0, hk)
			clk := newClock(start)
			rule := Rule{Name: "unusual-volume", Window: time.Hour, AboveBaseline: 5, MinHistory: 7 * 24 * time.Hour, Actions: []Action{ActionAlert, ActionStepUp}}
			ana := Subject{User: "ana", Session: "s"}
			ctx := t.Context()
			observeN := func(d *Detector, n int, spread time.Duration) {
				t.Helper()
				for range n {
					if err := d.Observe(ctx, ana, Observation{Path: "/"}); err != nil {
						t.Fatal(err)
					}
					clk.Advance(spread / time.Duration(n))
				}
				settle(d)
			}
			ms1 := NewMemoryStore(clk.Now)
			rec1 := &recorder{}
			d1 := newDetector(t, Options{Zone: hk, Clock: clk.Now, Hooks: rec1.hooks(), Rules: []Rule{rule}, Store: ms1})
			for day := range 10 {
				clk.Set(start.Add(time.Duration(day) * 24 * time.Hour))
				observeN(d1, 100, 30*time.Minute)
			}
			// Day 11: 300 requests (3x) before the restart, 250 after.
			clk.Set(start.Add(10 * 24 * time.Hour))
			observeN(d1, 300, 20*time.Minute)
			if _, err := ms1.SetMarker(ctx, "stepup:u:bob", []byte(`{}`), time.Hour, false); err != nil {
				t.Fatal(err)
			}
			if _, err := d1.Block(ctx, BlockUser, "eve", time.Hour, "test"); err != nil {
				t.Fatal(err)
			}
			var saved bytes.Buffer
			if err := ms1.SaveState(&saved); err != nil {
				t.Fatal(err)
			}
			if err := d1.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if len(rec1.Records()) != 0 {
				t.Fatalf("fired before the restart: %+v", rec1.Records())
			}

			clk.Advance(time.Minute) // the restart
			ms2 := NewMemoryStore(clk.Now)
			if tc.restore {
				if err := ms2.LoadState(bytes.NewReader(saved.Bytes())); err != nil {
					t.Fatal(err)
				}
			}
			rec2 := &recorder{}
			d2 := newDetector(t, Options{Zone: hk, Clock: clk.Now, Hooks: rec2.hooks(), Rules: []Rule{rule}, Store: ms2})
			observeN(d2, 250, 10*time.Minute)
			recs := rec2.Records()
			if len(recs) != tc.fires {
				t.Fatalf("fired %d times after the restart, want %d", len(recs), tc.fires)
			}
			if tc.fires > 0 && recs[0].Counts.Requests <= 500 {
				t.Errorf("the window counters did not survive: %+v", recs[0].Counts)
			}
			stepups, _ := ms2.Markers(ctx, "stepup:")
			blocks, _ := ms2.Markers(ctx, "block:")
			if _, ok := stepups["stepup:u:bob"]; ok != tc.restore {
				t.Errorf("bob's step-up request restored = %v, want %v", ok, tc.restore)
			}
			// Blocks come back from the signed audit log, never from here.
			if len(blocks) != 0 {
				t.Errorf("a block came back from the saved state: %v", blocks)
			}
		})
	}
}

func TestSaveStateSkipsDeadMarkers(t *testing.T) {
	clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	ms := NewMemoryStore(clk.Now)
	ctx := t.Context()
	_, _ = ms.SetMarker(ctx, "fired:r:u:ana", []byte("x"), time.Minute, false)
	_, _ = ms.SetMarker(ctx, "stepup:u:ana", []byte("y"), time.Hour, false)
	clk.Advance(2 * time.Minute)
	var buf bytes.Buffer
	if err := ms.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "fired:") || !strings.Contains(buf.String(), "stepup:u:ana") {
		t.Fatalf("saved markers: %s", buf.String())
	}
	// A marker that dies between save and load is not restored either.
	clk.Advance(2 * time.Hour)
	ms2 := NewMemoryStore(clk.Now)
	if err := ms2.LoadState(&buf); err != nil {
		t.Fatal(err)
	}
	if m, _ := ms2.Markers(ctx, ""); len(m) != 0 {
		t.Fatalf("dead markers restored: %v", m)
	}
}

func TestLoadStateRefusesBadInput(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"not json", `{"version":1,`},
		{"empty", ``},
		{"other version", `{"version":2}`},
		{"no version", `{"series":[]}`},
		{"series without key", `{"version":1,"series":[{"key":""}]}`},
		{"bad window", `{"version":1,"series":[{"key":"u:a","rings":[{"window":0,"slots":[]}]}]}`},
		{"negative count", `{"version":1,"series":[{"key":"u:a","rings":[{"window":3600000000000,"slots":[{"idx":5,"c":{"requests":-1}}]}]}]}`},
		{"negative index", `{"version":1,"series":[{"key":"u:a","rings":[{"window":3600000000000,"slots":[{"idx":-5,"c":{"requests":1}}]}]}]}`},
		{"marker without name", `{"version":1,"markers":[{"name":"","until":"2030-01-01T00:00:00Z"}]}`},
		{"baseline without user", `{"version":1,"baselines":[{"user":""}]}`},
		{"negative band", `{"version":1,"baselines":[{"user":"ana","baseline":{"bands":[{"r":-3}]}}]}`},
		{"wrong type", `{"version":"1"}`},
		{"trailing data", `{"version":1} {"version":1}`},
		{"trailing garbage", `{"version":1} }`},
		{"count too large", `{"version":1,"baselines":[{"user":"a","periods":{"5":{"requests":9223372036854775000}}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
			ms := NewMemoryStore(clk.Now)
			_, _ = ms.SetMarker(t.Context(), "stepup:u:ana", []byte("keep"), time.Hour, false)
			err := ms.LoadState(strings.NewReader(tc.doc))
			if !errors.Is(err, ErrState) {
				t.Fatalf("err = %v, want ErrState", err)
			}
			// Refused whole: the store is as it was.
			if m, _ := ms.Markers(t.Context(), ""); len(m) != 1 || len(ms.series) != 0 || len(ms.baselines) != 0 {
				t.Fatalf("store changed: markers %v, %d series, %d baselines", m, len(ms.series), len(ms.baselines))
			}
		})
	}
}

// TestLoadStateReadErrorIsNotErrState: a reader that fails (a disk error)
// is not a bad document: the caller must not throw the file away.
func TestLoadStateReadErrorIsNotErrState(t *testing.T) {
	disk := errors.New("input/output error")
	r := io.MultiReader(strings.NewReader(`{"version":1,"series":[`), iotest.ErrReader(disk))
	err := NewMemoryStore(nil).LoadState(r)
	if !errors.Is(err, disk) || errors.Is(err, ErrState) {
		t.Fatalf("err = %v: want the read error, not ErrState", err)
	}
	// A newline after the document (what SaveState writes) is fine.
	if err := NewMemoryStore(nil).LoadState(strings.NewReader("{\"version\":1}\r\n  ")); err != nil {
		t.Fatal(err)
	}
}

// TestStateRoundTripManyKeys: more keys than one copy chunk all come
// back, and merged counts saturate instead of wrapping negative (which the
// next load would refuse).
func TestStateRoundTripManyKeys(t *testing.T) {
	clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	ms := NewMemoryStore(clk.Now)
	ctx := t.Context()
	const users = 3*saveChunk + 5
	for i := range users {
		u := "u" + strconv.Itoa(i)
		_, _ = ms.Add(ctx, clk.Now(), Increment{Keys: []string{"u:" + u}, Windows: []time.Duration{time.Hour}, Bytes: int64(i), Path: "/p", BaselineUser: u, Period: 1}, Query{})
	}
	var buf bytes.Buffer
	if err := ms.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	ms2 := NewMemoryStore(clk.Now)
	if err := ms2.LoadState(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if len(ms2.series) != users || len(ms2.baselines) != users {
		t.Fatalf("restored %d series, %d baselines; want %d", len(ms2.series), len(ms2.baselines), users)
	}
	snap, _ := ms2.Load(ctx, clk.Now(), Query{Keys: []string{"u:u7"}, Windows: []time.Duration{time.Hour}})
	if c := snap.Counts["u:u7"][time.Hour]; c.Requests != 1 || c.Bytes != 7 || c.Paths != 1 {
		t.Fatalf("u7's counts after the round trip: %+v", c)
	}

	big := `{"version":1,"baselines":[{"user":"a","periods":{"5":{"requests":4611686018427387900}}},{"user":"a","periods":{"5":{"requests":4611686018427387900}}}]}`
	ms3 := NewMemoryStore(clk.Now)
	if err := ms3.LoadState(strings.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	if got := ms3.baselines["a"].periods[5].Requests; got != maxCount {
		t.Fatalf("merged count %d, want saturation at %d", got, int64(maxCount))
	}
	buf.Reset()
	if err := ms3.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	if err := NewMemoryStore(clk.Now).LoadState(&buf); err != nil {
		t.Fatalf("a saturated state does not load: %v", err)
	}
}

// FuzzLoadState: no input makes LoadState panic, and whatever it accepts
// saves and loads again.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"series":[{"key":"u:a","last":"2026-12-03T10:00:00Z","rings":[{"window":3600000000000,"slots":[{"idx":29000000,"c":{"requests":3,"bytes":10}}]}],"paths":{"/a":1}}],"markers":[{"name":"stepup:u:a","value":"e30=","until":"2030-01-01T00:00:00Z"}],"baselines":[{"user":"a","baseline":{"first":1,"next":2,"bands":[]},"periods":{"3":{"requests":1}}}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		clk := newClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
		ms := NewMemoryStore(clk.Now)
		if err := ms.LoadState(bytes.NewReader(doc)); err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error not ErrState: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := ms.SaveState(&buf); err != nil {
			t.Fatal(err)
		}
		if err := NewMemoryStore(clk.Now).LoadState(&buf); err != nil {
			t.Fatalf("a saved state does not load: %v\n%s", err, buf.String())
		}
	})
}
