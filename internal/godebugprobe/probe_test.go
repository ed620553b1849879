package godebugprobe

import (
	"net/url"
	"strings"
	"testing"
)

// TestProbeOnceUntilReset: the answer is probed once, kept while GODEBUG
// stays, and probed again after Reset under a changed setting.
func TestProbeOnceUntilReset(t *testing.T) {
	calls := 0
	p := New(func() bool {
		calls++
		_, err := url.ParseQuery(strings.Repeat("&", 9))
		return err == nil
	})
	t.Setenv("GODEBUG", "")
	for range 3 {
		if !p.OK() {
			t.Fatal("default limit: 10 parameters refused")
		}
	}
	if calls != 1 {
		t.Fatalf("default limit: %d probes, want 1", calls)
	}
	t.Setenv("GODEBUG", "urlmaxqueryparams=5")
	p.Reset()
	for range 2 {
		if p.OK() {
			t.Fatal("urlmaxqueryparams=5 after Reset: 10 parameters accepted")
		}
	}
	if calls != 2 {
		t.Fatalf("urlmaxqueryparams=5 after Reset: %d probes, want 2", calls)
	}
	t.Setenv("GODEBUG", "")
	p.Reset()
	if !p.OK() || calls != 3 {
		t.Fatalf("back to the default: %d probes", calls)
	}
}

func BenchmarkOK(b *testing.B) {
	p := New(func() bool { return true })
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = p.OK()
		}
	})
}
