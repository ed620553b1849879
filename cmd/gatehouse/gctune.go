package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the garbage collector target used when GOGC is not
// set. A proxy's live heap is small (routes, policy, caches) and almost
// every allocation dies with its request, so Go's default of 100 collects
// several times a second under load for little memory saved; 200 halves
// that CPU (measured with `make bench`: about 8% of Gatehouse's CPU per
// request at 100) for a peak heap of three times the live heap instead of
// two. An operator's GOGC (or GOGC=off with GOMEMLIMIT) always wins.
const defaultGCPercent = 200

func init() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
