package audit

import (
	"context"
	"testing"
)

func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	k := testKey(b, "bench")
	l := openTest(b, dir, k, func(o *Options) { o.SegmentSize = DefaultSegmentSize })
	for i := range 50000 {
		l.Append(context.Background(), decisionRec(i))
	}
	l.Close(context.Background())
	b.ResetTimer()
	for range b.N {
		if _, err := Verify(dir, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(50002*b.N)/b.Elapsed().Seconds(), "rec/s")
}
