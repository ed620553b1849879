package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Blocks: what they cover, how they are made (by rules and operators),
// listed and lifted. A block is a marker "block:KEY" in the store (KEY a
// subject's user, session or address key) and, for the blocks made on
// this instance, an entry of Detector.local (enforced while the store is
// down).

// BlockKind says what a block covers.
type BlockKind string

// Block kinds.
const (
	BlockUser    BlockKind = "user"
	BlockSession BlockKind = "session"
	// BlockAddress covers an anonymous caller's address (public routes):
	// its own kind, so that a user id that happens to read "ip:…" is
	// never taken for one.
	BlockAddress BlockKind = "address"
)

// UnknownAddress is the address block id of anonymous callers whose address
// is unknown (a trusted proxy sent no readable X-Forwarded-For): they share
// one counter key, and a block of it can be lifted by this name.
const UnknownAddress = "unknown"

// ErrBlockTarget is returned (wrapped) for a block or unblock naming
// nothing that can be blocked: an empty id, an address that is none, an
// unknown kind.
var ErrBlockTarget = errors.New("invalid block target")

// Block is an active refusal of a user, a session or an anonymous
// caller's address.
type Block struct {
	Kind    BlockKind `json:"kind"`
	ID      string    `json:"id"` // user id, session id or address ("unknown": the unknown one)
	Rule    string    `json:"rule,omitempty"`
	Reason  string    `json:"reason"`
	User    string    `json:"user,omitempty"`
	Created time.Time `json:"created"`
	Until   time.Time `json:"until"`
	Counts  Counts    `json:"counts"`
}

// setBlock stores a block, remembers it locally and cuts live requests it
// covers at once.
func (d *Detector) setBlock(ctx context.Context, key string, b Block, dur time.Duration) error {
	raw, _ := json.Marshal(b)
	d.mu.Lock()
	d.local[key] = b
	d.nlocal.Store(int32(len(d.local))) // before the cut: Guard looks after joining
	d.mu.Unlock()
	// Into the shared store's local view before the cut as well: a Guard
	// that joins after the cut asks that view (knownBlock), and must find
	// the block there, not only after the next flush.
	d.noteMarker("block:"+key, raw)
	d.live.cut(key)
	sctx, cancel := d.bounded(ctx)
	defer cancel()
	if _, err := d.store.SetMarker(sctx, "block:"+key, raw, dur, false); err != nil {
		d.storeErr("block", err)
		return fmt.Errorf("store block %s: %w", key, err)
	}
	return nil
}

// blockInForce returns the block stored under key (block:key) while it
// lasts. With the memory store every block is made here; a shared store is
// read (another replica may have made one, or lifted one made here). A
// marker that cannot be read or decoded counts as none. It only informs
// (a rule's record names the until in force); the never-shorten rule
// itself is the store's compare-and-set (setBlockLonger).
func (d *Detector) blockInForce(ctx context.Context, key string, now time.Time) (Block, bool) {
	var b Block
	if !d.store.Shared() {
		d.mu.Lock()
		lb, ok := d.local[key]
		d.mu.Unlock()
		if ok && now.Before(lb.Until) {
			return lb, true
		}
		return Block{}, false
	}
	sctx, cancel := d.bounded(ctx)
	defer cancel()
	snap, err := d.store.Load(sctx, now, Query{Markers: []string{"block:" + key}})
	if err != nil {
		return Block{}, false
	}
	raw, ok := snap.Markers["block:"+key]
	if !ok || json.Unmarshal(raw, &b) != nil || !now.Before(b.Until) {
		return Block{}, false
	}
	return b, true
}

// setBlockLonger is setBlock unless the store already holds a block under
// key that lasts at least as long: then nothing is written (nor remembered
// here) and it reports false. The live requests b covers are cut either
// way. A store error leaves b enforced here, as setBlock does.
func (d *Detector) setBlockLonger(ctx context.Context, key string, b Block, dur time.Duration) (bool, error) {
	raw, _ := json.Marshal(b)
	sctx, cancel := d.bounded(ctx)
	stored, err := d.store.SetMarkerLonger(sctx, "block:"+key, raw, dur)
	cancel()
	if err != nil || stored {
		d.mu.Lock()
		if cur, ok := d.local[key]; !ok || cur.Until.Before(b.Until) {
			d.local[key] = b
		}
		d.nlocal.Store(int32(len(d.local)))
		d.mu.Unlock()
	}
	if stored {
		d.noteMarker("block:"+key, raw)
	}
	d.live.cut(key)
	if err != nil {
		d.storeErr("block", err)
		return false, fmt.Errorf("store block %s: %w", key, err)
	}
	return stored, nil
}

func (d *Detector) localBlock(sk *subjectKeys, now time.Time) (Block, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range [...]string{sk.session(), sk.user()} {
		if b, ok := d.local[k]; ok && k != "" {
			if now.Before(b.Until) {
				return b, true
			}
			delete(d.local, k)
			d.nlocal.Store(int32(len(d.local)))
		}
	}
	return Block{}, false
}

func blockKey(kind BlockKind, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty id", ErrBlockTarget)
	}
	switch kind {
	case BlockUser:
		return "u:" + id, nil
	case BlockSession:
		return "s:" + id, nil
	case BlockAddress:
		if id == UnknownAddress {
			return "ip:", nil // userKey of a Subject without an IP
		}
		a, err := netip.ParseAddr(id)
		if err != nil {
			return "", fmt.Errorf("%w: address %q: %w", ErrBlockTarget, id, err)
		}
		return "ip:" + a.Unmap().String(), nil
	}
	return "", fmt.Errorf("%w: unknown block kind %q", ErrBlockTarget, kind)
}

// Block refuses a user or session for dur (an operator's decision) and cuts
// its live requests.
func (d *Detector) Block(ctx context.Context, kind BlockKind, id string, dur time.Duration, reason string) (Block, error) {
	b, err := d.PlanBlock(kind, id, dur, reason)
	if err != nil {
		return Block{}, err
	}
	return b, d.ApplyBlock(ctx, b)
}

// PlanBlock is the block Block would make now, not yet applied: a caller
// that must write a block down before it takes effect (the admin API, in
// the audit log) records it, then applies it with ApplyBlock.
func (d *Detector) PlanBlock(kind BlockKind, id string, dur time.Duration, reason string) (Block, error) {
	if _, err := blockKey(kind, id); err != nil {
		return Block{}, fmt.Errorf("block: %w", err)
	}
	if dur <= 0 {
		dur = d.opts.BlockFor
	}
	if reason == "" {
		reason = "operator"
	}
	now := d.clock()
	b := Block{Kind: kind, ID: id, Reason: reason, Created: now, Until: now.Add(dur)}
	if kind == BlockUser {
		b.User = id
	}
	return b, nil
}

// ApplyBlock makes b (from PlanBlock) take effect until b.Until. A store
// error is returned with the block still enforced on this instance.
func (d *Detector) ApplyBlock(ctx context.Context, b Block) error {
	key, err := blockKey(b.Kind, b.ID)
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	dur := b.Until.Sub(d.clock())
	if dur <= 0 {
		return fmt.Errorf("block %s: already over", key)
	}
	return d.setBlock(ctx, key, b, dur)
}

// Blocks lists active blocks, oldest first.
func (d *Detector) Blocks(ctx context.Context) ([]Block, error) {
	sctx, cancel := d.bounded(ctx)
	defer cancel()
	ms, err := d.store.Markers(sctx, "block:")
	if err != nil {
		d.storeErr("list", err)
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	out := make([]Block, 0, len(ms))
	for name, raw := range ms {
		var b Block
		if err := json.Unmarshal(raw, &b); err != nil {
			b = Block{Reason: "unreadable block record", ID: strings.TrimPrefix(name, "block:")}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Unblock lifts the block of a user or session and reports whether there
// was one. The rule's fired marker stays, so the same counters do not
// block again at once.
func (d *Detector) Unblock(ctx context.Context, kind BlockKind, id string) (bool, error) {
	key, err := blockKey(kind, id)
	if err != nil {
		return false, fmt.Errorf("unblock: %w", err)
	}
	d.mu.Lock()
	_, hadLocal := d.local[key]
	delete(d.local, key)
	d.nlocal.Store(int32(len(d.local)))
	d.mu.Unlock()
	sctx, cancel := d.bounded(ctx)
	defer cancel()
	ok, err := d.store.DeleteMarker(sctx, "block:"+key)
	if err != nil {
		d.storeErr("unblock", err)
		return hadLocal, fmt.Errorf("unblock %s: %w", key, err)
	}
	d.noteMarker("block:"+key, nil)
	return ok || hadLocal, nil
}
