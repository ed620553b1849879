package policy

import (
	"context"
	"testing"
)

// BenchmarkDecideFloor is the engine's own cost: input building, one
// prepared evaluation and the decision, for a one-rule policy.
func BenchmarkDecideFloor(b *testing.B) {
	set := mustCompile(b, map[string]string{"p.rego": "package gatehouse.authz\nallow := true\n"}, CompileOptions{})
	in := cookbookInput()
	b.ReportAllocs()
	c := cpuTime()
	for b.Loop() {
		if d, _ := set.Decide(context.Background(), in); !d.Allowed() {
			b.Fatal(d.Reasons)
		}
	}
	b.ReportMetric(float64(cpuTime()-c)/float64(b.N), "cpu-ns/op")
}
