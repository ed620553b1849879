package authn

import (
	"sync"
	"sync/atomic"
)

// lru is a bounded map with approximately least-recently-used eviction,
// safe for concurrent use. It keeps the request path's caches (decoded
// sessions, signed upstream headers) from growing without bound; entries
// also carry their own expiry, checked by the caller on every hit.
//
// A hit takes no lock and writes nothing shared (every request of every
// core reads these caches): the entries are found in a sync.Map, and a hit
// only sets its entry's used flag, once. Eviction is CLOCK, the usual
// approximation of LRU: the oldest entry that was not used since it was
// last passed over goes, a used one gets a second chance at the front. An
// entry is never changed once stored: put stores a new one.
type lru[K comparable, V any] struct {
	m sync.Map // K -> *lruEntry[K, V]

	mu   sync.Mutex // guards the ring and n
	max  int
	n    int
	head lruEntry[K, V] // ring sentinel: head.next is the newest
}

type lruEntry[K comparable, V any] struct {
	k          K
	v          V
	used       atomic.Bool
	prev, next *lruEntry[K, V]
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	c := &lru[K, V]{max: max}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *lru[K, V]) unlink(e *lruEntry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *lru[K, V]) pushFront(e *lruEntry[K, V]) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

// get returns the value for k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	x, ok := c.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	e := x.(*lruEntry[K, V])
	if !e.used.Load() { // a hot entry's flag is already set: no write
		e.used.Store(true)
	}
	return e.v, true
}

// put sets k to v, evicting when full.
func (c *lru[K, V]) put(k K, v V) {
	e := &lruEntry[K, V]{k: k, v: v}
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.m.Load(k); ok {
		c.unlink(x.(*lruEntry[K, V]))
		c.n--
	}
	// Hits may set flags again while this runs (they take no lock): past
	// two rounds of the ring the oldest goes whatever its flag, so a put
	// never spins.
	for passed := 0; c.n >= c.max && c.n > 0; passed++ {
		t := c.head.prev
		c.unlink(t)
		if t.used.Load() && passed < 2*c.n {
			t.used.Store(false) // a second chance
			c.pushFront(t)
			continue
		}
		c.m.CompareAndDelete(t.k, t)
		c.n--
	}
	c.m.Store(k, e)
	c.pushFront(e)
	c.n++
}

// remove drops k.
func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.m.Load(k); ok {
		c.unlink(x.(*lruEntry[K, V]))
		c.m.Delete(k)
		c.n--
	}
}

// len is the number of entries.
func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// keys returns the keys held (tests).
func (c *lru[K, V]) keys() []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []K
	for e := c.head.next; e != &c.head; e = e.next {
		out = append(out, e.k)
	}
	return out
}
