package authn

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The revocation view keeps RedisStore.Revoked off the network. Every
// revocation, besides its own key, is added to an index (a sorted set of
// session ids by expiry, a hash of subjects) and bumps a generation counter,
// all in one transaction. Watch polls the counter; when it moves, and every
// Resync anyway, it reads the whole index in one transaction and swaps the
// local view. Revoked answers from the view only while the last successful
// poll is younger than Grace; otherwise it asks Redis as before (and fails
// closed when Redis does not answer). A revocation made through this store
// enters the view at once.

// WatchOptions tune RedisStore.Watch. Zero values get the defaults.
type WatchOptions struct {
	// Poll is how often the generation counter is read. Default 50ms.
	Poll time.Duration
	// Resync is how often the whole index is reread even when the counter
	// did not move (a safety net). Default 1s.
	Resync time.Duration
	// Grace is how old the last successful poll may be for Revoked to
	// answer locally; past it, every check goes to Redis. Default 500ms.
	// A revocation on another replica is therefore seen here within
	// Poll + one round trip normally, and never later than Grace.
	Grace time.Duration
}

func (o WatchOptions) withDefaults() WatchOptions {
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Resync <= 0 {
		o.Resync = time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 500 * time.Millisecond
	}
	if o.Grace < o.Poll {
		o.Grace = 2 * o.Poll
	}
	return o
}

type revUser struct{ at, exp int64 } // unix ms: revoked up to at, until exp

// ownRev is a revocation made by this replica, kept in the view until a
// snapshot at least as new as its generation includes it.
type ownRev struct {
	gen  int64
	id   string // session id, or "" for a user revocation
	sub  string
	user revUser
	exp  int64
}

type revView struct {
	mu       sync.RWMutex
	watching bool
	grace    time.Duration
	synced   time.Time // when the last successful poll was sent
	gen      int64     // generation of the snapshot in the view
	sessions map[string]int64
	users    map[string]revUser
	own      []ownRev
}

// answer reports (revoked, true) from the view when it is fresh.
func (v *revView) answer(id, subject string, created time.Time) (bool, bool) {
	now := time.Now()
	v.mu.RLock()
	defer v.mu.RUnlock()
	if !v.watching || now.Sub(v.synced) >= v.grace {
		return false, false
	}
	ms := now.UnixMilli()
	if exp, ok := v.sessions[id]; ok && ms < exp {
		return true, true
	}
	if u, ok := v.users[subject]; ok && ms < u.exp && created.UnixMilli() <= u.at {
		return true, true
	}
	return false, true
}

func (v *revView) addOwn(o ownRev) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.watching {
		return // no view to keep current; the first reload reads it from Redis
	}
	if v.sessions == nil {
		v.sessions, v.users = map[string]int64{}, map[string]revUser{}
	}
	v.apply(o)
	v.own = append(v.own, o)
}

// apply puts o into the maps; v.mu is held.
func (v *revView) apply(o ownRev) {
	if o.id != "" {
		v.sessions[o.id] = max(v.sessions[o.id], o.exp)
		return
	}
	u := v.users[o.sub]
	v.users[o.sub] = revUser{at: max(u.at, o.user.at), exp: max(u.exp, o.user.exp)}
}

// ViewStats describes the local revocation view, for metrics.
type ViewStats struct {
	Fresh      bool          // checks are answered locally now
	Age        time.Duration // since the last successful poll was sent
	Sessions   int           // revoked session ids in the view
	Users      int           // revoked users in the view
	PollErrors int64         // failed polls since start
	Fallbacks  int64         // checks sent to Redis (view not fresh)
}

// ViewStats reports the state of the local revocation view.
func (r *RedisStore) ViewStats() ViewStats {
	v := &r.view
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := ViewStats{Sessions: len(v.sessions), Users: len(v.users), PollErrors: r.pollErrors.Load(), Fallbacks: r.checks.Load()}
	if !v.synced.IsZero() {
		st.Age = time.Since(v.synced)
	}
	st.Fresh = v.watching && !v.synced.IsZero() && st.Age < v.grace
	return st
}

// Watch keeps the local revocation view current until ctx ends; run it in
// its own goroutine. While it runs (and Redis answers), Revoked makes no
// round trip.
func (r *RedisStore) Watch(ctx context.Context, o WatchOptions) {
	o = o.withDefaults()
	r.view.mu.Lock()
	r.view.watching, r.view.grace = true, o.Grace
	r.view.mu.Unlock()
	defer func() {
		r.view.mu.Lock()
		r.view.watching = false
		r.view.mu.Unlock()
	}()
	t := time.NewTicker(o.Poll)
	defer t.Stop()
	var lastFull time.Time
	for {
		sent := time.Now()
		full := sent.Sub(lastFull) >= o.Resync
		if err := r.poll(ctx, sent, full); err == nil {
			if full {
				lastFull = sent
			}
		} else if ctx.Err() == nil {
			r.pollErrors.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll reads the generation; when it moved (or full), it reloads the index.
func (r *RedisStore) poll(ctx context.Context, sent time.Time, full bool) error {
	pctx, cancel := context.WithTimeout(ctx, r.view.graceOr(time.Second))
	defer cancel()
	if !full {
		g, err := r.generation(pctx)
		if err != nil {
			return err
		}
		r.view.mu.Lock()
		same := g == r.view.gen && r.view.sessions != nil
		if same {
			r.view.synced = sent
		}
		r.view.mu.Unlock()
		if same {
			return nil
		}
	}
	return r.reload(pctx, sent)
}

func (v *revView) graceOr(d time.Duration) time.Duration {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.grace > 0 {
		return v.grace
	}
	return d
}

func (r *RedisStore) generation(ctx context.Context) (int64, error) {
	g, err := r.c.Get(ctx, r.key("gen", "")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis revocation generation: %w", err)
	}
	return g, nil
}

// reload reads the generation and the whole index in one transaction and
// swaps the view.
func (r *RedisStore) reload(ctx context.Context, sent time.Time) error {
	nowMS := time.Now().UnixMilli()
	var gen *redis.StringCmd
	var sess *redis.ZSliceCmd
	var users *redis.MapStringStringCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		gen = p.Get(ctx, r.key("gen", ""))
		sess = p.ZRangeByScoreWithScores(ctx, r.key("rsidx", ""), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(nowMS, 10), Max: "+inf"})
		users = p.HGetAll(ctx, r.key("ruidx", ""))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis revocation reload: %w", err)
	}
	g, err := gen.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis revocation reload: generation: %w", err)
	}
	sm := make(map[string]int64, len(sess.Val()))
	for _, z := range sess.Val() {
		if id, ok := z.Member.(string); ok {
			sm[id] = int64(z.Score)
		}
	}
	um := make(map[string]revUser, len(users.Val()))
	for sub, val := range users.Val() {
		at, exp, ok := parseUserRev(val)
		if !ok {
			return fmt.Errorf("redis revocation reload: bad user entry %q", val)
		}
		if exp > nowMS {
			um[sub] = revUser{at: at, exp: exp}
		} else {
			// Expired: drop it from the index unless it changed meanwhile.
			_ = dropExpiredUser.Run(ctx, r.c, []string{r.key("ruidx", "")}, sub, val).Err()
		}
	}
	r.view.swap(sm, um, g, sent)
	return nil
}

// swap replaces the view with a snapshot at generation g read at sent.
func (v *revView) swap(sm map[string]int64, um map[string]revUser, g int64, sent time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sessions, v.users, v.gen, v.synced = sm, um, g, sent
	// Own revocations newer than the snapshot stay in the view (the
	// snapshot may have been taken just before them).
	kept := v.own[:0]
	for _, o := range v.own {
		if o.gen > g {
			v.apply(o)
			kept = append(kept, o)
		}
	}
	v.own = kept
}

// dropExpiredUser deletes an index entry only if it still holds the value
// read (a newer revocation of the same user is kept).
var dropExpiredUser = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`)

func parseUserRev(s string) (at, exp int64, ok bool) {
	a, e, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	at, err1 := strconv.ParseInt(a, 10, 64)
	exp, err2 := strconv.ParseInt(e, 10, 64)
	return at, exp, err1 == nil && err2 == nil
}
