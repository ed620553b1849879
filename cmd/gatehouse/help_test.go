package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command answers --help once, on stdout, with its exit codes, and
// exits 0; every group name lists its subcommands.
func TestEveryCommandHasHelp(t *testing.T) {
	groups := map[string]bool{}
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append(strings.Fields(name), "--help")
			if code := run(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, errb.String())
			}
			if errb.Len() > 0 {
				t.Errorf("help went to stderr:\n%s", errb.String())
			}
			if n := strings.Count(out.String(), "Usage:"); n != 1 {
				t.Errorf("%d usage texts:\n%s", n, out.String())
			}
			if !strings.Contains(out.String(), "Exit codes") {
				t.Errorf("no exit codes in:\n%s", out.String())
			}
		})
		if g, _, ok := strings.Cut(name, " "); ok {
			groups[g] = true
		}
	}
	for g := range groups {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{g, "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "gatehouse "+g) {
			t.Errorf("%s --help: exit %d:\n%s%s", g, code, out.String(), errb.String())
		}
		if code := run(context.Background(), []string{g, "nope"}, &out, &errb); code != exitUsage {
			t.Errorf("%s nope: exit %d, want %d", g, code, exitUsage)
		}
	}
}
