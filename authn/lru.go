package authn

import "sync"

// lru is a bounded, least-recently-used map, safe for concurrent use. It
// keeps the request path's caches (decoded sessions, signed upstream
// headers) from growing without bound; entries also carry their own expiry,
// checked by the caller on every hit.
type lru[K comparable, V any] struct {
	mu   sync.Mutex
	max  int
	m    map[K]*lruEntry[K, V]
	head lruEntry[K, V] // sentinel: head.next is the most recent
}

type lruEntry[K comparable, V any] struct {
	k          K
	v          V
	prev, next *lruEntry[K, V]
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	c := &lru[K, V]{max: max, m: make(map[K]*lruEntry[K, V], max)}
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

// get returns the value for k and marks it recently used.
func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if c.head.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.v, true
}

// put sets k to v, dropping the least recently used entry when full.
func (c *lru[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.v = v
		c.unlink(e)
		c.pushFront(e)
		return
	}
	var e *lruEntry[K, V]
	if len(c.m) >= c.max {
		e = c.head.prev // reuse the oldest entry
		c.unlink(e)
		delete(c.m, e.k)
	} else {
		e = &lruEntry[K, V]{}
	}
	e.k, e.v = k, v
	c.m[k] = e
	c.pushFront(e)
}

// remove drops k.
func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.unlink(e)
		delete(c.m, k)
	}
}

// len is the number of entries.
func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
