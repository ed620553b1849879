package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jsonenc"
)

// The record encoder. A stored line must be byte-for-byte what
// encoding/json (HTML escaping off) makes of the Record, because that is the
// format of version 1 and what every existing log holds; this hand-written
// encoder produces exactly those bytes without reflection (TestEncodeMatchesJSON
// and FuzzEncode compare it with encoding/json, testdata/v1-lines.jsonl holds
// lines of the format that must re-encode identically). Values of the
// map-valued fields (Input, Detail) whose types it does not know, and
// anything nested deeper than maxEncodeDepth, are handed to encoding/json,
// which keeps the bytes identical and reports unsupported values and cycles.
// A record's InputJSON (the input document encoded by its producer, exactly
// as encoding/json encodes the map) is copied verbatim at Input's place.
//
// A line is split in three so that Append can encode outside the log's
// lock:
//
//	{"v":1,"index":7,"time":"…"   prefix: needs the index and time (under the lock)
//	,"type":"decision",…           body: every other field up to detail (outside the lock)
//	,"sealed":{…}}                 sealed suffix (needs the index: under the lock) and the closing brace

// maxEncodeDepth is the nesting depth beyond which values are left to
// encoding/json (which detects cycles).
const maxEncodeDepth = 64

// appendPrefix appends `{"v":V,"index":I,"time":"T"`. t must be UTC with a
// year in [0, 9999] (checkTime).
func appendPrefix(b []byte, version int, index int64, t time.Time) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, index, 10)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// checkTime refuses times that time.Time.MarshalJSON refuses.
func checkTime(t time.Time) error {
	if y := t.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("encode audit record: time %v: year outside of range [0,9999]", t)
	}
	return nil
}

// appendBody appends the fields from "type" to "detail" (without "sealed"
// and the closing brace).
func appendBody(b []byte, r *Record) ([]byte, error) {
	b = append(b, `,"type":`...)
	b = jsonenc.AppendString(b, string(r.Type))
	b = appendStringField(b, `,"sub":`, r.Subject)
	b = appendStringField(b, `,"session_id":`, r.SessionID)
	b = appendStringField(b, `,"request_id":`, r.RequestID)
	b = appendStringField(b, `,"route":`, r.Route)
	b = appendStringField(b, `,"method":`, r.Method)
	b = appendStringField(b, `,"host":`, r.Host)
	b = appendStringField(b, `,"path":`, r.Path)
	b = appendStringField(b, `,"email":`, r.Email)
	b = appendStringField(b, `,"name":`, r.Name)
	b = appendStringField(b, `,"client_ip":`, r.ClientIP)
	b = appendStringField(b, `,"user_agent":`, r.UserAgent)
	var err error
	switch {
	case len(r.InputJSON) > len("{}"): // already encoded (Validate: an object)
		b = append(append(b, `,"input":`...), r.InputJSON...)
	case len(r.Input) > 0:
		b = append(b, `,"input":`...)
		if b, err = appendMap(b, r.Input, 1); err != nil {
			return nil, err
		}
	}
	b = appendStringField(b, `,"outcome":`, r.Outcome)
	b = appendStringsField(b, `,"reasons":`, r.Reasons)
	b = appendStringField(b, `,"revision":`, r.Revision)
	b = appendIntField(b, `,"status":`, int64(r.Status))
	b = appendIntField(b, `,"bytes":`, r.Bytes)
	b = appendIntField(b, `,"duration_ns":`, r.DurationNS)
	if r.MFA != nil {
		b = append(b, `,"mfa":`...)
		b = strconv.AppendBool(b, *r.MFA)
	}
	b = appendStringsField(b, `,"amr":`, r.AMR)
	b = appendStringField(b, `,"acr":`, r.ACR)
	b = appendStringField(b, `,"rule":`, r.Rule)
	b = appendStringsField(b, `,"flags":`, r.Flags)
	b = appendStringsField(b, `,"actions":`, r.Actions)
	b = appendStringField(b, `,"result":`, r.Result)
	b = appendStringField(b, `,"reason":`, r.Reason)
	b = appendStringField(b, `,"actor":`, r.Actor)
	b = appendStringField(b, `,"key_id":`, r.KeyID)
	b = appendStringField(b, `,"error":`, r.Error)
	if len(r.Detail) > 0 {
		b = append(b, `,"detail":`...)
		if b, err = appendMap(b, r.Detail, 1); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendSealed appends `,"sealed":{...}` when s is set.
func appendSealed(b []byte, s *Sealed) []byte {
	if s == nil {
		return b
	}
	b = append(b, `,"sealed":{"period":`...)
	b = jsonenc.AppendString(b, s.Period)
	b = append(b, `,"nonce":`...)
	b = appendBytes(b, s.Nonce)
	b = append(b, `,"data":`...)
	b = appendBytes(b, s.Data)
	return append(b, '}')
}

// encode renders the record as one JSON line without the trailing newline,
// exactly as encoding/json with HTML escaping off would.
func encode(r *Record) ([]byte, error) {
	t := r.Time
	if err := checkTime(t); err != nil {
		return nil, err
	}
	b := appendPrefix(make([]byte, 0, 512), r.Version, r.Index, t)
	b, err := appendBody(b, r)
	if err != nil {
		return nil, err
	}
	b = appendSealed(b, r.Sealed)
	return append(b, '}'), nil
}

// encodeJSON is the reference encoding (encoding/json, HTML escaping off)
// that encode reproduces; the tests compare the two.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	line := b.Bytes()
	return line[:len(line)-1], nil
}

func appendStringField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return jsonenc.AppendString(append(b, name...), s)
}

func appendIntField(b []byte, name string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, name...), n, 10)
}

func appendStringsField(b []byte, name string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	return appendStrings(append(b, name...), ss)
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	return jsonenc.AppendStrings(b, ss)
}

func appendBytes(b []byte, p []byte) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, '"')
}

// appendMap encodes a map with its keys sorted, as encoding/json does.
func appendMap(b []byte, m map[string]any, depth int) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	if depth > maxEncodeDepth {
		return appendFallback(b, m)
	}
	kp := keysPool.Get().(*[]string)
	keys := (*kp)[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, k)
		b = append(b, ':')
		if b, err = appendValue(b, m[k], depth+1); err != nil {
			break
		}
	}
	clear(keys)
	*kp = keys
	keysPool.Put(kp)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

var keysPool = sync.Pool{New: func() any { s := make([]string, 0, 16); return &s }}

// appendValue encodes the JSON-shaped values maps usually hold; any other
// type goes to encoding/json.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return jsonenc.AppendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return appendFallback(b, v) // the error encoding/json gives
		}
		return appendFloat64(b, v), nil
	case map[string]any:
		return appendMap(b, v, depth)
	case []any:
		if v == nil {
			return append(b, "null"...), nil
		}
		if depth > maxEncodeDepth {
			return appendFallback(b, v)
		}
		b = append(b, '[')
		var err error
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []string:
		return appendStrings(b, v), nil
	}
	return appendFallback(b, v)
}

// appendFloat64 formats f like encoding/json (ES6 number formatting).
func appendFloat64(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 -> e-9
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

func appendFallback(b []byte, v any) ([]byte, error) {
	enc, err := encodeJSON(v)
	if err != nil {
		return nil, fmt.Errorf("encode audit record: %w", err)
	}
	return append(b, enc...), nil
}

// bodyPool recycles body buffers of Append.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooledBody = 64 << 10
