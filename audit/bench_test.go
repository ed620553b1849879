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

// proxyDecision is a decision record shaped like the proxy's: the policy
// input document with request headers, user claims and route.
func proxyDecision() *Record {
	return &Record{Type: TypeDecision, Subject: "8f2c1e", SessionID: "s-41f0", RequestID: "01JEXAMPLE0000000000000000",
		Route: "files", Method: "GET", Host: "files.example.com", Path: "/doc/report-2026.pdf", ClientIP: "203.0.113.9",
		Email: "ana@example.com", Outcome: OutcomeAllow, Revision: "sha256:4c1d9a",
		Input: map[string]any{
			"request": map[string]any{"method": "GET", "host": "files.example.com", "path": "/doc/report-2026.pdf",
				"query": map[string]any{"v": []any{"2"}}, "client_ip": "203.0.113.9", "time": "2026-12-03T07:24:36.123456789Z",
				"headers": map[string]any{"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en-GB,en;q=0.9",
					"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"}},
			"user": map[string]any{"sub": "8f2c1e", "email": "ana@example.com", "groups": []any{"finance", "staff"},
				"roles": []any{"viewer"}, "mfa": true, "amr": []any{"pwd", "otp"}, "auth_time": 1764746676},
			"route":   map[string]any{"name": "files", "mfa": "optional"},
			"session": map[string]any{"id": "s-41f0", "age_seconds": 312.5},
		}}
}

// BenchmarkEncode compares the record encoder with the encoding/json form
// it reproduces, on a proxy-shaped decision record.
func BenchmarkEncode(b *testing.B) {
	r := proxyDecision()
	r.Version, r.Index, r.Time = Version, 123456, time.Date(2026, 12, 3, 7, 24, 36, 123456789, time.UTC)
	for name, enc := range map[string]func(*Record) ([]byte, error){
		"hand": encode, "encoding-json": func(r *Record) ([]byte, error) { return encodeJSON(r) },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
