package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/audit"
)

// Blocks with the memory store (a single instance without Redis) live in
// the process, which a restart empties: a blocked user would be let in
// again by restarting Gatehouse. Every block and unblock is an audit
// record already (a rule's block action with its until, an operator's
// block or unblock through the admin API), so at start the blocks still
// running are replayed from the audit log into the detector before it
// answers, as the revocations are (wire_authn_replay.go).
//
// A block can outlast any fixed look-back (an operator may block for a
// month), so the stage also writes a snapshot record of the active blocks
// at start, every blockSnapshotEvery and at shutdown. The replay reads the
// last blockReplayWindow of the log; a block older than that is found in
// a snapshot inside it. When the window holds no snapshot (Gatehouse was
// down longer than that), the replay reads back blockReplayLongWindow.
// Until the replay has succeeded, Assess treats the state as a store
// failure (anomaly.on_store_error decides) and /readyz says why.

const (
	blockReplayWindow     = 24 * time.Hour
	blockReplayLongWindow = 90 * 24 * time.Hour
	blockSnapshotEvery    = 6 * time.Hour
	// blockSnapshotReason is the reason of snapshot records.
	blockSnapshotReason = "blocks_snapshot"
)

// errBlocksPending: the blocks have not been read from the audit log yet.
var errBlocksPending = errors.New("anomaly: blocks not yet replayed from the audit log")

// blockReplay restores a memory-store detector's blocks from the audit log.
type blockReplay struct {
	dir   string
	d     *anomaly.Detector
	log   *zap.Logger
	mu    sync.Mutex
	err   error // nil once replayed
	stats blockReplayStats
}

// blockReplayStats describes one replay.
type blockReplayStats struct {
	Scanned  int           // anomaly records read
	Restored int           // blocks still running, applied
	Expired  int           // blocks found that have ended
	Skipped  int           // blocks naming no valid target (logged)
	Window   time.Duration // look-back read
}

// blockState is one block as the records describe it.
type blockState struct {
	kind   anomaly.BlockKind
	id     string
	until  time.Time
	reason string
}

func (r *blockReplay) state() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// run replays once and records the outcome.
func (r *blockReplay) run(ctx context.Context) error {
	t0 := time.Now()
	stats, err := replayBlocks(ctx, r.dir, r.d, r.d.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = fmt.Errorf("anomaly: replay blocks from audit log %s: %w", r.dir, err)
		return r.err
	}
	r.err, r.stats = nil, stats
	r.log.Info("blocks replayed from the audit log", zap.String("dir", r.dir), zap.Int("records", stats.Scanned),
		zap.Int("restored", stats.Restored), zap.Int("expired", stats.Expired), zap.Int("skipped", stats.Skipped), zap.Duration("window", stats.Window),
		zap.Duration("took", time.Since(t0)))
	return nil
}

// blockTarget is what a replay applies blocks to.
type blockTarget interface {
	Block(ctx context.Context, kind anomaly.BlockKind, id string, dur time.Duration, reason string) (anomaly.Block, error)
}

// replayBlocks folds the block records of the last blockReplayWindow (or
// blockReplayLongWindow when that holds no snapshot) into the blocks
// running at now and applies them to t, each for what is left of it.
func replayBlocks(ctx context.Context, dir string, t blockTarget, now time.Time) (blockReplayStats, error) {
	stats := blockReplayStats{Window: blockReplayWindow}
	blocks, snapshot, err := scanBlocks(dir, now.Add(-blockReplayWindow), &stats.Scanned)
	if err == nil && !snapshot {
		stats.Window = blockReplayLongWindow
		blocks, _, err = scanBlocks(dir, now.Add(-blockReplayLongWindow), &stats.Scanned)
	}
	if err != nil {
		return stats, err
	}
	keys := make([]string, 0, len(blocks))
	for k := range blocks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b := blocks[k]
		left := b.until.Sub(now)
		if left <= 0 {
			stats.Expired++
			continue
		}
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		if _, err := t.Block(ctx, b.kind, b.id, left, b.reason); errors.Is(err, anomaly.ErrBlockTarget) {
			// One record naming nothing that can be blocked must not keep
			// every restart failing (and, failing closed, refusing all).
			stats.Skipped++
			continue
		} else if err != nil {
			return stats, fmt.Errorf("restore block of %s %s: %w", b.kind, b.id, err)
		}
		stats.Restored++
	}
	return stats, nil
}

// scanBlocks reads the anomaly records from from on, in log order: a block
// (or a snapshot's entry) sets one, an unblock removes one. A snapshot only
// adds what it lists — it is taken without stopping traffic, so a block or
// unblock recorded while it was being taken is not undone by it; what has
// ended is dropped by its until. It reports whether a snapshot was among
// the records.
func scanBlocks(dir string, from time.Time, scanned *int) (map[string]blockState, bool, error) {
	blocks := map[string]blockState{}
	snapshot := false
	err := audit.ScanSinceTypes(dir, nil, from.Add(-time.Minute), []audit.Type{audit.TypeAnomaly}, func(rec *audit.Record) error {
		*scanned++
		if rec.Time.Before(from) {
			return nil
		}
		// Records written before addresses had their own kind name an
		// anonymous caller's address as user "ip:ADDR"; those of an
		// operator and the snapshots are read so (as that code enforced
		// them), newer ones say address_kind and mean what they say.
		legacy := !addressKind(rec.Detail)
		switch str(rec.Detail, "action") {
		case "snapshot":
			snapshot = true
			list, _ := rec.Detail["blocks"].([]any)
			for _, v := range list {
				if b, ok := blockFrom(asMap(v), legacy); ok {
					blocks[string(b.kind)+":"+b.id] = b
				}
			}
		case "block":
			if ok, _ := rec.Detail["ok"].(bool); !ok {
				return nil
			}
			if b, ok := blockFrom(rec.Detail, legacy); ok {
				b.reason = firstOr(rec.Reasons, rec.Reason, "operator")
				blocks[string(b.kind)+":"+b.id] = b
			}
		case "unblock":
			kind, id := legacyTarget(anomaly.BlockKind(str(rec.Detail, "kind")), str(rec.Detail, "id"), legacy)
			delete(blocks, string(kind)+":"+id)
		default: // a rule firing: its block actions
			acts, _ := rec.Detail["actions"].([]any)
			for _, v := range acts {
				m := asMap(v)
				if a := str(m, "action"); a != string(anomaly.ActionBlockSession) && a != string(anomaly.ActionBlockUser) {
					continue
				}
				if ok, _ := m["ok"].(bool); !ok {
					continue
				}
				// A rule's record names its subject: none for an
				// anonymous caller, whatever its user id reads.
				b, ok := blockFrom(m, rec.Subject == "")
				if !ok {
					b, ok = legacyBlock(rec, anomaly.Action(str(m, "action")), str(m, "until"))
				}
				if ok {
					b.reason = "anomaly:" + rec.Rule
					blocks[string(b.kind)+":"+b.id] = b
				}
			}
		}
		return nil
	})
	return blocks, snapshot, err
}

// blockFrom reads kind, id, until (and reason, in snapshots) of a block
// from a record's detail.
//
// legacy says the record may name an address as user "ip:ADDR" (see
// scanBlocks): only then, and only when ADDR is an address (or empty: the
// unknown one), is such a user read as an address.
func blockFrom(m map[string]any, legacy bool) (blockState, bool) {
	kind, id := legacyTarget(anomaly.BlockKind(str(m, "kind")), str(m, "id"), legacy)
	until, err := time.Parse(time.RFC3339, str(m, "until"))
	if (kind != anomaly.BlockUser && kind != anomaly.BlockSession && kind != anomaly.BlockAddress) || id == "" || err != nil {
		return blockState{}, false
	}
	return blockState{kind: kind, id: id, until: until, reason: firstOr(nil, str(m, "reason"), "operator")}, true
}

// legacyTarget reads a legacy record's user "ip:ADDR" as the address ADDR
// (see blockFrom); everything else is returned as it is.
func legacyTarget(kind anomaly.BlockKind, id string, legacy bool) (anomaly.BlockKind, string) {
	rest, isIP := strings.CutPrefix(id, "ip:")
	if !legacy || kind != anomaly.BlockUser || !isIP {
		return kind, id
	}
	if rest == "" {
		return anomaly.BlockAddress, anomaly.UnknownAddress
	}
	a, err := netip.ParseAddr(rest)
	if err != nil {
		return kind, id
	}
	return anomaly.BlockAddress, a.Unmap().String()
}

// addressKind reports whether a record says it names addresses with the
// address kind (all records written since that kind exists).
func addressKind(detail map[string]any) bool {
	v, _ := detail["address_kind"].(bool)
	return v
}

// legacyBlock is the target of a rule's block action in a record that
// does not name it (written before records carried kind and id): the
// session for block_session when the record has one, else the user. An
// anonymous caller's address block cannot be told from such a record.
func legacyBlock(rec *audit.Record, a anomaly.Action, until string) (blockState, bool) {
	t, err := time.Parse(time.RFC3339, until)
	if err != nil {
		return blockState{}, false
	}
	switch {
	case a == anomaly.ActionBlockSession && rec.SessionID != "":
		return blockState{kind: anomaly.BlockSession, id: rec.SessionID, until: t}, true
	case rec.Subject != "":
		return blockState{kind: anomaly.BlockUser, id: rec.Subject, until: t}, true
	}
	return blockState{}, false
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func firstOr(list []string, s, def string) string {
	switch {
	case len(list) > 0 && list[0] != "":
		return list[0]
	case s != "":
		return s
	}
	return def
}

// blockSnapshot is the event listing the active blocks.
func blockSnapshot(now time.Time, blocks []anomaly.Block) Event {
	list := make([]any, 0, len(blocks))
	for _, b := range blocks {
		list = append(list, map[string]any{"kind": string(b.Kind), "id": b.ID,
			"until": b.Until.UTC().Format(time.RFC3339), "reason": b.Reason})
	}
	return Event{Type: EventAnomaly, Time: now, Outcome: "snapshot", Reasons: []string{blockSnapshotReason},
		Fields: map[string]any{"action": "snapshot", "blocks": list, "count": len(list), "address_kind": true}}
}
