package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the state in Redis so that replicas share counters,
// baselines and blocks. Keys (under Prefix, default "gatehouse:anomaly:"):
//
//	c:{KEY}:SECONDS  hash "BUCKET:r|b|d" -> count, one per key and window
//	p:{KEY}          sorted set path -> last-seen unix ms
//	b:{KEY}          hash "state" -> Baseline JSON, "PERIOD:r|b|d" -> counts
//	m:NAME           string marker (block, step-up, fired rule), with a TTL
//
// The braces are cluster hash tags: one subject's keys share a slot.
// Every call is bounded by its context (the detector gives StoreTimeout).
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisStore uses c (a client, failover or cluster client).
func NewRedisStore(c redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "gatehouse:anomaly:"
	}
	return &RedisStore{c: c, prefix: prefix}
}

// Shared is true: other replicas see the same state.
func (s *RedisStore) Shared() bool { return true }

func (s *RedisStore) ckey(key string, w time.Duration) string {
	return s.prefix + "c:{" + key + "}:" + strconv.FormatInt(int64(w/time.Second), 10)
}
func (s *RedisStore) pkey(key string) string  { return s.prefix + "p:{" + key + "}" }
func (s *RedisStore) bkey(user string) string { return s.prefix + "b:{" + user + "}" }
func (s *RedisStore) mkey(name string) string { return s.prefix + "m:" + name }

func storeErr(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, ErrStore, err)
}

// Ping checks Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return storeErr("ping", err)
	}
	return nil
}

type readCmds struct {
	counts    map[string]map[time.Duration]*redis.MapStringStringCmd
	paths     map[string]map[time.Duration]*redis.IntCmd
	markers   map[string]*redis.StringCmd
	baselines map[string]*redis.StringCmd
}

func (s *RedisStore) queueReads(p redis.Pipeliner, ctx context.Context, now time.Time, q Query) readCmds {
	rc := readCmds{counts: map[string]map[time.Duration]*redis.MapStringStringCmd{}, paths: map[string]map[time.Duration]*redis.IntCmd{},
		markers: map[string]*redis.StringCmd{}, baselines: map[string]*redis.StringCmd{}}
	nowMs := now.UnixMilli()
	for _, k := range q.Keys {
		rc.counts[k] = map[time.Duration]*redis.MapStringStringCmd{}
		rc.paths[k] = map[time.Duration]*redis.IntCmd{}
		for _, w := range q.Windows {
			rc.counts[k][w] = p.HGetAll(ctx, s.ckey(k, w))
			rc.paths[k][w] = p.ZCount(ctx, s.pkey(k), "("+strconv.FormatInt(nowMs-w.Milliseconds(), 10), "+inf")
		}
	}
	for _, n := range q.Markers {
		rc.markers[n] = p.Get(ctx, s.mkey(n))
	}
	for _, u := range q.Baselines {
		rc.baselines[u] = p.HGet(ctx, s.bkey(u), "state")
	}
	return rc
}

func (rc readCmds) snapshot(now time.Time) (Snapshot, error) {
	snap := Snapshot{Counts: map[string]map[time.Duration]Counts{}, Markers: map[string][]byte{}, Baselines: map[string]*Baseline{}}
	for k, byW := range rc.counts {
		snap.Counts[k] = map[time.Duration]Counts{}
		for w, cmd := range byW {
			fields, err := cmd.Result()
			if err != nil {
				return snap, storeErr("read counters", err)
			}
			c := sumBuckets(fields, now, w)
			n, err := rc.paths[k][w].Result()
			if err != nil {
				return snap, storeErr("read paths", err)
			}
			c.Paths = n
			snap.Counts[k][w] = c
		}
	}
	for n, cmd := range rc.markers {
		v, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return snap, storeErr("read marker", err)
		}
		snap.Markers[n] = v
	}
	for u, cmd := range rc.baselines {
		v, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return snap, storeErr("read baseline", err)
		}
		var b Baseline
		if err := json.Unmarshal(v, &b); err != nil {
			continue // unreadable: treated as no history (never flags)
		}
		snap.Baselines[u] = &b
	}
	return snap, nil
}

// sumBuckets adds up the fields "BUCKET:r|b|d" of buckets inside window w.
func sumBuckets(fields map[string]string, now time.Time, w time.Duration) Counts {
	width := int64(bucketWidth(w))
	cur := now.UnixNano() / width
	var c Counts
	for f, v := range fields {
		idxS, kind, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		idx, err1 := strconv.ParseInt(idxS, 10, 64)
		n, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil || idx <= cur-Buckets || idx > cur {
			continue
		}
		switch kind {
		case "r":
			c.Requests += n
		case "b":
			c.Bytes += n
		case "d":
			c.Downloads += n
		}
	}
	return c
}

// Add applies inc and reads q in one pipelined round trip. When a bucket is
// started, stale buckets of that hash are deleted in a second, rare one.
func (s *RedisStore) Add(ctx context.Context, now time.Time, inc Increment, q Query) (Snapshot, error) {
	p := s.c.Pipeline()
	nowMs := now.UnixMilli()
	maxW := maxWindow(inc.Windows)
	type started struct {
		key string
		w   time.Duration
		cmd *redis.IntCmd
	}
	var news []started
	for _, k := range inc.Keys {
		for _, w := range inc.Windows {
			width := bucketWidth(w)
			idx := strconv.FormatInt(now.UnixNano()/int64(width), 10)
			ck := s.ckey(k, w)
			news = append(news, started{k, w, p.HIncrBy(ctx, ck, idx+":r", 1)})
			if inc.Bytes > 0 {
				p.HIncrBy(ctx, ck, idx+":b", inc.Bytes)
			}
			if inc.Download {
				p.HIncrBy(ctx, ck, idx+":d", 1)
			}
			p.PExpire(ctx, ck, w+2*width)
		}
		if inc.Path != "" && maxW > 0 {
			pk := s.pkey(k)
			p.ZAdd(ctx, pk, redis.Z{Score: float64(nowMs), Member: inc.Path})
			p.ZRemRangeByScore(ctx, pk, "-inf", strconv.FormatInt(nowMs-maxW.Milliseconds(), 10))
			p.PExpire(ctx, pk, maxW+time.Minute)
		}
	}
	if inc.BaselineUser != "" {
		bk := s.bkey(inc.BaselineUser)
		per := strconv.FormatInt(inc.Period, 10)
		p.HIncrBy(ctx, bk, per+":r", 1)
		if inc.Bytes > 0 {
			p.HIncrBy(ctx, bk, per+":b", inc.Bytes)
		}
		if inc.Download {
			p.HIncrBy(ctx, bk, per+":d", 1)
		}
		p.Expire(ctx, bk, 90*24*time.Hour)
	}
	rc := s.queueReads(p, ctx, now, q)
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Snapshot{}, storeErr("add", err)
	}
	for _, n := range news {
		if n.cmd.Val() == 1 {
			s.prune(ctx, n.key, n.w, now)
		}
	}
	return rc.snapshot(now)
}

// prune deletes buckets that have left window w (best effort).
func (s *RedisStore) prune(ctx context.Context, key string, w time.Duration, now time.Time) {
	ck := s.ckey(key, w)
	fields, err := s.c.HKeys(ctx, ck).Result()
	if err != nil {
		return
	}
	cur := now.UnixNano() / int64(bucketWidth(w))
	var stale []string
	for _, f := range fields {
		idxS, _, _ := strings.Cut(f, ":")
		if idx, err := strconv.ParseInt(idxS, 10, 64); err != nil || idx <= cur-Buckets {
			stale = append(stale, f)
		}
	}
	if len(stale) > 0 {
		s.c.HDel(ctx, ck, stale...)
	}
}

// Load reads q in one pipelined round trip.
func (s *RedisStore) Load(ctx context.Context, now time.Time, q Query) (Snapshot, error) {
	p := s.c.Pipeline()
	rc := s.queueReads(p, ctx, now, q)
	if p.Len() == 0 {
		return rc.snapshot(now)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Snapshot{}, storeErr("load", err)
	}
	return rc.snapshot(now)
}

// SetMarker is SET (NX) PX.
func (s *RedisStore) SetMarker(ctx context.Context, name string, val []byte, ttl time.Duration, onlyNew bool) (bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	if onlyNew {
		ok, err := s.c.SetNX(ctx, s.mkey(name), val, ttl).Result()
		if err != nil {
			return false, storeErr("set marker", err)
		}
		return ok, nil
	}
	if err := s.c.Set(ctx, s.mkey(name), val, ttl).Err(); err != nil {
		return false, storeErr("set marker", err)
	}
	return true, nil
}

// DeleteMarker is DEL.
func (s *RedisStore) DeleteMarker(ctx context.Context, name string) (bool, error) {
	n, err := s.c.Del(ctx, s.mkey(name)).Result()
	if err != nil {
		return false, storeErr("delete marker", err)
	}
	return n > 0, nil
}

// Markers SCANs for markers under prefix (every master of a cluster).
func (s *RedisStore) Markers(ctx context.Context, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var mu sync.Mutex
	match := escapeGlob(s.mkey(prefix)) + "*"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 200).Iterator()
		for it.Next(ctx) {
			k := it.Val()
			v, err := c.Get(ctx, k).Bytes()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return err
			}
			mu.Lock()
			out[strings.TrimPrefix(k, s.prefix+"m:")] = v
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.c)
	}
	if err != nil {
		return nil, storeErr("list markers", err)
	}
	return out, nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// FoldBaseline runs fn in an optimistic transaction (WATCH) on the user's
// baseline hash, retrying a few times when another replica folds at once.
func (s *RedisStore) FoldBaseline(ctx context.Context, user string, fn func(b *Baseline, periods map[int64]Counts) *Baseline) (*Baseline, error) {
	bk := s.bkey(user)
	var result *Baseline
	txf := func(tx *redis.Tx) error {
		fields, err := tx.HGetAll(ctx, bk).Result()
		if err != nil {
			return err
		}
		var cur *Baseline
		if raw, ok := fields["state"]; ok {
			var b Baseline
			if json.Unmarshal([]byte(raw), &b) == nil {
				cur = &b
			}
		}
		periods := map[int64]Counts{}
		for f, v := range fields {
			pS, kind, ok := strings.Cut(f, ":")
			if !ok {
				continue
			}
			p, err1 := strconv.ParseInt(pS, 10, 64)
			n, err2 := strconv.ParseInt(v, 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			c := periods[p]
			switch kind {
			case "r":
				c.Requests = n
			case "b":
				c.Bytes = n
			case "d":
				c.Downloads = n
			}
			periods[p] = c
		}
		nb := fn(cur, periods)
		if nb == nil {
			result = cur
			return nil
		}
		raw, err := json.Marshal(nb)
		if err != nil {
			return err
		}
		var drop []string
		for f := range fields {
			if pS, _, ok := strings.Cut(f, ":"); ok {
				if p, err := strconv.ParseInt(pS, 10, 64); err == nil && p < nb.Next {
					drop = append(drop, f)
				}
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, bk, "state", raw)
			if len(drop) > 0 {
				p.HDel(ctx, bk, drop...)
			}
			p.Expire(ctx, bk, 90*24*time.Hour)
			return nil
		})
		result = nb
		return err
	}
	var err error
	for range 3 {
		err = s.c.Watch(ctx, txf, bk)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return nil, storeErr("fold baseline", err)
	}
	return result, nil
}
