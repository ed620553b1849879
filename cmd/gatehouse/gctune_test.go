package main

import (
	"os"
	"runtime/debug"
	"testing"
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
