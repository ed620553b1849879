package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent is the garbage collector target used when GOGC is not
// set. A proxy's live heap is small (routes, policy, caches: about 8 MB in
// `make bench`) and almost every allocation dies with its request, so GC
// cost is set by the bytes a request allocates and by GOGC alone: each
// doubling of GOGC halves it. Measured with `make bench` (anomaly-redis,
// interleaved pairs): at 100 GC took about 8% of Gatehouse's CPU per
// request; 200 → 400 saves about 3 µs a request (+0.025 of the bare
// proxy's throughput), for a peak heap of five times the live heap
// instead of three. The memory limit below keeps that peak inside a
// container's limit. An operator's GOGC (or GOGC=off with GOMEMLIMIT)
// always wins.
const defaultGCPercent = 400

// memLimitShare is the part of a cgroup memory limit given to the Go heap
// as its soft limit (GOMEMLIMIT) when the environment sets none: near it
// the collector works harder instead of the kernel killing the process,
// and the rest is left for stacks, buffers and the page cache of the audit
// log.
const memLimitShare = 0.9

func init() {
	applyGCDefaults(os.LookupEnv, os.DirFS("/"))
}

// applyGCDefaults sets the GC target and, inside a memory-limited cgroup,
// the soft memory limit, unless the environment sets them. It returns the
// limit it set (0 for none).
func applyGCDefaults(lookupEnv func(string) (string, bool), root fs.FS) int64 {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	limit, ok := cgroupMemoryLimit(root)
	if !ok {
		return 0
	}
	soft := int64(float64(limit) * memLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup: the
// smallest v2 memory.max or v1 memory.limit_in_bytes of the group
// /proc/self/cgroup names and of each of its parents (a limit holds for
// everything below it), and of the root, which is where a container sees
// its own group. No limit ("max", or v1's huge "unlimited" value) or
// nothing readable is ok=false.
func cgroupMemoryLimit(root fs.FS) (int64, bool) {
	type place struct{ mount, group, file string }
	var places []place
	if b, err := fs.ReadFile(root, "proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			if p, ok := strings.CutPrefix(line, "0::"); ok { // v2: "0::/system.slice/x.service"
				places = append(places, place{"sys/fs/cgroup", p, "memory.max"})
			} else if _, p, ok := strings.Cut(line, ":memory:"); ok { // v1: "4:memory:/docker/abc"
				places = append(places, place{"sys/fs/cgroup/memory", p, "memory.limit_in_bytes"})
			}
		}
	}
	places = append(places, place{"sys/fs/cgroup", "/", "memory.max"}, place{"sys/fs/cgroup/memory", "/", "memory.limit_in_bytes"})
	var limit int64
	found := false
	for _, pl := range places {
		for g := path.Clean("/" + pl.group); ; g = path.Dir(g) {
			if v, ok := readLimit(root, path.Join(pl.mount, g, pl.file)); ok && (!found || v < limit) {
				limit, found = v, true
			}
			if g == "/" {
				break
			}
		}
	}
	return limit, found
}

// readLimit parses one limit file: a byte count, or "max" for none. v1
// writes "no limit" as a page-rounded math.MaxInt64, so anything from 2^60
// up is no limit too.
func readLimit(root fs.FS, name string) (int64, bool) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 || v == math.MaxInt64 {
		return 0, false
	}
	return v, true
}
