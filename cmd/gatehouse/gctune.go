package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"slices"
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

// memLimitShare is the part of a cgroup memory limit given to the Go
// runtime as its soft limit (GOMEMLIMIT, which covers the heap, stacks and
// the runtime's own memory) when the environment sets none: near it the
// collector works harder instead of the kernel killing the process. The
// rest is left for memory outside the Go runtime and the page cache.
const memLimitShare = 0.9

func init() {
	applyGCDefaults(os.LookupEnv, os.DirFS("/"))
}

// applyGCDefaults sets the GC target and, inside a memory-limited cgroup,
// the soft memory limit, unless the environment sets them. It returns the
// limit it set (0 for none).
func applyGCDefaults(lookupEnv func(string) (string, bool), root fs.FS) int64 {
	// Set but empty is unset, as the runtime reads them.
	gogc, _ := lookupEnv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	// GOGC=off without a limit asks for no collection at all: honoured.
	if v, _ := lookupEnv("GOMEMLIMIT"); v != "" || gogc == "off" {
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

// cgroupMemoryLimit reads the memory limit of the process's cgroup, as
// /proc/self/cgroup names it: on v2 the smallest memory.max of the group
// and its parents up to the mount's root (v2 limits always hold for
// everything below them); on v1 the group's hierarchical_memory_limit
// (memory.stat), which is the effective one even where a parent does not
// enforce its limit on its children, else its memory.limit_in_bytes. A v1
// group not mounted where it says is read at the mount's root: that is
// where a container sees its own group. A group outside the process's
// cgroup namespace ("/.." paths) has no limit this can know. No limit
// ("max", or v1's huge "unlimited" value) or nothing readable is ok=false.
func cgroupMemoryLimit(root fs.FS) (int64, bool) {
	var limit int64
	found := false
	take := func(v int64, ok bool) {
		if ok && (!found || v < limit) {
			limit, found = v, true
		}
	}
	v1 := func(g string) {
		dir := path.Join("sys/fs/cgroup/memory", g)
		if !fileExists(root, dir) {
			dir = "sys/fs/cgroup/memory"
		}
		if v, ok := v1Hierarchical(root, dir); ok {
			take(v, ok)
			return
		}
		take(readLimit(root, path.Join(dir, "memory.limit_in_bytes")))
	}
	v2 := func(g string) {
		for ; ; g = path.Dir(g) {
			take(readLimit(root, path.Join("sys/fs/cgroup", g, "memory.max")))
			if g == "/" {
				return
			}
		}
	}
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		v2("/")
		v1("/")
		return limit, found
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// "hierarchy-ID:controller-list:path"; v2 is "0::path".
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		isV2 := f[0] == "0" && f[1] == ""
		if !isV2 && !slices.Contains(strings.Split(f[1], ","), "memory") {
			continue
		}
		if strings.HasPrefix(f[2], "/..") {
			return 0, false
		}
		if g := path.Clean("/" + f[2]); isV2 {
			v2(g)
		} else {
			v1(g)
		}
	}
	return limit, found
}

// v1Hierarchical reads hierarchical_memory_limit from dir's memory.stat.
func v1Hierarchical(root fs.FS, dir string) (int64, bool) {
	b, err := fs.ReadFile(root, path.Join(dir, "memory.stat"))
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "hierarchical_memory_limit "); ok {
			return parseLimit(v)
		}
	}
	return 0, false
}

func fileExists(root fs.FS, name string) bool {
	_, err := fs.Stat(root, name)
	return err == nil
}

// readLimit parses one limit file.
func readLimit(root fs.FS, name string) (int64, bool) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, false
	}
	return parseLimit(string(b))
}

// parseLimit reads a byte count, or "max" for none. v1 writes "no limit"
// as a page-rounded math.MaxInt64, so anything from 2^60 up is no limit
// too.
func parseLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 {
		return 0, false
	}
	return v, true
}
