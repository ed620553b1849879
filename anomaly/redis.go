package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the state in Redis so that replicas share counters,
// baselines and blocks. Keys (under Prefix, default "gatehouse:anomaly:"):
//
//	c:{KEY}:SECONDS  hash "BUCKET:r|b|d" -> count, "t:r|b|d" -> window total,
//	                 "head" -> newest bucket; one per key and window
//	p:{KEY}          sorted set path -> last-seen unix ms
//	b:{KEY}          hash "state" -> Baseline JSON, "PERIOD:r|b|d" -> counts
//	m:NAME           string marker (block, step-up, fired rule), with a TTL
//	m:gen:markers    counter incremented on every change of a block or
//	                 step-up marker (MarkerGeneration), without a TTL
//
// The braces are cluster hash tags: one subject's keys share a slot.
// One Lua script call per counter key (keyScript) counts and reads every
// window, the distinct paths and the baseline hour, keeping running window
// totals so reading is O(1); AddBatch sends a whole flush of the
// detector's buffer (every key it counted) in one pipelined round trip.
//
// Every call is bounded by its context (the detector gives StoreTimeout).
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
	loaded atomic.Bool // keyScript is known to Redis
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

// keyScript counts (or, with zero increments, only reads) one counter key:
// all its windows, its distinct paths and, for the user key, the current
// hour of its baseline, in one call. It returns {r, b, d, paths} per window.
//
// KEYS: paths zset, one counter hash per window, [baseline hash].
// ARGV: windows, buckets per window, requests, bytes, downloads, now ms,
// number of paths, oldest path score kept, baseline period ("" none), then
// per window: current bucket, TTL ms, "(" lowest path score in the window;
// then the paths. Requests may be more than one: a flush of the detector's
// buffer adds everything one key saw in one call.
//
// A window hash holds its buckets ("BUCKET:r|b|d"), running totals
// ("t:r|b|d") and "head", the newest bucket: buckets leaving the window are
// subtracted and deleted as time moves on, so reading is O(1).
var keyScript = redis.NewScript(`
local nw, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local ir, ib, id = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local nowms, np, oldest, period = ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
local add = ir > 0
local pk = KEYS[1]
if add and np > 0 then
  for i = 10 + 3 * nw, 9 + 3 * nw + np do
    redis.call('ZADD', pk, nowms, ARGV[i])
  end
  redis.call('ZREMRANGEBYSCORE', pk, '-inf', '(' .. oldest)
  redis.call('PEXPIRE', pk, tonumber(nowms) - tonumber(oldest) + 60000)
end
local out = {}
for w = 1, nw do
  local k = KEYS[1 + w]
  local a = 9 + (w - 1) * 3
  local cur, ttl, low = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  local h = redis.call('HGET', k, 'head')
  if h then
    local head = tonumber(h)
    if cur > head then
      if cur - n >= head then
        redis.call('DEL', k)
      else
        local tr, tb, td = 0, 0, 0
        for i = head - n + 1, cur - n do
          local f = string.format('%d', i)
          local v = redis.call('HMGET', k, f .. ':r', f .. ':b', f .. ':d')
          tr = tr + (tonumber(v[1]) or 0)
          tb = tb + (tonumber(v[2]) or 0)
          td = td + (tonumber(v[3]) or 0)
          redis.call('HDEL', k, f .. ':r', f .. ':b', f .. ':d')
        end
        if tr ~= 0 then redis.call('HINCRBY', k, 't:r', -tr) end
        if tb ~= 0 then redis.call('HINCRBY', k, 't:b', -tb) end
        if td ~= 0 then redis.call('HINCRBY', k, 't:d', -td) end
        redis.call('HSET', k, 'head', string.format('%d', cur))
      end
    elseif cur <= head - n then
      cur = head -- a clock far behind: count into the newest bucket
    end
  end
  if add then
    local f = string.format('%d', cur)
    if not h or cur > tonumber(h) then redis.call('HSET', k, 'head', f) end
    redis.call('HINCRBY', k, f .. ':r', ir)
    redis.call('HINCRBY', k, 't:r', ir)
    if ib > 0 then redis.call('HINCRBY', k, f .. ':b', ib); redis.call('HINCRBY', k, 't:b', ib) end
    if id > 0 then redis.call('HINCRBY', k, f .. ':d', id); redis.call('HINCRBY', k, 't:d', id) end
    redis.call('PEXPIRE', k, ttl)
  end
  local t = redis.call('HMGET', k, 't:r', 't:b', 't:d')
  out[#out + 1] = tonumber(t[1]) or 0
  out[#out + 1] = tonumber(t[2]) or 0
  out[#out + 1] = tonumber(t[3]) or 0
  out[#out + 1] = redis.call('ZCOUNT', pk, low, '+inf')
end
if add and period ~= '' then
  local bk = KEYS[2 + nw]
  redis.call('HINCRBY', bk, period .. ':r', ir)
  if ib > 0 then redis.call('HINCRBY', bk, period .. ':b', ib) end
  if id > 0 then redis.call('HINCRBY', bk, period .. ':d', id) end
  redis.call('EXPIRE', bk, 7776000)
end
return out
`)

// baselineTTL is how long an idle user's baseline is kept.
const baselineTTL = 90 * 24 * time.Hour

type keyCmd struct {
	key string
	cmd *redis.Cmd
}

type readCmds struct {
	windows   []time.Duration
	counts    []keyCmd // in execution order: a later call's totals are newer
	markers   map[string]*redis.StringCmd
	baselines map[string]*redis.StringCmd
}

// tallies turns one Increment into one Tally per key (the baseline hour
// going with the user key).
func (inc Increment) tallies() []Tally {
	out := make([]Tally, 0, len(inc.Keys))
	for _, k := range inc.Keys {
		t := Tally{Key: k, Counts: Counts{Requests: 1, Bytes: max(inc.Bytes, 0)}}
		if inc.Download {
			t.Counts.Downloads = 1
		}
		if inc.Path != "" {
			t.Paths = []string{inc.Path}
		}
		if inc.BaselineUser == k {
			t.Baseline, t.Period = true, inc.Period
		}
		out = append(out, t)
	}
	return out
}

// queueKey queues keyScript for one counter key: adding t (when t has
// requests) and reading every window.
func (s *RedisStore) queueKey(ctx context.Context, p redis.Pipeliner, now time.Time, windows []time.Duration, key string, t Tally) *redis.Cmd {
	nowMs := now.UnixMilli()
	oldest := nowMs - maxWindow(windows).Milliseconds()
	keys := make([]string, 0, len(windows)+2)
	keys = append(keys, s.pkey(key))
	for _, w := range windows {
		keys = append(keys, s.ckey(key, w))
	}
	r, b, d := max(t.Counts.Requests, 0), max(t.Counts.Bytes, 0), max(t.Counts.Downloads, 0)
	paths, period := t.Paths, ""
	if r == 0 {
		paths = nil
	}
	if r > 0 && t.Baseline {
		keys = append(keys, s.bkey(key))
		period = strconv.FormatInt(t.Period, 10)
	}
	args := make([]any, 0, 9+3*len(windows)+len(paths))
	args = append(args, len(windows), Buckets, r, b, d, strconv.FormatInt(nowMs, 10), len(paths), strconv.FormatInt(oldest, 10), period)
	for _, w := range windows {
		width := bucketWidth(w)
		args = append(args, now.UnixNano()/int64(width), (w + 2*width).Milliseconds(), "("+strconv.FormatInt(nowMs-w.Milliseconds(), 10))
	}
	for _, path := range paths {
		args = append(args, path)
	}
	return keyScript.EvalSha(ctx, p, keys, args...)
}

// queue queues keyScript for every tally (adding it) and every key of q
// not tallied (reading it), and the marker and baseline reads.
func (s *RedisStore) queue(ctx context.Context, p redis.Pipeliner, now time.Time, tallies []Tally, q Query) readCmds {
	rc := readCmds{windows: q.Windows, markers: map[string]*redis.StringCmd{}, baselines: map[string]*redis.StringCmd{}}
	tallied := map[string]bool{}
	for _, t := range tallies {
		at := t.Time
		if at.IsZero() {
			at = now
		}
		rc.counts = append(rc.counts, keyCmd{t.Key, s.queueKey(ctx, p, at, q.Windows, t.Key, t)})
		tallied[t.Key] = true
	}
	for _, k := range q.Keys {
		if !tallied[k] {
			rc.counts = append(rc.counts, keyCmd{k, s.queueKey(ctx, p, now, q.Windows, k, Tally{})})
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

func (rc readCmds) snapshot() (Snapshot, error) {
	snap := Snapshot{Counts: map[string]map[time.Duration]Counts{}, Markers: map[string][]byte{}, Baselines: map[string]*Baseline{}}
	for _, kc := range rc.counts {
		v, err := kc.cmd.Int64Slice()
		if err != nil || len(v) != 4*len(rc.windows) {
			return snap, storeErr("read counters", errors.Join(err, fmt.Errorf("%d values for %d windows", len(v), len(rc.windows))))
		}
		byW := make(map[time.Duration]Counts, len(rc.windows))
		for i, w := range rc.windows {
			byW[w] = Counts{Requests: v[4*i], Bytes: v[4*i+1], Downloads: v[4*i+2], Paths: v[4*i+3]}
		}
		snap.Counts[kc.key] = byW
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

// Add applies inc and reads q in one pipelined round trip. The increments
// apply to the keys of inc (the detector passes the same keys in q).
func (s *RedisStore) Add(ctx context.Context, now time.Time, inc Increment, q Query) (Snapshot, error) {
	if len(q.Windows) == 0 {
		q.Windows = inc.Windows
	}
	return s.run(ctx, "add", now, inc.tallies(), q)
}

// AddBatch applies every tally (each at its own Time) and reads q, in one
// pipelined round trip: the detector's flusher sends its whole buffer so.
func (s *RedisStore) AddBatch(ctx context.Context, now time.Time, tallies []Tally, q Query) (Snapshot, error) {
	return s.run(ctx, "add batch", now, tallies, q)
}

// Load reads q in one pipelined round trip.
func (s *RedisStore) Load(ctx context.Context, now time.Time, q Query) (Snapshot, error) {
	return s.run(ctx, "load", now, nil, q)
}

func (s *RedisStore) run(ctx context.Context, op string, now time.Time, tallies []Tally, q Query) (Snapshot, error) {
	exec := func() (Snapshot, error) {
		p := s.c.Pipeline()
		rc := s.queue(ctx, p, now, tallies, q)
		if p.Len() == 0 {
			return rc.snapshot()
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return Snapshot{}, storeErr(op, err)
		}
		return rc.snapshot()
	}
	load := func() error {
		if err := keyScript.Load(ctx, s.c).Err(); err != nil {
			return storeErr("load script", err)
		}
		s.loaded.Store(true)
		return nil
	}
	if len(q.Keys)+len(tallies) > 0 && !s.loaded.Load() {
		if err := load(); err != nil {
			return Snapshot{}, err
		}
	}
	snap, err := exec()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis restarted and forgot the script (and the state with it):
		// load it and try once more.
		s.loaded.Store(false)
		if err := load(); err != nil {
			return Snapshot{}, err
		}
		return exec()
	}
	return snap, err
}

// watched reports whether changes to marker name bump MarkerGeneration.
func watched(name string) bool {
	return strings.HasPrefix(name, "block:") || strings.HasPrefix(name, "stepup:")
}

// SetMarker is SET (NX) PX; a block or step-up marker also increments
// MarkerGeneration.
func (s *RedisStore) SetMarker(ctx context.Context, name string, val []byte, ttl time.Duration, onlyNew bool) (bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	if onlyNew {
		ok, err := s.c.SetNX(ctx, s.mkey(name), val, ttl).Result()
		if err != nil {
			return false, storeErr("set marker", err)
		}
		if ok && watched(name) {
			if err := s.c.Incr(ctx, s.mkey(MarkerGeneration)).Err(); err != nil {
				return true, storeErr("bump marker generation", err)
			}
		}
		return ok, nil
	}
	if !watched(name) {
		if err := s.c.Set(ctx, s.mkey(name), val, ttl).Err(); err != nil {
			return false, storeErr("set marker", err)
		}
		return true, nil
	}
	// The generation is bumped after the marker is written: whoever reads
	// the new generation then finds the marker.
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.mkey(name), val, ttl)
		p.Incr(ctx, s.mkey(MarkerGeneration))
		return nil
	})
	if err != nil {
		return false, storeErr("set marker", err)
	}
	return true, nil
}

// longerScript sets KEYS[1] to ARGV[1] for ARGV[2] ms unless it already
// lives at least that long (PTTL; -1, no expiry, counts as for ever). One
// key only, so that it runs on a Redis Cluster too.
var longerScript = redis.NewScript(`
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// SetMarkerLonger compares the time left and sets in one script, then
// bumps the generation of a watched marker it stored (after the write, as
// SetMarker does: whoever reads the new generation finds the marker).
func (s *RedisStore) SetMarkerLonger(ctx context.Context, name string, val []byte, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	n, err := longerScript.Run(ctx, s.c, []string{s.mkey(name)}, val, ttl.Milliseconds()).Int()
	if err != nil {
		return false, storeErr("set marker", err)
	}
	if n == 1 && watched(name) {
		if err := s.c.Incr(ctx, s.mkey(MarkerGeneration)).Err(); err != nil {
			return true, storeErr("bump marker generation", err)
		}
	}
	return n == 1, nil
}

// DeleteMarker is DEL; a block or step-up marker also increments
// MarkerGeneration.
func (s *RedisStore) DeleteMarker(ctx context.Context, name string) (bool, error) {
	if !watched(name) {
		n, err := s.c.Del(ctx, s.mkey(name)).Result()
		if err != nil {
			return false, storeErr("delete marker", err)
		}
		return n > 0, nil
	}
	var del *redis.IntCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, s.mkey(name))
		p.Incr(ctx, s.mkey(MarkerGeneration))
		return nil
	})
	if err != nil {
		return false, storeErr("delete marker", err)
	}
	return del.Val() > 0, nil
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
			p.Expire(ctx, bk, baselineTTL)
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
