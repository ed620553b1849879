package policy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// auditMapJSON is the reference: encoding/json of AuditMap(), HTML
// escaping off, compact, without the newline.
func auditMapJSON(t testing.TB, in Input) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(in.AuditMap()); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func auditJSONCases() map[string]Input {
	cases := schemaInputs()
	cases["zero"] = Input{} // nil maps and slices everywhere
	weird := "\u2028\u2029\x00\x01\x1f\x7f\b\f\n\r\t\\\"<>&\xff\xfe日本\U0001F600\xed\xa0\x80"
	cases["escapes"] = Input{
		Request: RequestInput{ID: weird, Method: "G\"ET", Host: "<h>&", Path: "/a b/\u2028", RemoteIP: "\xff",
			Query: map[string][]string{
				weird: {weird, ""}, "": {}, "page": nil, "Token": {"a", "b"}, "KEY": {}, "x-Amz-Signature": {"s"},
				"\u212Aey": {"kelvin sign lower-cases to key"}, "toKen\x00": {"not a credential"},
				strings.Repeat("K", 40): {"long"}, "sessionID": {"x"},
			},
			Headers: map[string]string{
				weird: weird, "user-agent": "curl/8", "": "", "b": "2", "a": "1", "A": "0",
				"Cookie": "s=1", "set-cookie": "t=2", "x_api_key": "k", "Authorization": "Bearer x",
				"x-auth-token": "t", "proxy-authorization": "Basic x", "x-csrf-token": "c", "cookies": "kept",
			},
		},
		User:    UserInput{Sub: weird, Email: "a<b>@example.com", Name: "Zoë \"Z\"", Groups: []string{"", weird, "eng"}, Roles: []string{}},
		Session: SessionInput{MFA: true, AMR: []string{"pwd", "otp"}, ACR: weird, AuthTime: -1 << 63, AuthAgeSeconds: 1<<63 - 1},
		Route:   RouteInput{Name: weird, Host: "h", Public: true, MFA: "required"},
		Time:    TimeInput{Unix: -5, Timezone: "Asia/Hong_Kong", Hour: 23, Weekday: "Tuesday", Night: true},
		Risk:    RiskInput{Flags: []string{"night", weird}, Requests1h: 1e9, Downloads1h: -3, Bytes1h: 1 << 40, Blocked: true, StepUp: true, Reason: weird},
	}
	many := baseInput()
	many.Request.Query, many.Request.Headers = map[string][]string{}, map[string]string{}
	for i := range 100 { // more keys than the stack buffer holds
		many.Request.Query["q"+strconv.Itoa(i)] = []string{strconv.Itoa(i), "x"}
		many.Request.Headers["h-"+strconv.Itoa(i)] = strconv.Itoa(i)
	}
	cases["many keys"] = many
	return cases
}

func TestAuditJSONMatchesAuditMap(t *testing.T) {
	for name, in := range auditJSONCases() {
		t.Run(name, func(t *testing.T) {
			want := auditMapJSON(t, in)
			got := in.AppendAuditJSON(nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("differs from encoding/json of AuditMap\n got %s\nwant %s", got, want)
			}
			// Appends: what was in b stays.
			if got := in.AppendAuditJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
				t.Fatalf("append to a prefix: %s", got)
			}
		})
	}
}

// The secrets the audit forms leave out, and the ones they keep.
func TestAuditJSONLeavesOutSecrets(t *testing.T) {
	in := auditJSONCases()["escapes"]
	raw := in.AppendAuditJSON(nil)
	var doc struct {
		Request struct {
			Headers map[string]string   `json:"headers"`
			Query   map[string][]string `json:"query"`
		} `json:"request"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for k := range doc.Request.Headers {
		if SecretHeader(k) {
			t.Errorf("secret header %q in the audit input", k)
		}
	}
	for _, k := range []string{"Cookie", "set-cookie", "x_api_key", "Authorization", "x-auth-token", "proxy-authorization", "x-csrf-token"} {
		if _, ok := doc.Request.Headers[k]; ok {
			t.Errorf("header %s kept", k)
		}
	}
	if doc.Request.Headers["cookies"] != "kept" || doc.Request.Headers["user-agent"] != "curl/8" || doc.Request.Headers["A"] != "0" {
		t.Errorf("ordinary headers lost: %v", doc.Request.Headers)
	}
	q := doc.Request.Query
	for _, k := range []string{"Token", "x-Amz-Signature", "\u212Aey", "sessionID"} {
		for _, v := range q[k] {
			if v != Redacted {
				t.Errorf("query %q not redacted: %v", k, q[k])
			}
		}
	}
	if len(q["Token"]) != 2 || q["toKen\x00"][0] != "not a credential" || q[strings.Repeat("K", 40)][0] != "long" {
		t.Errorf("query %v", q)
	}
	if bytes.Contains(raw, []byte("Bearer")) || bytes.Contains(raw, []byte("s=1")) {
		t.Errorf("credential in %s", raw)
	}
	if in.Request.Headers["Cookie"] != "s=1" || in.Request.Query["Token"][0] != "a" {
		t.Error("the policy's view was changed")
	}
}

func TestSecretHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"cookie": true, "Cookie": true, "SET-COOKIE": true, "set_cookie": true, "X_Api_Key": true,
		"authorization": true, "Proxy-Authorization": true, "x-amz-security-token": true, "coo\u212Aie": true,
		"cookies": false, "": false, "user-agent": false, "x-forwarded-for": false, "authorisation": false, "cookie\u00e9": false,
	} {
		if got := SecretHeader(name); got != want {
			t.Errorf("SecretHeader(%q) = %v", name, got)
		}
	}
	// Every credential HeadersFromHTTP drops is secret, and HeadersFromHTTP
	// drops every secret a request can carry (set-cookie is a response
	// header, so the policy may see it, the audit log never).
	for n := range droppedHeaders {
		if strings.HasSuffix(n, "token") || strings.HasSuffix(n, "authorization") || n == "cookie" || n == "x-api-key" {
			if !SecretHeader(n) {
				t.Errorf("dropped credential %s is not a SecretHeader", n)
			}
		}
	}
	for _, n := range secretHeaderNames {
		if !DroppedHeader(n) && n != "set-cookie" {
			t.Errorf("secret %s reaches the policy input", n)
		}
	}
}

// FuzzAuditJSON holds AppendAuditJSON byte-equal to encoding/json of
// AuditMap on arbitrary strings: query keys and values, headers, groups.
func FuzzAuditJSON(f *testing.F) {
	f.Add("u1", "/p?q=<x>&y", "a=1&Token=2&b=\xff&a=3", "user-agent:curl\nCookie:x\nx-a:<&>", "eng,ops,,\u2028", int64(7), true)
	f.Add("\xff\u2028\u2029", "\x00\x1f\x7f", "=&&==&%zz", ":\n:\n\xfe:\xff", ",", int64(-1), false)
	f.Add("", "", "", "", "", int64(0), false)
	f.Fuzz(func(t *testing.T, sub, path, query, headers, groups string, n int64, flag bool) {
		q := map[string][]string{}
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			q[k] = append(q[k], v)
		}
		h := map[string]string{}
		for _, line := range strings.Split(headers, "\n") {
			k, v, _ := strings.Cut(line, ":")
			h[k] = v
		}
		gs := strings.Split(groups, ",")
		in := Input{
			Request: RequestInput{ID: sub + path, Method: path, Host: sub, Path: path, Query: q, Headers: h, RemoteIP: query},
			User:    UserInput{Sub: sub, Email: headers, Name: groups, Groups: gs, Roles: gs[:len(gs)/2]},
			Session: SessionInput{MFA: flag, AMR: gs[len(gs)/2:], ACR: path, AuthTime: n, AuthAgeSeconds: -n},
			Route:   RouteInput{Name: sub, Host: path, Public: !flag, MFA: groups},
			Time:    TimeInput{Unix: n, Timezone: query, Hour: int(n % 24), Weekday: headers, Night: flag},
			Risk:    RiskInput{Flags: gs, Requests1h: n, Downloads1h: n / 3, Bytes1h: n * 7, Blocked: flag, StepUp: flag, Reason: sub},
		}
		if flag { // nil maps and slices render like empty ones
			in.Request.Query, in.User.Roles, in.Risk.Flags = nil, nil, nil
		}
		want := auditMapJSON(t, in)
		if got := in.AppendAuditJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("differs\n got %s\nwant %s", got, want)
		}
	})
}

// The estimate makes the output grow once: exact for plain inputs.
func TestAuditJSONSizeEstimate(t *testing.T) {
	for name, in := range schemaInputs() {
		got := len(in.AppendAuditJSON(nil))
		if est := in.auditJSONSize(); est < got || est > got+200 {
			t.Errorf("%s: estimate %d for %d bytes", name, est, got)
		}
	}
	if raceEnabled {
		return
	}
	in := cookbookInput()
	if a := testing.AllocsPerRun(100, func() { _ = in.AppendAuditJSON(nil) }); a > 1 {
		t.Errorf("AppendAuditJSON: %v allocations, want 1", a)
	}
	buf := make([]byte, 0, 4096)
	if a := testing.AllocsPerRun(100, func() { _ = in.AppendAuditJSON(buf[:0]) }); a != 0 {
		t.Errorf("AppendAuditJSON into a large buffer: %v allocations, want 0", a)
	}
}

// BenchmarkAuditJSON: the audit input bytes encoded directly vs. built as a
// map and encoded by encoding/json (the audit encoder's generic map path
// costs about the same as the latter).
func BenchmarkAuditJSON(b *testing.B) {
	in := cookbookInput()
	in.Request.Headers = HeadersFromHTTP(map[string][]string{
		"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}, "Accept": {"text/html,application/xhtml+xml"},
		"Accept-Language": {"en-US,en;q=0.9"}, "Accept-Encoding": {"gzip, deflate, br"}, "Cookie": {"_gatehouse=abc"},
		"Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Site": {"same-origin"}, "Referer": {"https://files.example.com/"},
	})
	in.Request.Query = map[string][]string{"view": {"1"}, "token": {"s3cret"}}
	in.Time = NewTimeInput(time.Date(2026, 12, 1, 15, 30, 0, 0, time.UTC), nil, false)
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = in.AppendAuditJSON(nil)
		}
	})
	b.Run("auditmap+json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(in.AuditMap()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("auditmap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = in.AuditMap()
		}
	})
}
