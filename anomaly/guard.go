package anomaly

import (
	"context"
	"sync"
	"time"
)

// liveSet tracks requests being served, so that a block can cut them.
type liveSet struct {
	mu   sync.Mutex
	next uint64
	reqs map[uint64]liveReq
}

type liveReq struct {
	user, session string // counter keys
	cancel        context.CancelCauseFunc
}

func newLiveSet() *liveSet { return &liveSet{reqs: map[uint64]liveReq{}} }

func (l *liveSet) add(user, session string, cancel context.CancelCauseFunc) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	l.reqs[l.next] = liveReq{user, session, cancel}
	return l.next
}

func (l *liveSet) remove(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.reqs, id)
}

// cut cancels every live request whose user or session key is one of keys.
func (l *liveSet) cut(keys ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id, r := range l.reqs {
		for _, k := range keys {
			if k != "" && (r.user == k || r.session == k) {
				r.cancel(ErrBlocked)
				delete(l.reqs, id)
				n++
				break
			}
		}
	}
	return n
}

// keys returns the distinct keys of live requests.
func (l *liveSet) keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, r := range l.reqs {
		for _, k := range []string{r.user, r.session} {
			if k != "" && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// Live is how many requests are being watched.
func (d *Detector) Live() int {
	d.live.mu.Lock()
	defer d.live.mu.Unlock()
	return len(d.live.reqs)
}

// Watch returns a context derived from ctx that is cancelled (cause
// ErrBlocked) when a block covering s is made while the request is served,
// and a release func to call when it is done. Blocks made on this instance
// cut at once; blocks made by another instance sharing the store within
// PollInterval.
func (d *Detector) Watch(ctx context.Context, s Subject) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	id := d.live.add(userKey(s), sessionKey(s), cancel)
	return wctx, func() {
		d.live.remove(id)
		cancel(context.Canceled)
	}
}

// pollBlocks checks the blocks of live requests' subjects every
// PollInterval, to enforce blocks made by other instances.
func (d *Detector) pollBlocks() {
	defer d.stopped.Done()
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		keys := d.live.keys()
		if len(keys) == 0 {
			continue
		}
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = "block:" + k
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.opts.StoreTimeout)
		snap, err := d.store.Load(ctx, d.clock(), Query{Markers: names})
		cancel()
		if err != nil {
			d.storeErr("watch", err)
			continue
		}
		for i, k := range keys {
			if _, ok := snap.Markers[names[i]]; ok {
				d.live.cut(k)
			}
		}
	}
}
