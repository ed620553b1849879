package policy

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/jsonenc"
)

// The audit form of the input document, encoded directly.
//
// [Input.AuditMap] builds the document as nested maps; the audit log then
// encodes them generically (sorting every map's keys). On the request path
// the proxy needs only the bytes, so [Input.AppendAuditJSON] writes them
// straight from the struct: exactly what encoding/json (an Encoder with
// SetEscapeHTML(false), compact, no newline) makes of AuditMap(), with no
// map and no reflection. The field order below is the sorted key order of
// each object; TestAuditJSONMatchesAuditMap and FuzzAuditJSON hold the two
// forms byte-equal.

// secretHeaderNames are credentials that never reach the audit log,
// whatever built the input: the names [HeadersFromHTTP] drops as
// credentials, and set-cookie (a response header, but a secret wherever it
// appears). Lower case, '-' separated.
var secretHeaderNames = [...]string{
	"cookie", "set-cookie", "authorization", "proxy-authorization", "x-api-key",
	"x-auth-token", "x-csrf-token", "x-xsrf-token", "x-amz-security-token",
}

// SecretHeader reports whether a header name (any case; '_' counts as '-',
// as for [DroppedHeader]) is a credential that the audit forms of the input
// ([Input.AuditMap], [Input.AppendAuditJSON]) leave out. [HeadersFromHTTP]
// already drops these; leaving them out again is defence in depth for
// inputs built another way.
func SecretHeader(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf { // rare: fold as strings.ToLower does
			n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
			return slices.Contains(secretHeaderNames[:], n)
		}
	}
	for _, s := range secretHeaderNames {
		if len(s) == len(name) && asciiHeaderEq(name, s) {
			return true
		}
	}
	return false
}

// asciiHeaderEq compares an ASCII name with a lower-case one, folding case
// and '_' to '-'.
func asciiHeaderEq(name, lower string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// redactedKey reports whether a query parameter's values are replaced by
// [Redacted] in the audit forms: [redactedQuery] of strings.ToLower(k),
// without allocating for the usual ASCII names.
func redactedKey(k string) bool {
	var buf [32]byte
	if len(k) > len(buf) {
		return redactedQuery[strings.ToLower(k)]
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= utf8.RuneSelf {
			return redactedQuery[strings.ToLower(k)]
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return redactedQuery[string(buf[:len(k)])]
}

// AppendAuditJSON appends the audit form of the input document to b: the
// bytes encoding/json (SetEscapeHTML(false), compact, without the trailing
// newline) produces for [Input.AuditMap], with the same redactions.
func (in *Input) AppendAuditJSON(b []byte) []byte {
	b = slices.Grow(b, in.auditJSONSize())
	r, u, s, rt, t, rk := &in.Request, &in.User, &in.Session, &in.Route, &in.Time, &in.Risk
	b = append(b, `{"request":{"headers":`...)
	b = appendHeadersJSON(b, r.Headers)
	b = jsonenc.AppendString(append(b, `,"host":`...), r.Host)
	b = jsonenc.AppendString(append(b, `,"id":`...), r.ID)
	b = jsonenc.AppendString(append(b, `,"method":`...), r.Method)
	b = jsonenc.AppendString(append(b, `,"path":`...), r.Path)
	b = appendQueryJSON(append(b, `,"query":`...), r.Query)
	b = jsonenc.AppendString(append(b, `,"remote_ip":`...), r.RemoteIP)

	b = strconv.AppendBool(append(b, `},"risk":{"blocked":`...), rk.Blocked)
	b = strconv.AppendInt(append(b, `,"bytes_1h":`...), rk.Bytes1h, 10)
	b = strconv.AppendInt(append(b, `,"downloads_1h":`...), rk.Downloads1h, 10)
	b = jsonenc.AppendStrings(append(b, `,"flags":`...), rk.Flags)
	b = jsonenc.AppendString(append(b, `,"reason":`...), rk.Reason)
	b = strconv.AppendInt(append(b, `,"requests_1h":`...), rk.Requests1h, 10)
	b = strconv.AppendBool(append(b, `,"step_up":`...), rk.StepUp)

	b = jsonenc.AppendString(append(b, `},"route":{"host":`...), rt.Host)
	b = jsonenc.AppendString(append(b, `,"mfa":`...), rt.MFA)
	b = jsonenc.AppendString(append(b, `,"name":`...), rt.Name)
	b = strconv.AppendBool(append(b, `,"public":`...), rt.Public)

	b = jsonenc.AppendString(append(b, `},"session":{"acr":`...), s.ACR)
	b = jsonenc.AppendStrings(append(b, `,"amr":`...), s.AMR)
	b = strconv.AppendInt(append(b, `,"auth_age_seconds":`...), s.AuthAgeSeconds, 10)
	b = strconv.AppendInt(append(b, `,"auth_time":`...), s.AuthTime, 10)
	b = strconv.AppendBool(append(b, `,"mfa":`...), s.MFA)

	b = strconv.AppendInt(append(b, `},"time":{"hour":`...), int64(t.Hour), 10)
	b = strconv.AppendBool(append(b, `,"night":`...), t.Night)
	b = jsonenc.AppendString(append(b, `,"timezone":`...), t.Timezone)
	b = strconv.AppendInt(append(b, `,"unix":`...), t.Unix, 10)
	b = jsonenc.AppendString(append(b, `,"weekday":`...), t.Weekday)

	b = jsonenc.AppendString(append(b, `},"user":{"email":`...), u.Email)
	b = jsonenc.AppendStrings(append(b, `,"groups":`...), u.Groups)
	b = jsonenc.AppendString(append(b, `,"name":`...), u.Name)
	b = jsonenc.AppendStrings(append(b, `,"roles":`...), u.Roles)
	b = jsonenc.AppendString(append(b, `,"sub":`...), u.Sub)
	return append(b, `}}`...)
}

// auditJSONFixed is the length of AppendAuditJSON's output for an input
// whose strings, lists and maps are all empty and numbers one digit.
const auditJSONFixed = 420

// auditJSONSize estimates the encoded length (exact when nothing needs
// escaping and numbers are short), so that the output grows once.
func (in *Input) auditJSONSize() int {
	n := auditJSONFixed
	strsLen := func(ss []string) {
		for _, s := range ss {
			n += len(s) + 3
		}
	}
	r := &in.Request
	n += len(r.Host) + len(r.ID) + len(r.Method) + len(r.Path) + len(r.RemoteIP)
	for k, v := range r.Headers {
		n += len(k) + len(v) + 6
	}
	for k, vs := range r.Query {
		n += len(k) + 6
		if redactedKey(k) {
			n += len(vs) * (len(Redacted) + 3)
		} else {
			strsLen(vs)
		}
	}
	n += len(in.User.Email) + len(in.User.Name) + len(in.User.Sub) + len(in.Session.ACR)
	strsLen(in.User.Groups)
	strsLen(in.User.Roles)
	strsLen(in.Session.AMR)
	strsLen(in.Risk.Flags)
	n += len(in.Risk.Reason) + len(in.Route.Host) + len(in.Route.MFA) + len(in.Route.Name)
	n += len(in.Time.Timezone) + len(in.Time.Weekday) + 6*20 // numbers
	return n
}

// keyBuf holds a map's keys for sorting; most requests fit on the stack.
type keyBuf [32]string

func appendHeadersJSON(b []byte, h map[string]string) []byte {
	var buf keyBuf
	keys := buf[:0]
	for k := range h {
		if !SecretHeader(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // byte order, as encoding/json sorts map keys
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, k)
		b = jsonenc.AppendString(append(b, ':'), h[k])
	}
	return append(b, '}')
}

func appendQueryJSON(b []byte, q map[string][]string) []byte {
	var buf keyBuf
	keys := buf[:0]
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(jsonenc.AppendString(b, k), ':')
		vs := q[k]
		if !redactedKey(k) {
			b = jsonenc.AppendStrings(b, vs)
			continue
		}
		b = append(b, '[')
		for j := range vs {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `"`+Redacted+`"`...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
