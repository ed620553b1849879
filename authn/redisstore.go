package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a Store in Redis, shared by every replica: a revocation on
// one replica is seen by the next request on any other.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
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

// Revoke implements Store.
func (r *RedisStore) Revoke(ctx context.Context, id string, ttl time.Duration) error {
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.key("rs", id), "1", ttl)
		p.Del(ctx, r.key("s", id))
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis revoke session: %w", err)
	}
	return nil
}

// revokeUserScript keeps the latest revocation time.
var revokeUserScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// RevokeUser implements Store.
func (r *RedisStore) RevokeUser(ctx context.Context, subject string, at time.Time, ttl time.Duration) error {
	err := revokeUserScript.Run(ctx, r.c, []string{r.key("ru", subject)},
		at.UnixMilli(), ttl.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis revoke user: %w", err)
	}
	return nil
}

// Revoked implements Store, in one round trip.
func (r *RedisStore) Revoked(ctx context.Context, id, subject string, created time.Time) (bool, error) {
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
