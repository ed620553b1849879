package authn

import (
	"fmt"
	"sync"
	"testing"
)

// TestLRUEvictsUnused: full, the cache evicts an entry not used since it
// was last passed over, keeps used ones (a second chance), and never holds
// more than its size.
func TestLRUEvictsUnused(t *testing.T) {
	c := newLRU[string, int](3)
	c.put("a", 1)
	c.put("b", 2)
	c.put("c", 3)
	if _, ok := c.get("a"); !ok { // a is used: b, the oldest unused, goes
		t.Fatal("a missing")
	}
	c.put("d", 4)
	if _, ok := c.get("b"); ok {
		t.Error("b kept, a used entry evicted instead")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if c.len() != 3 {
		t.Errorf("len %d, want 3", c.len())
	}
	c.put("c", 30) // replacing a key keeps one entry, with the new value
	if v, _ := c.get("c"); v != 30 || c.len() != 3 {
		t.Errorf("c = %d, len %d", v, c.len())
	}
	c.remove("c")
	if _, ok := c.get("c"); ok || c.len() != 2 {
		t.Errorf("after remove: len %d", c.len())
	}
}

// TestLRUConcurrent: hits, puts and evictions from many goroutines (run
// under -race) return only what was stored under the key, and the bound
// holds.
func TestLRUConcurrent(t *testing.T) {
	c := newLRU[string, string](16)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprintf("k%d", (i*7+w)%40)
				if v, ok := c.get(k); ok && v != "v"+k {
					t.Errorf("get(%s) = %s", k, v)
					return
				}
				c.put(k, "v"+k)
				if i%50 == 0 {
					c.remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if n := c.len(); n > 16 || n != len(c.keys()) {
		t.Errorf("len %d, %d keys, bound 16", n, len(c.keys()))
	}
}

// TestLRUAllUsed: with every entry used, a put still evicts exactly one
// (each gets its second chance once, then the oldest goes).
func TestLRUAllUsed(t *testing.T) {
	c := newLRU[string, int](3)
	for i, k := range []string{"a", "b", "c"} {
		c.put(k, i)
		c.get(k)
	}
	c.put("d", 3)
	if c.len() != 3 {
		t.Fatalf("len %d, want 3", c.len())
	}
	if _, ok := c.get("a"); ok {
		t.Error("a kept: the oldest of the used entries should go")
	}
}
