package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppend measures appends per second with many concurrent
// appenders. Targets (issue 5): batch >= 100k rec/s; always with 64
// appenders >= 20% of batch.
func BenchmarkAppend(b *testing.B) {
	for _, d := range []Durability{DurabilityBatch, DurabilityAlways} {
		for _, workers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/appenders=%d", d, workers), func(b *testing.B) {
				l := openTest(b, b.TempDir(), testKey(b, "bench"), func(o *Options) {
					o.Durability, o.SegmentSize, o.Clock = d, DefaultSegmentSize, time.Now
				})
				rec := decisionRec(3)
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				per := b.N / workers
				for w := range workers {
					n := per
					if w == 0 {
						n += b.N % workers
					}
					wg.Go(func() {
						for range n {
							r := *rec
							if _, err := l.Append(context.Background(), &r); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				if err := l.Sync(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rec/s")
				b.StopTimer()
				l.Close(context.Background())
			})
		}
	}
}
