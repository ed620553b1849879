package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// encodeCases are records that exercise every field and every kind of value
// the hand-written encoder handles itself or hands to encoding/json.
func encodeCases() map[string]*Record {
	yes, no := true, false
	tm := time.Date(2026, 12, 3, 7, 24, 36, 123456789, time.UTC)
	full := &Record{Version: 1, Index: 4711, Time: tm, Type: TypeDecision,
		Subject: "u1", SessionID: "s1", RequestID: "r1", Route: "files", Method: "GET", Host: "files.example.com",
		Path: "/a b/<c>&d", Email: "a<b>@example.com", Name: "Zoë \"Z\" O'Neil", ClientIP: "203.0.113.9",
		UserAgent: "Mozilla/5.0 (X11)\t\x7f", Outcome: OutcomeDeny, Reasons: []string{"not in group", ""},
		Revision: "rev", Status: 403, Bytes: -1, DurationNS: 1234567, MFA: &yes, AMR: []string{"pwd"}, ACR: "gold",
		Rule: "night", Flags: []string{"night"}, Actions: []string{"alert", "step_up"}, Result: "ok", Reason: "why\n",
		Actor: "admin_api", KeyID: "k+1+AA==", Error: "boom\r\n",
		Input: map[string]any{
			"request": map[string]any{
				"method": "GET", "path": "/x", "port": 8443, "query": map[string]any{"q": []any{"1", "2"}},
				"headers": map[string]any{"User-Agent": "curl/8", "X-Empty": "", "Accept": []string{"a", "b"}},
			},
			"user":  map[string]any{"sub": "u1", "groups": []any{"eng", "ops"}, "mfa": true, "roles": []string(nil)},
			"nums":  []any{0.1, 1e21, 1e20, 1e-7, 0.000001, math.Copysign(0, -1), 123456789.0, math.MaxFloat64, 5e-324, -2.5e-10, float64(1 << 53)},
			"ints":  []any{int64(-9), int32(7), uint64(math.MaxUint64), int8(3), uint(4), float32(0.1)},
			"misc":  []any{nil, json.Number("12.50"), map[string]string{"b": "2", "a": "1"}, struct{ A int }{1}, tm, []byte("hi"), []any(nil), map[string]any(nil)},
			"esc":   "\u2028\u2029\x00\x01\x1f\b\f\\\"<>&\xff\xfe日本\U0001F600",
			"":      "empty key",
			"zz<&>": map[string]any{},
		},
		Detail: map[string]any{"records": int64(12), "file": "/etc/gatehouse.yaml", "previous_key_id": "x"},
	}
	sealed := &Record{Version: 1, Index: 0, Time: tm, Type: TypeLogin, Subject: "u1", MFA: &no,
		Sealed: &Sealed{Period: "2026-12", Nonce: []byte{1, 2, 3}, Data: []byte("ciphertext")}}
	return map[string]*Record{
		"minimal":     {Version: 1, Time: tm, Type: TypeAuditStop},
		"zero time":   {Version: 1, Index: 1, Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), Type: TypeAuditStop},
		"whole sec":   {Version: 1, Index: 2, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: TypeAlert, Result: "failed"},
		"full":        full,
		"sealed":      sealed,
		"sealed nils": {Version: 1, Index: 3, Time: tm, Type: TypeLogin, Subject: "u2", Sealed: &Sealed{}},
		"empty maps":  {Version: 1, Index: 5, Time: tm, Type: TypeDecision, Outcome: "allow", Input: map[string]any{}, Detail: map[string]any{}, Reasons: []string{}},
		"deep":        {Version: 1, Index: 6, Time: tm, Type: TypeAlert, Detail: deepMap(maxEncodeDepth + 10)},
	}
}

func deepMap(n int) map[string]any {
	m := map[string]any{"leaf": []any{1.5, "x"}}
	for i := range n {
		if i%2 == 0 {
			m = map[string]any{"d": m, "n": i}
		} else {
			m = map[string]any{"l": []any{m, "x"}}
		}
	}
	return m
}

func TestEncodeMatchesJSON(t *testing.T) {
	for name, r := range encodeCases() {
		t.Run(name, func(t *testing.T) {
			want, err := encodeJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encode(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from encoding/json\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestEncodeRefusesWhatJSONRefuses(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tm := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for name, r := range map[string]*Record{
		"nan":      {Type: TypeAlert, Time: tm, Detail: map[string]any{"x": math.NaN()}},
		"inf":      {Type: TypeAlert, Time: tm, Input: map[string]any{"x": []any{math.Inf(-1)}}},
		"chan":     {Type: TypeAlert, Time: tm, Detail: map[string]any{"x": make(chan int)}},
		"cycle":    {Type: TypeAlert, Time: tm, Detail: cyclic},
		"bad num":  {Type: TypeAlert, Time: tm, Detail: map[string]any{"x": json.Number("1x")}},
		"year 1e4": {Type: TypeAlert, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year -1":  {Type: TypeAlert, Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := encodeJSON(r); err == nil {
			t.Fatalf("%s: encoding/json accepts it; the case is wrong", name)
		}
		if b, err := encode(r); err == nil {
			t.Errorf("%s: encode accepted it: %s", name, b)
		}
	}
}

// TestEncodeV1Golden: the lines of testdata/v1-lines.jsonl (version-1
// records as encoding/json wrote them before the hand-written encoder)
// parse and re-encode to the same bytes, so old and new logs are one format.
func TestEncodeV1Golden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "v1-lines.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) < 5 {
		t.Fatalf("only %d golden lines", len(lines))
	}
	for i, line := range lines {
		r, err := ParseRecord(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		got, err := encode(r)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !bytes.Equal(got, line) {
			t.Errorf("line %d re-encodes differently\n got %s\nwant %s", i+1, got, line)
		}
	}
}

// TestWriterLinesAreJSONEncoding: what Append stores (prefix, body and
// sealed suffix assembled under the lock) is exactly the encoding/json form
// of the record appended (plain log) or of the record it parses back to
// (sealed log, whose personal fields open again to the originals).
func TestWriterLinesAreJSONEncoding(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, sealed := range []bool{false, true} {
		dir := t.TempDir()
		k := testKey(t, "enc")
		l := openTest(t, dir, k, func(o *Options) {
			if sealed {
				o.EncryptionKey = key
			}
		})
		want := map[int64][]byte{}
		orig := map[int64]Record{}
		for name, c := range encodeCases() {
			if c.Input != nil {
				c.Input["esc"] = "\u2028\x00\x1f\b\"<>&日本" // valid UTF-8: survives a parse
			}
			r := *c
			r.Time = time.Time{}
			if _, err := l.Append(context.Background(), &r); err != nil {
				t.Fatalf("append %s: %v", name, err)
			}
			enc, err := encodeJSON(&r)
			if err != nil {
				t.Fatal(err)
			}
			want[r.Index], orig[r.Index] = enc, r
		}
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		ring, err := NewKeyring(dir, key)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range segPaths(t, dir) {
			for _, line := range readLines(t, p) {
				line = bytes.TrimSuffix(line, []byte("\n"))
				r, err := ParseRecord(line)
				if err != nil {
					t.Fatal(err)
				}
				exp, ok := want[r.Index]
				if sealed || !ok {
					if exp, err = encodeJSON(r); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(line, exp) {
					t.Fatalf("stored line is not the JSON encoding of its record\n got %s\nwant %s", line, exp)
				}
				if o, ok := orig[r.Index]; ok && sealed && o.Email != "" {
					if r.Sealed == nil || r.Email != "" {
						t.Fatalf("sealed log stored personal fields in clear: %s", line)
					}
					if err := ring.Unseal(r); err != nil || r.Email != o.Email || r.UserAgent != o.UserAgent || r.Input["esc"] != o.Input["esc"] {
						t.Fatalf("unseal record %d: %v %+v", r.Index, err, r)
					}
				}
				n++
			}
		}
		if exp := len(encodeCases()) + 2; n != exp {
			t.Fatalf("sealed=%v: %d lines, want %d", sealed, n, exp)
		}
		if sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}}); err != nil || sum.Records != int64(n) {
			t.Fatalf("verify: %+v %v", sum, err)
		}
	}
}

// FuzzEncode compares the hand-written encoder with encoding/json on
// arbitrary strings and arbitrary JSON documents as input and detail.
func FuzzEncode(f *testing.F) {
	f.Add("u1", "/p?q=<x>", `{"request":{"headers":{"A":["b"]},"port":443}}`, int64(3), false)
	f.Add("\xff\u2028", "\x00", `[1e21,1e-7,0.1,-0,null,true,"\ud800"]`, int64(0), true)
	f.Add("", "", `{"a":{"b":{"c":[{},[],""]}}}`, int64(-1), true)
	f.Fuzz(func(t *testing.T, sub, path, doc string, n int64, useNumber bool) {
		dec := json.NewDecoder(strings.NewReader(doc))
		if useNumber {
			dec.UseNumber()
		}
		var v any
		if dec.Decode(&v) != nil {
			v = doc
		}
		r := &Record{Version: 1, Index: n, Time: time.Unix(n, n).UTC(), Type: TypeDecision, Subject: sub, Path: path,
			Reasons: []string{sub, path}, Status: int(n), Input: map[string]any{"doc": v, sub: path}, Detail: map[string]any{path: v}}
		want, werr := encodeJSON(r)
		got, gerr := encode(r)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json err %v, encode err %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("differs\n got %s\nwant %s", got, want)
		}
	})
}
