package syncbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestBuilderConcurrent: writes from one goroutine and reads from another
// (run with -race) lose nothing.
func TestBuilderConcurrent(t *testing.T) {
	var b Builder
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	})
	for range 50 {
		_ = b.String()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 200 {
		t.Fatalf("%d lines, want 200", n)
	}
}
