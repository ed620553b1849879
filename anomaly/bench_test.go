package anomaly

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Benchmarks of the per-request cost: Assess (before policy), Observe (on
// completion), Watch (while the request is served) and the three together
// as the proxy calls them, with the memory store and a real redis-server.
// Each reports µs/op; run with -benchtime=3000x or so on a shared machine,
// and compare allocs/op (-benchmem), which do not depend on the load.

func benchRules() []Rule {
	return []Rule{
		{Name: "bulk-download-at-night", Night: true, Window: time.Hour, DownloadsOver: 1 << 40, Actions: []Action{ActionAlert, ActionBlockSession}},
		{Name: "unusual-volume", Window: time.Hour, AboveBaseline: 5, Actions: []Action{ActionAlert, ActionStepUp}},
		{Name: "burst", Window: 10 * time.Minute, RequestsOver: 1 << 40, Actions: []Action{ActionAlert}},
	}
}

// benchDetector's clock moves 1.5s per reading, so that over a run the
// windows fill with buckets as they would under real traffic.
func benchDetector(b *testing.B, store Store) *Detector {
	clk := newClock(time.Date(2026, 12, 3, 2, 0, 0, 0, mustZone(b, "Asia/Hong_Kong")))
	now := func() time.Time { clk.Advance(1500 * time.Millisecond); return clk.Now() }
	return newDetector(b, Options{Zone: mustZone(b, "Asia/Hong_Kong"), Night: "22:00-06:00", Clock: now, Store: store, Rules: benchRules()})
}

func benchStores(b *testing.B) map[string]func() Store {
	return map[string]func() Store{
		"memory": func() Store { return nil },
		"redis": func() Store {
			rs := startRedis(b)
			return redisStore(b, rs.Addr)
		},
	}
}

func reportMicros(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
}

// benchSubjects are ten users sharing one session id (the benchmark's own
// allocations stay out of the figures).
func benchSubjects() []Subject {
	ss := make([]Subject, 10)
	for i := range ss {
		ss[i] = Subject{User: fmt.Sprintf("u%d", i), Session: "s", IP: "192.0.2.1"}
	}
	return ss
}

func benchPaths() []string {
	ps := make([]string, 50)
	for i := range ps {
		ps[i] = fmt.Sprintf("/p/%d", i)
	}
	return ps
}

func BenchmarkAssess(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			d := benchDetector(b, benchStores(b)[name]())
			ctx := b.Context()
			subs := benchSubjects()
			for i := range 100 {
				_ = d.Observe(ctx, subs[i%len(subs)], Observation{Path: "/p", Bytes: 1000})
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := d.Assess(ctx, subs[i%len(subs)]); err != nil {
					b.Fatal(err)
				}
			}
			reportMicros(b)
		})
	}
}

func BenchmarkObserve(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			d := benchDetector(b, benchStores(b)[name]())
			ctx := b.Context()
			subs, paths := benchSubjects(), benchPaths()
			for i := 0; b.Loop(); i++ {
				if err := d.Observe(ctx, subs[i%len(subs)], Observation{Path: paths[i%len(paths)], Bytes: 1000, Download: i%3 == 0}); err != nil {
					b.Fatal(err)
				}
			}
			reportMicros(b)
		})
	}
}

// BenchmarkWatch is the guard of one live request: Watch, then release.
func BenchmarkWatch(b *testing.B) {
	d := benchDetector(b, nil)
	parent, cancel := context.WithCancel(b.Context())
	defer cancel()
	subs := benchSubjects()
	for i := 0; b.Loop(); i++ {
		wctx, release := d.Watch(parent, subs[i%len(subs)])
		if wctx.Err() != nil {
			b.Fatal(wctx.Err())
		}
		release()
	}
	reportMicros(b)
}

// BenchmarkRequest is what the proxy does per request when no rule fires:
// Assess, Watch while serving, Observe on completion, release.
func BenchmarkRequest(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			d := benchDetector(b, benchStores(b)[name]())
			parent, cancel := context.WithCancel(b.Context())
			defer cancel()
			subs, paths := benchSubjects(), benchPaths()
			for i := 0; b.Loop(); i++ {
				s := subs[i%len(subs)]
				r, err := d.Assess(parent, s)
				if err != nil || r.Blocked {
					b.Fatal(err, r.Reason)
				}
				wctx, release := d.Watch(parent, s)
				if err := d.Observe(wctx, s, Observation{Path: paths[i%len(paths)], Bytes: 1000, Download: i%3 == 0}); err != nil {
					b.Fatal(err)
				}
				release()
			}
			reportMicros(b)
		})
	}
}
