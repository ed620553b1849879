package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestDefaultGCPercent(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: the operator's value wins")
	}
	prev := debug.SetGCPercent(defaultGCPercent)
	if prev != defaultGCPercent {
		t.Fatalf("GC percent at start = %d, want %d", prev, defaultGCPercent)
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name  string
		fs    fstest.MapFS
		want  int64
		found bool
	}{
		{"v2 group of the process", fstest.MapFS{
			"proc/self/cgroup": file("0::/system.slice/gatehouse.service\n"),
			"sys/fs/cgroup/system.slice/gatehouse.service/memory.max": file("536870912\n"),
			"sys/fs/cgroup/memory.max":                                file("max\n"),
		}, 536870912, true},
		{"v2 limit on a parent", fstest.MapFS{
			"proc/self/cgroup":                           file("0::/kubepods/pod1/ctr\n"),
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": file("max\n"),
			"sys/fs/cgroup/kubepods/pod1/memory.max":     file("268435456\n"),
			"sys/fs/cgroup/kubepods/memory.max":          file("1073741824\n"),
		}, 268435456, true},
		{"v2 leaf tighter than parent", fstest.MapFS{
			"proc/self/cgroup":             file("0::/a/b\n"),
			"sys/fs/cgroup/a/b/memory.max": file("100000000\n"),
			"sys/fs/cgroup/a/memory.max":   file("200000000\n"),
		}, 100000000, true},
		{"v2 container root", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("1073741824\n"),
		}, 1073741824, true},
		{"v2 no limit", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, false},
		{"v1 limit", fstest.MapFS{
			"proc/self/cgroup":                           file("12:memory:/docker/abc\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("268435456\n"),
		}, 268435456, true},
		{"v1 group of the process", fstest.MapFS{
			"proc/self/cgroup": file("4:memory:/process_api/c231\n0::/\n"),
			"sys/fs/cgroup/memory/process_api/c231/memory.limit_in_bytes": file("134217728\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  file("9223372036854771712\n"),
		}, 134217728, true},
		{"v1 hierarchical limit", fstest.MapFS{
			"proc/self/cgroup": file("4:memory:/a/b\n"),
			"sys/fs/cgroup/memory/a/b/memory.limit_in_bytes": file("9223372036854771712\n"),
			"sys/fs/cgroup/memory/a/b/memory.stat":           file("cache 0\nhierarchical_memory_limit 314572800\n"),
		}, 314572800, true},
		{"v1 co-mounted controllers", fstest.MapFS{
			"proc/self/cgroup": file("4:cpuset,memory:/x\n"),
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": file("200000000\n"),
		}, 200000000, true},
		{"v1 memory in another controller's path", fstest.MapFS{
			"proc/self/cgroup": file("3:cpu,cpuacct:/a:memory:/b\n"),
			"sys/fs/cgroup/memory/b/memory.limit_in_bytes": file("100000000\n"),
		}, 0, false},
		{"outside the cgroup namespace", fstest.MapFS{
			"proc/self/cgroup":                 file("0::/../sibling\n"),
			"sys/fs/cgroup/memory.max":         file("268435456\n"),
			"sys/fs/cgroup/sibling/memory.max": file("100000000\n"),
		}, 0, false},
		{"v1 unlimited", fstest.MapFS{
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, false},
		{"garbage", fstest.MapFS{"sys/fs/cgroup/memory.max": file("lots\n")}, 0, false},
		{"nothing", fstest.MapFS{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cgroupMemoryLimit(tt.fs)
			if got != tt.want || ok != tt.found {
				t.Fatalf("cgroupMemoryLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.found)
			}
		})
	}
}

func TestApplyGCDefaults(t *testing.T) {
	prevPct := debug.SetGCPercent(100)
	prevLim := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevPct); debug.SetMemoryLimit(prevLim) })
	limited := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("1000000000\n")},
	}
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}

	if got := applyGCDefaults(env(nil), limited); got != 900000000 {
		t.Fatalf("limit set = %d, want 90%% of the cgroup's", got)
	}
	if pct := debug.SetGCPercent(100); pct != defaultGCPercent {
		t.Fatalf("GC percent = %d, want %d", pct, defaultGCPercent)
	}
	if lim := debug.SetMemoryLimit(math.MaxInt64); lim != 900000000 {
		t.Fatalf("memory limit = %d, want 900000000", lim)
	}

	// The operator's settings win: neither is touched.
	if got := applyGCDefaults(env(map[string]string{"GOGC": "50", "GOMEMLIMIT": "2GiB"}), limited); got != 0 {
		t.Fatalf("limit set over GOMEMLIMIT: %d", got)
	}
	if pct := debug.SetGCPercent(100); pct != 100 {
		t.Fatalf("GC percent changed under GOGC: %d", pct)
	}
	if lim := debug.SetMemoryLimit(math.MaxInt64); lim != math.MaxInt64 {
		t.Fatalf("memory limit changed under GOMEMLIMIT: %d", lim)
	}

	// Set but empty is unset, as the runtime reads them.
	debug.SetGCPercent(100)
	if got := applyGCDefaults(env(map[string]string{"GOGC": "", "GOMEMLIMIT": ""}), limited); got != 900000000 {
		t.Fatalf("empty GOMEMLIMIT: limit set = %d, want 900000000", got)
	}
	if pct := debug.SetGCPercent(100); pct != defaultGCPercent {
		t.Fatalf("empty GOGC: GC percent = %d, want %d", pct, defaultGCPercent)
	}
	debug.SetMemoryLimit(math.MaxInt64)

	// GOGC=off without GOMEMLIMIT: no collection, as asked.
	if got := applyGCDefaults(env(map[string]string{"GOGC": "off"}), limited); got != 0 {
		t.Fatalf("limit set under GOGC=off: %d", got)
	}

	// No cgroup limit: no memory limit.
	if got := applyGCDefaults(env(nil), fstest.MapFS{}); got != 0 {
		t.Fatalf("limit set without a cgroup limit: %d", got)
	}
}
