package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// withInputJSON returns a copy of r whose Input is given as InputJSON: the
// encoding/json form of the map.
func withInputJSON(t testing.TB, r *Record) *Record {
	t.Helper()
	raw, err := encodeJSON(r.Input)
	if err != nil {
		t.Fatal(err)
	}
	c := *r
	c.Input, c.InputJSON = nil, raw
	return &c
}

// A record with InputJSON encodes to the bytes of the same record with the
// equivalent Input map.
func TestEncodeInputJSONAsInput(t *testing.T) {
	cases := map[string]*Record{"proxy": proxyDecision(), "full": encodeCases()["full"]}
	cases["proxy"].Time = time.Date(2026, 12, 3, 7, 24, 36, 0, time.UTC)
	empty := *cases["proxy"]
	empty.Input = map[string]any{} // omitted, like "{}"
	cases["empty"] = &empty
	for name, r := range cases {
		want, err := encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encode(withInputJSON(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: InputJSON encodes differently\n got %s\nwant %s", name, got, want)
		}
		if name != "empty" && !bytes.Contains(got, []byte(`,"input":{`)) {
			t.Errorf("%s: no input in %s", name, got)
		}
	}
}

func TestValidateInputJSON(t *testing.T) {
	base := func(in map[string]any, raw string) *Record {
		r := &Record{Type: TypeDecision, Outcome: OutcomeAllow, Input: in}
		if raw != "" {
			r.InputJSON = []byte(raw)
		}
		return r
	}
	for name, tc := range map[string]struct {
		r  *Record
		ok bool
	}{
		"map":           {base(map[string]any{"a": 1}, ""), true},
		"raw":           {base(nil, `{"a":1}`), true},
		"empty raw":     {base(nil, `{}`), true},
		"empty map+raw": {base(map[string]any{}, `{"a":1}`), true},
		"both":          {base(map[string]any{"a": 1}, `{"a":1}`), false},
		"array":         {base(nil, `[1]`), false},
		"string":        {base(nil, `"x"`), false},
		"open":          {base(nil, `{`), false},
		"close":         {base(nil, `}`), false},
		"newline":       {base(nil, "{}\n"), false},
		"not an object": {base(nil, `{"a":1} {`), false},
	} {
		err := tc.r.Validate()
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The invariant of the log holds for InputJSON: a record appended with
// InputJSON is stored as the same line as with the equivalent Input map
// (a plain log), and reads back as the same record (plain or sealed);
// every stored line is encoding/json's encoding of the record it parses to.
func TestInputJSONStoredAsInput(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	recs := func(asJSON bool) []*Record {
		var out []*Record
		for i, r := range []*Record{proxyDecision(), decisionRec(1), decisionRec(5)} {
			r.Input["esc"] = "\u2028\x00\x1f\b\"<>&日本" // valid UTF-8: survives a parse
			if i == 1 {
				r.Email, r.ClientIP = "", "" // input the only personal field
			}
			if asJSON {
				r = withInputJSON(t, r)
			}
			out = append(out, r)
		}
		return out
	}
	for _, sealed := range []bool{false, true} {
		k := testKey(t, "inputjson")
		type logged struct {
			lines [][]byte
			recs  []*Record
		}
		var logs [2]logged
		for j, asJSON := range []bool{false, true} {
			dir := t.TempDir()
			l := openTest(t, dir, k, func(o *Options) {
				if sealed {
					o.EncryptionKey = master
				}
			})
			for _, r := range recs(asJSON) {
				in := append([]byte(nil), r.InputJSON...)
				if _, err := l.Append(context.Background(), r); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(in, r.InputJSON) {
					t.Fatal("Append changed the caller's InputJSON")
				}
			}
			if err := l.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, p := range segPaths(t, dir) {
				for _, line := range readLines(t, p) {
					line = bytes.TrimSuffix(line, []byte("\n"))
					r, err := ParseRecord(line)
					if err != nil {
						t.Fatal(err)
					}
					if exp, err := encodeJSON(r); err != nil || !bytes.Equal(line, exp) {
						t.Fatalf("sealed=%v json=%v: stored line is not the JSON encoding of its record\n got %s\nwant %s", sealed, asJSON, line, exp)
					}
					if r.Type == TypeDecision {
						logs[j].lines = append(logs[j].lines, line)
						if sealed && (r.Sealed == nil || bytes.Contains(line, []byte(`"input"`))) {
							t.Fatalf("input stored in clear: %s", line)
						}
					}
				}
			}
			ring, err := NewKeyring(dir, master)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range readAll(t, dir, ring) {
				if r.Type == TypeDecision {
					if r.Input == nil || r.InputJSON != nil || r.Sealed != nil {
						t.Fatalf("sealed=%v json=%v: read back %+v", sealed, asJSON, r)
					}
					logs[j].recs = append(logs[j].recs, r)
				}
			}
		}
		if len(logs[0].recs) != 3 || !reflect.DeepEqual(logs[0].recs, logs[1].recs) {
			t.Fatalf("sealed=%v: records read back differ\n map %+v\njson %+v", sealed, logs[0].recs, logs[1].recs)
		}
		if !sealed && !reflect.DeepEqual(logs[0].lines, logs[1].lines) {
			t.Fatalf("stored lines differ\n map %s\njson %s", logs[0].lines, logs[1].lines)
		}
		if got := logs[1].recs[0].Input["esc"]; got != "\u2028\x00\x1f\b\"<>&日本" {
			t.Fatalf("sealed=%v: input read back %q", sealed, got)
		}
	}
}

// Sealed records written before InputJSON (personal fields by
// json.Marshal, HTML escaped, input as a map) unseal as they did.
func TestUnsealOldPersonalFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := newSealer(dir, testMaster)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"request": map[string]any{"path": "/<a>&b", "n": 1.5}, "user": map[string]any{"groups": []any{"x"}}}
	old, err := json.Marshal(struct {
		Email string         `json:"email,omitempty"`
		Input map[string]any `json:"input,omitempty"`
	}{"a<b>@example.com", in})
	if err != nil || !bytes.Contains(old, []byte(`\u003c`)) {
		t.Fatalf("old form %s %v", old, err)
	}
	tm := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for name, plain := range map[string][]byte{"old": old} {
		sd, err := s.seal(plain, 9, tm)
		if err != nil {
			t.Fatal(err)
		}
		r := &Record{Index: 9, Time: tm, Type: TypeDecision, Sealed: sd}
		if err := s.ring.Unseal(r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Email != "a<b>@example.com" || !reflect.DeepEqual(r.Input, in) || r.Sealed != nil {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	// And the new plaintext of the same fields opens to the same record.
	for _, r := range []*Record{{Email: "a<b>@example.com", Input: in}, withInputJSON(t, &Record{Email: "a<b>@example.com", Input: in})} {
		plain, err := s.plaintext(r)
		if err != nil || r.Email != "" || r.Input != nil || r.InputJSON != nil {
			t.Fatalf("plaintext %s %v %+v", plain, err, r)
		}
		sd, _ := s.seal(plain, 9, tm)
		got := &Record{Index: 9, Sealed: sd}
		if err := s.ring.Unseal(got); err != nil || got.Email != "a<b>@example.com" || !reflect.DeepEqual(got.Input, in) {
			t.Fatalf("new form %s: %v %+v", plain, err, got)
		}
	}
}

// FuzzEncodeInputJSON: any JSON object given as InputJSON (as encoding/json
// encodes it) is stored exactly as the decoded map would be.
func FuzzEncodeInputJSON(f *testing.F) {
	f.Add(`{"request":{"headers":{"a":"<&>"},"query":{"q":["1","\u2028"]}},"n":1e21}`, true)
	f.Add(`{"":{},"b":[],"a":null,"c":"\ud800\u0000"}`, false)
	f.Add(`{}`, false)
	f.Fuzz(func(t *testing.T, doc string, useNumber bool) {
		dec := json.NewDecoder(strings.NewReader(doc))
		if useNumber {
			dec.UseNumber()
		}
		var m map[string]any
		if dec.Decode(&m) != nil || m == nil {
			return
		}
		r := &Record{Version: 1, Type: TypeDecision, Outcome: OutcomeAllow, Subject: "u", Input: m}
		want, err := encode(r)
		if err != nil {
			return // encoding/json refuses it too (TestEncodeRefusesWhatJSONRefuses)
		}
		rj := withInputJSON(t, r)
		if err := rj.Validate(); err != nil {
			t.Fatal(err)
		}
		got, err := encode(rj)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v\n got %s\nwant %s", err, got, want)
		}
	})
}

// BenchmarkAppendInput appends a proxy-shaped decision record whose input
// is a map (encoded by the generic map encoder, keys sorted per record) or
// already encoded (InputJSON, what the proxy now gives), to a plain and to
// an encrypted log.
func BenchmarkAppendInput(b *testing.B) {
	for _, sealed := range []bool{false, true} {
		for _, asJSON := range []bool{false, true} {
			name := map[bool]string{false: "map", true: "json"}[asJSON] + map[bool]string{false: "/plain", true: "/sealed"}[sealed]
			b.Run(name, func(b *testing.B) {
				l := openTest(b, b.TempDir(), testKey(b, "bench"), func(o *Options) {
					o.Durability, o.SegmentSize, o.Clock = DurabilityBatch, DefaultSegmentSize, time.Now
					if sealed {
						o.EncryptionKey = testMaster
					}
				})
				defer l.Close(context.Background())
				rec := proxyDecision()
				if asJSON {
					rec = withInputJSON(b, rec)
				}
				b.ReportAllocs()
				for b.Loop() {
					r := *rec
					if _, err := l.Append(context.Background(), &r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
