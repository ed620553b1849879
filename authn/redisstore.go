package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a Store in Redis, shared by every replica. Without Watch,
// every revocation check is a round trip, so a revocation on one replica
// is seen by the next request on any other. With Watch running, checks are
// answered from a local view kept current in the background: a revocation
// is seen at once on the replica that made it and within about Poll (never
// more than Grace) on the others; see WatchOptions.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string

	view       revView
	pollErrors atomic.Int64
	checks     atomic.Int64 // revocation checks sent to Redis (tests, metrics)
}

// NewRedisStore wraps a go-redis client. Keys start with prefix (default
// "gatehouse:authn:").
func NewRedisStore(c redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "gatehouse:authn:"
	}
	return &RedisStore{c: c, prefix: prefix}
}

func (r *RedisStore) key(kind, id string) string { return r.prefix + kind + ":" + id }

// Ping reports whether Redis answers (readiness).
func (r *RedisStore) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Get implements Store.
func (r *RedisStore) Get(ctx context.Context, id string) (*Session, error) {
	b, err := r.c.Get(ctx, r.key("s", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get session: %w", err)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode session record: %w", err)
	}
	return &s, nil
}

// Put implements Store.
func (r *RedisStore) Put(ctx context.Context, s *Session, ttl time.Duration) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode session record: %w", err)
	}
	if err := r.c.Set(ctx, r.key("s", s.ID), b, ttl).Err(); err != nil {
		return fmt.Errorf("redis put session: %w", err)
	}
	return nil
}

// Delete implements Store.
func (r *RedisStore) Delete(ctx context.Context, id string) error {
	if err := r.c.Del(ctx, r.key("s", id)).Err(); err != nil {
		return fmt.Errorf("redis delete session: %w", err)
	}
	return nil
}

// Revoke implements Store. Besides the key the per-request check reads,
// the id goes into the index Watch reads, and the generation moves.
func (r *RedisStore) Revoke(ctx context.Context, id string, ttl time.Duration) error {
	now := time.Now()
	exp := now.Add(ttl).UnixMilli()
	var gen *redis.IntCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.key("rs", id), "1", ttl)
		p.Del(ctx, r.key("s", id))
		p.ZAdd(ctx, r.key("rsidx", ""), redis.Z{Score: float64(exp), Member: id})
		p.ZRemRangeByScore(ctx, r.key("rsidx", ""), "-inf", strconv.FormatInt(now.UnixMilli(), 10))
		gen = p.Incr(ctx, r.key("gen", ""))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis revoke session: %w", err)
	}
	r.view.addOwn(ownRev{gen: gen.Val(), id: id, exp: exp})
	return nil
}

// revokeUserScript keeps the latest revocation time, in the key the
// per-request check reads and in the index Watch reads, and moves the
// generation. It returns {revoked-up-to, generation}.
var revokeUserScript = redis.NewScript(`
local at = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(at) then
  at = cur
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], at, 'PX', ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[3], at .. ':' .. ARGV[4])
return {at, redis.call('INCR', KEYS[3])}`)

// RevokeUser implements Store.
func (r *RedisStore) RevokeUser(ctx context.Context, subject string, at time.Time, ttl time.Duration) error {
	exp := time.Now().Add(ttl).UnixMilli()
	res, err := revokeUserScript.Run(ctx, r.c, []string{r.key("ru", subject), r.key("ruidx", ""), r.key("gen", "")},
		at.UnixMilli(), ttl.Milliseconds(), subject, exp).Slice()
	if err != nil {
		return fmt.Errorf("redis revoke user: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redis revoke user: %d values", len(res))
	}
	upTo, _ := res[0].(string)
	atMS, err := strconv.ParseInt(upTo, 10, 64)
	if err != nil {
		return fmt.Errorf("redis revoke user: bad time %q", upTo)
	}
	gen, _ := res[1].(int64)
	r.view.addOwn(ownRev{gen: gen, sub: subject, user: revUser{at: atMS, exp: exp}})
	return nil
}

// Revoked implements Store: from the local view while Watch keeps it
// fresh, otherwise in one round trip.
func (r *RedisStore) Revoked(ctx context.Context, id, subject string, created time.Time) (bool, error) {
	if rev, ok := r.view.answer(id, subject, created); ok {
		return rev, nil
	}
	r.checks.Add(1)
	vals, err := r.c.MGet(ctx, r.key("rs", id), r.key("ru", subject)).Result()
	if err != nil {
		return false, fmt.Errorf("redis revocation check: %w", err)
	}
	if len(vals) != 2 {
		return false, fmt.Errorf("redis revocation check: %d values", len(vals))
	}
	if vals[0] != nil {
		return true, nil
	}
	if s, ok := vals[1].(string); ok {
		at, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return false, fmt.Errorf("redis revocation check: bad time %q", s)
		}
		if created.UnixMilli() <= at {
			return true, nil
		}
	}
	return false, nil
}

// UseOnce implements Store.
func (r *RedisStore) UseOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := r.c.SetNX(ctx, r.key("once", key), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis use-once: %w", err)
	}
	return ok, nil
}
