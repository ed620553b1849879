package anomaly

import (
	"context"
	"strings"
	"sync"
	"time"
)

// liveSet tracks requests being served, so that a block can cut them.
type liveSet struct {
	mu   sync.Mutex
	next uint64
	reqs map[uint64]liveReq
}

// liveReq keeps its subject's ids, not its keys: Watch builds no string,
// cut compares keys with the ids they are made of.
type liveReq struct {
	user, session, ip string // Subject's User, Session and IP
	cancel            context.CancelCauseFunc
}

// userKey and sessionKey are r's subject's keys (userKey, sessionKey).
func (r *liveReq) userKey() string {
	return userKey(Subject{User: r.user, IP: r.ip})
}

func (r *liveReq) sessionKey() string { return sessionKey(Subject{Session: r.session}) }

// covered reports whether key k is r's user or session key.
func (r *liveReq) covered(k string) bool {
	if k == "" {
		return false
	}
	if r.user != "" {
		if isKey(k, "u:", r.user) {
			return true
		}
	} else if isKey(k, "ip:", r.ip) {
		return true
	}
	return r.session != "" && isKey(k, "s:", r.session)
}

// isKey reports whether k is prefix+id.
func isKey(k, prefix, id string) bool {
	return len(k) == len(prefix)+len(id) && strings.HasPrefix(k, prefix) && k[len(prefix):] == id
}

func newLiveSet() *liveSet { return &liveSet{reqs: map[uint64]liveReq{}} }

func (l *liveSet) add(s Subject, cancel context.CancelCauseFunc) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	l.reqs[l.next] = liveReq{user: s.User, session: s.Session, ip: s.IP, cancel: cancel}
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
			if r.covered(k) {
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
		for _, k := range [...]string{r.userKey(), r.sessionKey()} {
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
// and a release func to call when it is done. It is Guard with a context
// of its own.
func (d *Detector) Watch(ctx context.Context, s Subject) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	release := d.Guard(s, cancel)
	return wctx, func() {
		release()
		cancel(context.Canceled)
	}
}

// Guard calls cut (cause ErrBlocked) when a block covering s is made while
// the request is served, and returns a release func to call when it is
// done; after release, cut is never called. Blocks made on this instance
// cut at once; blocks made by another instance sharing the store within
// PollInterval. A caller that already has a cancellable context for the
// request passes its cancel func: no context is made here.
//
// A block made on this instance after the request was assessed but before
// Guard (while policy judged it, while its decision was written down) is
// found here: setBlock remembers a block before it cuts the live set, and
// Guard joins the live set before it looks, so one of the two sees the
// other. Blocks of other instances reach a live request through the
// store's poll or sync.
func (d *Detector) Guard(s Subject, cut context.CancelCauseFunc) (release func()) {
	id := d.live.add(s, cut)
	if d.blockedHere(s) {
		d.live.remove(id)
		cut(ErrBlocked)
	}
	return func() { d.live.remove(id) }
}

// blockedHere reports whether a block made on this instance covers s now.
// Without any such block (the usual case) it builds no key. On a shared
// store the local view answers, not the blocks remembered here: another
// replica may have lifted one since (the view learns that from the marker
// generation), and a block made here is in the view as well.
func (d *Detector) blockedHere(s Subject) bool {
	if d.nlocal.Load() == 0 { // len(d.local), read without the lock every request would take
		return false
	}
	sk := newSubjectKeys(s)
	now := d.clock()
	if d.sync != nil {
		_, ok := d.sync.knownBlock(&sk.marks, now)
		return ok
	}
	_, ok := d.localBlock(&sk, now)
	return ok
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
