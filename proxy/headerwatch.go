package proxy

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// errUpstreamHeaderTimeout is the cause a request is cut with when the
// upstream's response headers take longer than
// timeouts.upstream_response_header.
var errUpstreamHeaderTimeout = errors.New("timeout awaiting the upstream's response headers")

// headerWatch enforces timeouts.upstream_response_header. It does what the
// transport's ResponseHeaderTimeout would, without a timer per request:
// that timer (with its channel, its defer and the extra select case in
// every round trip) cost ≈ 1.5 µs and 4 allocations a request. Instead
// every request waiting for its response headers is linked into one list
// (the link lives in the request's exchange: nothing is allocated), and
// one timer, armed only while the list is not empty, walks it a few times
// per timeout and cuts, through the request's own cancel func, whatever
// has waited too long. A request is cut between its timeout and its
// timeout plus one tick (a tenth of the timeout, at most a second).
//
// As with ResponseHeaderTimeout, a slow upload is not cut: the wait of a
// request with a body starts when its body has been read to the end. A
// request without one waits from when it goes upstream (connecting to the
// upstream, bounded by timeouts.upstream_dial, counts).
type headerWatch struct {
	mu    sync.Mutex
	root  headerWait // sentinel of a ring of waiting requests
	armed bool
	tick  time.Duration // of the timer armed now
	timer *time.Timer
}

// headerWait is one request waiting for its response headers.
type headerWait struct {
	prev, next *headerWait
	deadline   time.Time
	cut        context.CancelCauseFunc
	// timeout is the request's config generation's; the body watch starts
	// the wait with it.
	timeout time.Duration
	hw      *headerWatch
	ended   bool // done was called: a late start (the body read to its end after the answer came) links nothing
	// listed mirrors next != nil for a lock-free look (mayBeListed).
	listed atomic.Bool
}

// mayBeListed reports whether w may still be linked: false only when it
// was unlinked (or never linked) and cannot be linked any more, which the
// caller knows for a request without a body (its wait started before the
// upstream was asked, never later). Such a request's final done is then
// skipped: the headers' done, or the sweep, already unlinked it.
func (w *headerWait) mayBeListed() bool { return w.listed.Load() }

// sweepTick is how often a list of requests with this timeout is walked.
func sweepTick(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 5*time.Millisecond), time.Second)
}

// start links w, cut after timeout from now unless done first.
func (h *headerWatch) start(w *headerWait, now time.Time) {
	w.deadline = now.Add(w.timeout)
	tick := sweepTick(w.timeout)
	h.mu.Lock()
	if w.ended {
		h.mu.Unlock()
		return
	}
	if h.root.next == nil {
		h.root.next, h.root.prev = &h.root, &h.root
	}
	if w.next == nil {
		w.prev, w.next = h.root.prev, &h.root
		h.root.prev.next = w
		h.root.prev = w
		w.listed.Store(true)
	}
	switch {
	case !h.armed:
		h.armed, h.tick = true, tick
		if h.timer == nil {
			h.timer = time.AfterFunc(tick, h.sweep)
		} else {
			h.timer.Reset(tick)
		}
	case tick < h.tick:
		// A shorter timeout than the armed tick serves (after a reload).
		if h.timer.Stop() {
			h.tick = tick
			h.timer.Reset(tick)
		}
	}
	h.mu.Unlock()
}

// done unlinks w (the headers came, or the request ended); it may be
// called more than once.
func (h *headerWatch) done(w *headerWait) {
	h.mu.Lock()
	w.ended = true
	if w.next != nil {
		w.prev.next, w.next.prev = w.next, w.prev
		w.prev, w.next = nil, nil
		w.listed.Store(false)
	}
	h.mu.Unlock()
}

// sweep cuts every request past its deadline and re-arms the timer while
// requests wait. It cuts under the lock, so a done that returns has either
// kept its request from being cut or come after the cut (the caller then
// finds errUpstreamHeaderTimeout as the cause); cancelling a context calls
// nothing back here.
func (h *headerWatch) sweep() {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	tick := time.Duration(0)
	for w := h.root.next; w != nil && w != &h.root; {
		next := w.next
		if !now.Before(w.deadline) {
			w.prev.next, w.next.prev = w.next, w.prev
			w.prev, w.next = nil, nil
			w.listed.Store(false)
			w.cut(errUpstreamHeaderTimeout)
		} else if t := sweepTick(w.timeout); tick == 0 || t < tick {
			tick = t
		}
		w = next
	}
	h.armed = tick > 0
	if h.armed {
		h.tick = tick
		h.timer.Reset(tick)
	}
}

// bodyWatch is an upstream request's body: the header wait starts when it
// has been read to the end.
type bodyWatch struct {
	io.ReadCloser
	w *headerWait
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.w != nil {
		b.w.hw.start(b.w, time.Now())
		b.w = nil
	}
	return n, err
}
