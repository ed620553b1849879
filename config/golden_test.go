package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenEnv is the environment the golden fixtures are loaded with.
func goldenEnv(t *testing.T) {
	t.Setenv("GATEHOUSE_TEST_HOST", "gate.example.com")
	t.Setenv("GATEHOUSE_TEST_UPSTREAM", "gopher://upstream.internal")
	t.Setenv("GATEHOUSE_TEST_UNSET_CLIENT", "")
	if err := os.Unsetenv("GATEHOUSE_TEST_UNSET_CLIENT"); err != nil {
		t.Fatal(err)
	}
}

// TestGolden loads every broken fixture in testdata/ and compares the whole
// error report (every problem, file:line: field: message, sorted by line)
// with testdata/NAME.golden. Run with -update to accept new output.
func TestGolden(t *testing.T) {
	goldenEnv(t)
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("only %d fixtures in testdata/", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) succeeded; fixtures in testdata/ must be broken (%v routes)", f, len(cfg.Routes))
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Load error %T is not config.Errors: %v", err, err)
			}
			for _, e := range es {
				if e.File != f {
					t.Errorf("error %q names file %q, want %q", e, e.File, f)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors for %s changed.\n--- got\n%s--- want\n%s", f, got, want)
			}
		})
	}
}
