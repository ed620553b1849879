package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad: the loader never panics on any input, and a config that loads
// re-validates identically (Validate reports nothing and changes nothing), and
// loading is deterministic.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("../examples/*/*.yaml")
	for _, p := range append(seeds, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte("routes: [{name: a, host: a.localhost, upstream: 'http://127.0.0.1:1', public: true}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("listen: ${\n"))
	f.Add([]byte("anomaly: {rules: [{name: x, window: 1d12h, bytes_over: 1.5GiB, action: [alert]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config together with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		snapshot := *c
		snapshot.Routes = append([]Route(nil), c.Routes...)
		if err := c.Validate(); err != nil {
			t.Fatalf("config loaded but does not re-validate: %v", err)
		}
		if !reflect.DeepEqual(snapshot, *c) {
			t.Fatal("Validate changed the config")
		}
		c2, err := Parse("fuzz.yaml", data)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("loading twice differs: %v", err)
		}
	})
}
