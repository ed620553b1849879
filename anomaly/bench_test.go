package anomaly

import (
	"fmt"
	"testing"
	"time"
)

// Benchmarks of the per-request cost: Assess (before policy) and Observe
// (on completion), with the memory store and a real redis-server. Each
// reports µs/op; run with -benchtime=2000x or so on a shared machine.

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

func BenchmarkAssess(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			d := benchDetector(b, benchStores(b)[name]())
			ctx := b.Context()
			for i := range 100 {
				_ = d.Observe(ctx, Subject{User: fmt.Sprintf("u%d", i%10), Session: "s"}, Observation{Path: "/p", Bytes: 1000})
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := d.Assess(ctx, Subject{User: fmt.Sprintf("u%d", i%10), Session: "s"}); err != nil {
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
			for i := 0; b.Loop(); i++ {
				if err := d.Observe(ctx, Subject{User: fmt.Sprintf("u%d", i%10), Session: "s"}, Observation{Path: fmt.Sprintf("/p/%d", i%50), Bytes: 1000, Download: i%3 == 0}); err != nil {
					b.Fatal(err)
				}
			}
			reportMicros(b)
		})
	}
}
