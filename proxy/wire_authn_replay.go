package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/authn"
)

// Revocations in single-instance mode (no Redis) live in an
// authn.MemoryStore, which a restart empties: a cookie copied before a
// logout would work again. The signed audit log already holds every
// logout and session_revoked record (session id and subject are never
// sealed), so at start the revocations of the last session lifetime are
// replayed from it into the memory store before the store answers. Older
// revocations need no replay: every session they name has expired. Until
// the replay has succeeded, revocation checks fail (every request needing a
// session is refused) and /readyz "authn" reports why; a failed replay is
// retried in the background.

// errReplayPending: the revocations have not been read from the audit log yet.
var errReplayPending = errors.New("authn: revocations not yet replayed from the audit log")

// revocationReplay wraps the memory store: Revoked fails until the audit
// log's revocations have been replayed into it.
type revocationReplay struct {
	*authn.MemoryStore
	dir      string
	lifetime time.Duration
	clock    func() time.Time
	log      *zap.Logger

	mu  sync.Mutex
	err error // nil once replayed
}

// replayStats describes one replay.
type replayStats struct {
	Scanned  int // logout and revocation records read
	Sessions int // session revocations applied
	Users    int // user revocations applied
	Expired  int // revocations older than the lifetime, skipped
}

func newRevocationReplay(ms *authn.MemoryStore, dir string, lifetime time.Duration, clock func() time.Time, log *zap.Logger) *revocationReplay {
	if lifetime <= 0 {
		lifetime = authn.DefaultLifetime
	}
	if clock == nil {
		clock = time.Now
	}
	return &revocationReplay{MemoryStore: ms, dir: dir, lifetime: lifetime, clock: clock, log: log, err: errReplayPending}
}

// Revoked implements authn.Store: an error (refuse) until replayed.
func (r *revocationReplay) Revoked(ctx context.Context, id, subject string, created time.Time) (bool, error) {
	if err := r.state(); err != nil {
		return false, err
	}
	return r.MemoryStore.Revoked(ctx, id, subject, created)
}

func (r *revocationReplay) state() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// ready is the /readyz "authn" part owned by the replay.
func (r *revocationReplay) ready(context.Context) error { return r.state() }

// run replays once and records the outcome.
func (r *revocationReplay) run(ctx context.Context) error {
	t0 := time.Now()
	stats, err := replayRevocations(ctx, r.dir, r.MemoryStore, r.clock(), r.lifetime)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = fmt.Errorf("authn: replay revocations from audit log %s (requests needing a session are refused): %w", r.dir, err)
		return r.err
	}
	r.err = nil
	r.log.Info("revocations replayed from the audit log", zap.String("dir", r.dir),
		zap.Int("records", stats.Scanned), zap.Int("sessions", stats.Sessions), zap.Int("users", stats.Users),
		zap.Int("expired", stats.Expired), zap.Duration("took", time.Since(t0)))
	return nil
}

// retryEvery runs run every interval until it succeeds (true) or ctx ends
// (false), logging each failure: the start-up replays that failed once.
func retryEvery(ctx context.Context, interval time.Duration, log *zap.Logger, what string, run func(context.Context) error) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if err := run(ctx); err != nil {
			log.Error(what+" failed again", zap.Error(err))
			continue
		}
		return true
	}
}

// revocationStore is what a replay writes to.
type revocationStore interface {
	Revoke(ctx context.Context, id string, ttl time.Duration) error
	RevokeUser(ctx context.Context, subject string, at time.Time, ttl time.Duration) error
}

// replayRevocations applies the logout and session_revoked records (and
// the superseded session of step_up records) of the audit log in dir newer than now-lifetime to st, each for what is left of
// its lifetime. A missing log is an empty one (first start); a log that
// cannot be read is an error.
func replayRevocations(ctx context.Context, dir string, st revocationStore, now time.Time, lifetime time.Duration) (replayStats, error) {
	var stats replayStats
	from := now.Add(-lifetime)
	// From the segment covering from (a minute early: record clocks may be
	// slightly out of order), not the whole log.
	// Only these lines are decoded: a day of decisions is skipped at the
	// speed of a byte search.
	// step_up records name the session a step-up superseded (revoked at
	// the step-up); logs written before that revocation had a
	// session_revoked record of its own hold it only there.
	types := []audit.Type{audit.TypeLogout, audit.TypeSessionRevoked, audit.TypeStepUp}
	err := audit.ScanSinceTypes(dir, nil, from.Add(-time.Minute), types, func(rec *audit.Record) error {
		stats.Scanned++
		if !rec.Time.After(from) {
			stats.Expired++
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ttl := rec.Time.Add(lifetime).Sub(now)
		if rec.Type == audit.TypeStepUp {
			// Its session id is the new session: only the previous one
			// was revoked.
			prev, _ := rec.Detail["previous_session"].(string)
			if prev == "" {
				return nil
			}
			if err := st.Revoke(ctx, prev, ttl); err != nil {
				return fmt.Errorf("replay revocation of record %d: %w", rec.Index, err)
			}
			stats.Sessions++
			return nil
		}
		switch {
		case rec.SessionID != "":
			if err := st.Revoke(ctx, rec.SessionID, ttl); err != nil {
				return fmt.Errorf("replay revocation of record %d: %w", rec.Index, err)
			}
			stats.Sessions++
		case rec.Subject != "":
			if err := st.RevokeUser(ctx, rec.Subject, rec.Time, ttl); err != nil {
				return fmt.Errorf("replay revocation of record %d: %w", rec.Index, err)
			}
			stats.Users++
		}
		// A record naming neither revokes nothing (authn never writes one).
		return nil
	})
	return stats, err
}
