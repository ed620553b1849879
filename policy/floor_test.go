package policy

import (
	"context"
	"os"
	"testing"
)

func BenchmarkDecideFloor(b *testing.B) {
	set := mustCompile(b, map[string]string{"p.rego": "package gatehouse.authz\nallow := true\n"}, CompileOptions{})
	in := cookbookInput()
	b.ReportAllocs()
	c := cpuTime()
	for b.Loop() {
		_, _ = set.Decide(context.Background(), in)
	}
	b.ReportMetric(float64(cpuTime()-c)/float64(b.N), "cpu-ns/op")
}

func BenchmarkDecideDir(b *testing.B) {
	set, err := Compile(context.Background(), os.Getenv("BDIR"), CompileOptions{SkipTests: true})
	if err != nil {
		b.Fatal(err)
	}
	in := cookbookInput()
	b.ReportAllocs()
	c := cpuTime()
	for b.Loop() {
		_, _ = set.Decide(context.Background(), in)
	}
	b.ReportMetric(float64(cpuTime()-c)/float64(b.N), "cpu-ns/op")
}
