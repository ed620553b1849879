package policy

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// memo.go is the decision memo: per revision, verdicts keyed by the exact
// values of the input paths the revision can read (see deps.go and the
// package doc for why this is sound).

// DefaultMemoSize bounds the decision memo of one revision (entries).
const DefaultMemoSize = 10000

// maxKeyBytes: inputs whose key is longer are judged without the memo
// (bounds the memo's memory to about DefaultMemoSize × maxKeyBytes).
const maxKeyBytes = 4096

const memoShards = 8

// keyFn appends the canonical encoding of one input path's value to b.
// Every encoding is self-delimiting, so concatenations are injective.
type keyFn func(in *Input, b []byte) []byte

// memo maps key bytes to verdicts. Go's map compares whole keys, so two
// inputs share an entry only when their encodings are byte-for-byte equal.
type memo struct {
	readers  []keyFn
	perShard int
	seed     maphash.Seed
	shards   [memoShards]memoShard
}

type memoShard struct {
	mu sync.RWMutex
	m  map[string]verdict
	_  [40]byte // keep shards on separate cache lines
}

func newMemo(paths [][]string, size int) *memo {
	m := &memo{perShard: max(1, size/memoShards), seed: maphash.MakeSeed()}
	for _, p := range paths {
		if r := inputSchema.reader(p); r != nil {
			m.readers = append(m.readers, r)
		}
	}
	for i := range m.shards {
		m.shards[i].m = make(map[string]verdict)
	}
	return m
}

// key encodes in's values at the dependency paths; false when too long.
func (m *memo) key(in *Input, b []byte) ([]byte, bool) {
	for _, r := range m.readers {
		b = r(in, b)
		if len(b) > maxKeyBytes {
			return b, false
		}
	}
	return b, true
}

func (m *memo) shard(key []byte) *memoShard {
	return &m.shards[maphash.Bytes(m.seed, key)%memoShards]
}

func (m *memo) get(key []byte) (verdict, bool) {
	sh := m.shard(key)
	sh.mu.RLock()
	v, ok := sh.m[string(key)] // no allocation: the compiler converts in place
	sh.mu.RUnlock()
	return v, ok
}

func (m *memo) put(key []byte, v verdict) {
	v.deny = slices.Clone(v.deny)
	sh := m.shard(key)
	sh.mu.Lock()
	if _, ok := sh.m[string(key)]; !ok && len(sh.m) >= m.perShard {
		for k := range sh.m { // map iteration starts at random: random eviction
			delete(sh.m, k)
			break
		}
	}
	sh.m[string(key)] = v
	sh.mu.Unlock()
}

func (m *memo) len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

var keyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// memoResult says how a typed decision was reached.
type memoResult int

const (
	memoNone memoResult = iota // the revision has no memo (or the key was too long)
	memoHit
	memoMiss
)

// decideTyped judges a typed input, through the revision's memo when it
// has one. *v caches in.Value() so that a shadow set can reuse it; it is
// only built when an evaluation needs it.
func (s *Set) decideTyped(ctx context.Context, in *Input, v *ast.Value) (Decision, memoResult, error) {
	mfa, routeMFA := in.Session.MFA, in.mfaDemanded()
	if s.memo == nil {
		if *v == nil {
			*v = in.Value()
		}
		d, err := s.decide(ctx, *v, mfa, routeMFA)
		return d, memoNone, err
	}
	start := time.Now()
	bp := keyPool.Get().(*[]byte)
	defer keyPool.Put(bp)
	key, ok := s.memo.key(in, (*bp)[:0])
	*bp = key[:0]
	res := memoNone
	if ok {
		if vd, hit := s.memo.get(key); hit {
			vd.deny = slices.Clone(vd.deny) // the caller may keep or change it
			d := vd.decision(mfa, routeMFA)
			d.Revision, d.Duration = s.revision, time.Since(start)
			return d, memoHit, nil
		}
		res = memoMiss
	}
	if *v == nil {
		*v = in.Value()
	}
	vd, d, err := s.eval(ctx, *v)
	if err == nil {
		// Only verdicts are kept: failures (timeouts, errors) are judged
		// again next time.
		if ok {
			s.memo.put(key, vd)
		}
		d = vd.decision(mfa, routeMFA)
	}
	d.Revision, d.Duration = s.revision, time.Since(start)
	return d, res, err
}

// Memo describes a revision's decision memo.
type Memo struct {
	// Enabled: the revision memoises decisions.
	Enabled bool
	// Off says why it does not (the policy reads the whole input, uses a
	// non-deterministic builtin, ...), or "disabled" by the options.
	Off string
	// Paths are the input paths the revision can read, which key the memo.
	Paths []string
	// Entries is the memo's current size.
	Entries int
}

// Memo describes the set's decision memo.
func (s *Set) Memo() Memo {
	out := Memo{Enabled: s.memo != nil, Off: s.deps.off}
	for _, p := range s.deps.paths {
		out.Paths = append(out.Paths, pathString(p))
	}
	if s.memo != nil {
		out.Entries = s.memo.len()
	} else if out.Off == "" {
		out.Off = "disabled"
	}
	return out
}

// MemoStats counts an engine's typed decisions by how they were reached.
type MemoStats struct {
	Hits, Misses uint64 // through the memo
	Uncached     uint64 // the revision has no memo, or the key was too long
	Entries      int    // current memo size of the serving revision
}

type memoCounters struct{ hits, misses, none atomic.Uint64 }

func (c *memoCounters) count(r memoResult) {
	switch r {
	case memoHit:
		c.hits.Add(1)
	case memoMiss:
		c.misses.Add(1)
	default:
		c.none.Add(1)
	}
}

// Canonical encodings, each self-delimiting.

func encStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encInt(b []byte, n int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(n)) }

func encBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// encStrs: nil and empty are the same document ([]).
func encStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = encStr(b, s)
	}
	return b
}

// The maps' keys are sorted in a stack buffer (keyBuf): a memo hit
// allocates nothing for the usual number of headers or query parameters.

func encStrMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	var buf keyBuf
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = encStr(encStr(b, k), m[k])
	}
	return b
}

func encStrsMap(b []byte, m map[string][]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	var buf keyBuf
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = encStrs(encStr(b, k), m[k])
	}
	return b
}

// schemaNode mirrors one node of the input document ([Input.Value]).
type schemaNode struct {
	name     string
	enc      keyFn                                        // the whole value
	children []schemaNode                                 // objects
	at       func(in *Input, key string, b []byte) []byte // string-keyed maps: one member, present or not
}

func obj(name string, children ...schemaNode) schemaNode {
	n := schemaNode{name: name, children: children}
	n.enc = func(in *Input, b []byte) []byte {
		for _, c := range n.children {
			b = c.enc(in, b)
		}
		return b
	}
	return n
}

func strField(name string, get func(*Input) string) schemaNode {
	return schemaNode{name: name, enc: func(in *Input, b []byte) []byte { return encStr(b, get(in)) }}
}

func intField(name string, get func(*Input) int64) schemaNode {
	return schemaNode{name: name, enc: func(in *Input, b []byte) []byte { return encInt(b, get(in)) }}
}

func boolField(name string, get func(*Input) bool) schemaNode {
	return schemaNode{name: name, enc: func(in *Input, b []byte) []byte { return encBool(b, get(in)) }}
}

func strsField(name string, get func(*Input) []string) schemaNode {
	return schemaNode{name: name, enc: func(in *Input, b []byte) []byte { return encStrs(b, get(in)) }}
}

// inputSchema is the shape of [Input.Value]; schema_test-style drift is
// caught by TestMemoSchemaMatchesValue.
var inputSchema = obj("input",
	obj("request",
		strField("id", func(in *Input) string { return in.Request.ID }),
		strField("method", func(in *Input) string { return in.Request.Method }),
		strField("host", func(in *Input) string { return in.Request.Host }),
		strField("path", func(in *Input) string { return in.Request.Path }),
		schemaNode{name: "query",
			enc: func(in *Input, b []byte) []byte { return encStrsMap(b, in.Request.Query) },
			at: func(in *Input, k string, b []byte) []byte {
				vs, ok := in.Request.Query[k]
				if !ok {
					return append(b, 0)
				}
				return encStrs(append(b, 1), vs)
			}},
		schemaNode{name: "headers",
			enc: func(in *Input, b []byte) []byte { return encStrMap(b, in.Request.Headers) },
			at: func(in *Input, k string, b []byte) []byte {
				v, ok := in.Request.Headers[k]
				if !ok {
					return append(b, 0)
				}
				return encStr(append(b, 1), v)
			}},
		strField("remote_ip", func(in *Input) string { return in.Request.RemoteIP }),
	),
	obj("user",
		strField("sub", func(in *Input) string { return in.User.Sub }),
		strField("email", func(in *Input) string { return in.User.Email }),
		strField("name", func(in *Input) string { return in.User.Name }),
		strsField("groups", func(in *Input) []string { return in.User.Groups }),
		strsField("roles", func(in *Input) []string { return in.User.Roles }),
	),
	obj("session",
		boolField("mfa", func(in *Input) bool { return in.Session.MFA }),
		strsField("amr", func(in *Input) []string { return in.Session.AMR }),
		strField("acr", func(in *Input) string { return in.Session.ACR }),
		intField("auth_time", func(in *Input) int64 { return in.Session.AuthTime }),
		intField("auth_age_seconds", func(in *Input) int64 { return in.Session.AuthAgeSeconds }),
	),
	obj("route",
		strField("name", func(in *Input) string { return in.Route.Name }),
		strField("host", func(in *Input) string { return in.Route.Host }),
		boolField("public", func(in *Input) bool { return in.Route.Public }),
		strField("mfa", func(in *Input) string { return in.Route.MFA }),
	),
	obj("time",
		intField("unix", func(in *Input) int64 { return in.Time.Unix }),
		strField("timezone", func(in *Input) string { return in.Time.Timezone }),
		intField("hour", func(in *Input) int64 { return int64(in.Time.Hour) }),
		strField("weekday", func(in *Input) string { return in.Time.Weekday }),
		boolField("night", func(in *Input) bool { return in.Time.Night }),
	),
	obj("risk",
		strsField("flags", func(in *Input) []string { return in.Risk.Flags }),
		intField("requests_1h", func(in *Input) int64 { return in.Risk.Requests1h }),
		intField("downloads_1h", func(in *Input) int64 { return in.Risk.Downloads1h }),
		intField("bytes_1h", func(in *Input) int64 { return in.Risk.Bytes1h }),
		boolField("blocked", func(in *Input) bool { return in.Risk.Blocked }),
		boolField("step_up", func(in *Input) bool { return in.Risk.StepUp }),
		strField("reason", func(in *Input) string { return in.Risk.Reason }),
	),
)

// reader returns the key function of the value at path below n, or nil
// when that value is the same for every input (a field the document does
// not have, or a string key below a string or an array: always undefined).
func (n *schemaNode) reader(path []string) keyFn {
	if len(path) == 0 {
		return n.enc
	}
	switch {
	case n.children != nil:
		for i := range n.children {
			if n.children[i].name == path[0] {
				return n.children[i].reader(path[1:])
			}
		}
		return nil
	case n.at != nil && len(path) == 1:
		at, k := n.at, path[0]
		return func(in *Input, b []byte) []byte { return at(in, k, b) }
	default:
		return nil
	}
}

// alwaysDefined reports whether every input has a value at path: it names
// only objects and fields of the document, no map member.
func (n *schemaNode) alwaysDefined(path []string) bool {
	cur := n
	for _, seg := range path {
		var next *schemaNode
		for i := range cur.children {
			if cur.children[i].name == seg {
				next = &cur.children[i]
				break
			}
		}
		if next == nil {
			return false
		}
		cur = next
	}
	return true
}

// clip cuts path after a map member (query["a"]["b"] → query["a"]): what
// lies below a member is read through the member's value, which the key
// then holds whole. (Often it is undefined anyway; clipping only ever adds
// to the key.)
func (n *schemaNode) clip(path []string) []string {
	cur := n
	for i, seg := range path {
		if cur.at != nil {
			return path[:i+1]
		}
		var next *schemaNode
		for j := range cur.children {
			if cur.children[j].name == seg {
				next = &cur.children[j]
				break
			}
		}
		if next == nil {
			return path
		}
		cur = next
	}
	return path
}
