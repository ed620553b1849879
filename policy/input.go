package policy

import (
	"net/url"
	"sort"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the document a policy sees as `input`. Its JSON form (the struct
// tags) is the contract documented in docs/policy.md and checked against
// docs/policy-input.schema.json. Slices and maps are never null in the
// document: nil is rendered as an empty array or object.
type Input struct {
	Request RequestInput `json:"request"`
	User    UserInput    `json:"user"`
	Session SessionInput `json:"session"`
	Route   RouteInput   `json:"route"`
	Time    TimeInput    `json:"time"`
	Risk    RiskInput    `json:"risk"`
}

// RequestInput describes the HTTP request being judged.
type RequestInput struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	// Host is the requested host name, lower-cased, without port.
	Host string `json:"host"`
	// Path is the normalised path: exactly what the upstream receives.
	Path  string              `json:"path"`
	Query map[string][]string `json:"query"`
	// Headers are lower-cased names to comma-joined values, without
	// credentials or spoofable forwarding headers (see [HeadersFromHTTP]).
	Headers  map[string]string `json:"headers"`
	RemoteIP string            `json:"remote_ip"`
}

// UserInput is the signed-in user; all fields are empty for an anonymous
// caller on a public route.
type UserInput struct {
	Sub    string   `json:"sub"`
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	Roles  []string `json:"roles"`
}

// SessionInput is how strongly the user authenticated.
type SessionInput struct {
	MFA            bool     `json:"mfa"`
	AMR            []string `json:"amr"`
	ACR            string   `json:"acr"`
	AuthTime       int64    `json:"auth_time"`        // unix seconds; 0 when anonymous
	AuthAgeSeconds int64    `json:"auth_age_seconds"` // now - auth_time; 0 when anonymous
}

// RouteInput is the configured route the request matched.
type RouteInput struct {
	Name   string `json:"name"`
	Host   string `json:"host"`
	Public bool   `json:"public"`
	// MFA is the route's mfa setting, "required" or "optional". A route that
	// requires MFA (and is not public) adds require_mfa to whatever the
	// policy says, as the proxy does.
	MFA string `json:"mfa"`
}

// mfaDemanded: the route requires MFA (and is not public), or the anomaly
// detector asks for a step-up. Either adds require_mfa to what the policy
// says, exactly as the proxy enforces it, so replays judge alike.
func (in Input) mfaDemanded() bool {
	return in.Route.MFA == "required" && !in.Route.Public || in.Risk.StepUp
}

// TimeInput is when the request arrived, in the configured time zone.
type TimeInput struct {
	Unix     int64  `json:"unix"`
	Timezone string `json:"timezone"`
	Hour     int    `json:"hour"`    // 0-23, local
	Weekday  string `json:"weekday"` // "Monday" ... "Sunday", local
	Night    bool   `json:"night"`   // inside the anomaly night window
}

// RiskInput is what the anomaly detector knows of the caller.
type RiskInput struct {
	Flags       []string `json:"flags"`
	Requests1h  int64    `json:"requests_1h"`
	Downloads1h int64    `json:"downloads_1h"`
	Bytes1h     int64    `json:"bytes_1h"`
	Blocked     bool     `json:"blocked"`
	StepUp      bool     `json:"step_up"`
	Reason      string   `json:"reason"`
}

// NewTimeInput renders t in loc (UTC when nil). night comes from the
// anomaly detector's window, which owns the definition of night.
func NewTimeInput(t time.Time, loc *time.Location, night bool) TimeInput {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	return TimeInput{
		Unix:     t.Unix(),
		Timezone: loc.String(),
		Hour:     lt.Hour(),
		Weekday:  lt.Weekday().String(),
		Night:    night,
	}
}

// NewSessionInput fills the session part; authTime zero means anonymous.
func NewSessionInput(mfa bool, amr []string, acr string, authTime, now time.Time) SessionInput {
	s := SessionInput{MFA: mfa, AMR: amr, ACR: acr}
	if !authTime.IsZero() {
		s.AuthTime = authTime.Unix()
		if age := int64(now.Sub(authTime) / time.Second); age > 0 {
			s.AuthAgeSeconds = age
		}
	}
	return s
}

// Keys of the input document, shared immutable terms.
var (
	kRequest, kUser, kSession, kRoute, kTime, kRisk = ast.StringTerm("request"), ast.StringTerm("user"), ast.StringTerm("session"), ast.StringTerm("route"), ast.StringTerm("time"), ast.StringTerm("risk")
	kID, kMethod, kHost, kPath, kQuery, kHeaders    = ast.StringTerm("id"), ast.StringTerm("method"), ast.StringTerm("host"), ast.StringTerm("path"), ast.StringTerm("query"), ast.StringTerm("headers")
	kRemoteIP, kSub, kEmail, kName, kGroups, kRoles = ast.StringTerm("remote_ip"), ast.StringTerm("sub"), ast.StringTerm("email"), ast.StringTerm("name"), ast.StringTerm("groups"), ast.StringTerm("roles")
	kMFA, kAMR, kACR, kAuthTime, kAuthAge           = ast.StringTerm("mfa"), ast.StringTerm("amr"), ast.StringTerm("acr"), ast.StringTerm("auth_time"), ast.StringTerm("auth_age_seconds")
	kPublic, kUnix, kTimezone, kHour, kWeekday      = ast.StringTerm("public"), ast.StringTerm("unix"), ast.StringTerm("timezone"), ast.StringTerm("hour"), ast.StringTerm("weekday")
	kNight, kFlags, kRequests1h, kDownloads1h       = ast.StringTerm("night"), ast.StringTerm("flags"), ast.StringTerm("requests_1h"), ast.StringTerm("downloads_1h")
	kBytes1h, kBlocked, kStepUp, kReason            = ast.StringTerm("bytes_1h"), ast.StringTerm("blocked"), ast.StringTerm("step_up"), ast.StringTerm("reason")
)

func str(s string) *ast.Term {
	if s == "" {
		return ast.InternedEmptyString
	}
	return ast.StringTerm(s)
}

func num(n int64) *ast.Term { return ast.InternedTerm(n) }

func strs(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = str(s)
	}
	return ast.NewTerm(ast.NewArray(ts...))
}

// Value builds the input as an OPA value, directly (no JSON encoding).
func (in Input) Value() ast.Value {
	r := &in.Request
	query := ast.NewObjectWithCapacity(len(r.Query))
	for k, vs := range r.Query {
		query.Insert(str(k), strs(vs))
	}
	headers := ast.NewObjectWithCapacity(len(r.Headers))
	for k, v := range r.Headers {
		headers.Insert(str(k), str(v))
	}
	u, s, rt, t, rk := &in.User, &in.Session, &in.Route, &in.Time, &in.Risk
	return ast.NewObject(
		ast.Item(kRequest, ast.ObjectTerm(
			ast.Item(kID, str(r.ID)),
			ast.Item(kMethod, str(r.Method)),
			ast.Item(kHost, str(r.Host)),
			ast.Item(kPath, str(r.Path)),
			ast.Item(kQuery, ast.NewTerm(query)),
			ast.Item(kHeaders, ast.NewTerm(headers)),
			ast.Item(kRemoteIP, str(r.RemoteIP)),
		)),
		ast.Item(kUser, ast.ObjectTerm(
			ast.Item(kSub, str(u.Sub)),
			ast.Item(kEmail, str(u.Email)),
			ast.Item(kName, str(u.Name)),
			ast.Item(kGroups, strs(u.Groups)),
			ast.Item(kRoles, strs(u.Roles)),
		)),
		ast.Item(kSession, ast.ObjectTerm(
			ast.Item(kMFA, ast.InternedTerm(s.MFA)),
			ast.Item(kAMR, strs(s.AMR)),
			ast.Item(kACR, str(s.ACR)),
			ast.Item(kAuthTime, num(s.AuthTime)),
			ast.Item(kAuthAge, num(s.AuthAgeSeconds)),
		)),
		ast.Item(kRoute, ast.ObjectTerm(
			ast.Item(kName, str(rt.Name)),
			ast.Item(kHost, str(rt.Host)),
			ast.Item(kPublic, ast.InternedTerm(rt.Public)),
			ast.Item(kMFA, str(rt.MFA)),
		)),
		ast.Item(kTime, ast.ObjectTerm(
			ast.Item(kUnix, num(t.Unix)),
			ast.Item(kTimezone, str(t.Timezone)),
			ast.Item(kHour, num(int64(t.Hour))),
			ast.Item(kWeekday, str(t.Weekday)),
			ast.Item(kNight, ast.InternedTerm(t.Night)),
		)),
		ast.Item(kRisk, ast.ObjectTerm(
			ast.Item(kFlags, strs(rk.Flags)),
			ast.Item(kRequests1h, num(rk.Requests1h)),
			ast.Item(kDownloads1h, num(rk.Downloads1h)),
			ast.Item(kBytes1h, num(rk.Bytes1h)),
			ast.Item(kBlocked, ast.InternedTerm(rk.Blocked)),
			ast.Item(kStepUp, ast.InternedTerm(rk.StepUp)),
			ast.Item(kReason, str(rk.Reason)),
		)),
	)
}

// redactedQuery lists query parameters whose values are credentials: the
// policy sees them, the audit log does not.
var redactedQuery = map[string]bool{
	"access_token": true, "id_token": true, "refresh_token": true, "token": true,
	"code": true, "state": true, "password": true, "passwd": true, "secret": true,
	"client_secret": true, "api_key": true, "apikey": true, "key": true,
	"signature": true, "sig": true, "x-amz-signature": true, "x-amz-security-token": true,
	"x-amz-credential": true, "session": true, "sessionid": true, "jwt": true, "auth": true,
}

// Redacted is the value put in place of a secret in [Input.AuditMap].
const Redacted = "[redacted]"

func list(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// AuditMap returns the input document as plain JSON-ready values for the
// audit log, so the decision can be replayed: the same document as [Value],
// except that credential-like query parameters ([redactedQuery]) are
// replaced by [Redacted] and credential headers ([SecretHeader]; already
// dropped by [HeadersFromHTTP]) are left out. [Input.AppendAuditJSON]
// encodes the same document without building it.
func (in Input) AuditMap() map[string]any {
	r := &in.Request
	query := make(map[string]any, len(r.Query))
	for k, vs := range r.Query {
		if redactedKey(k) {
			red := make([]any, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			query[k] = red
			continue
		}
		query[k] = list(vs)
	}
	headers := make(map[string]any, len(r.Headers))
	for k, v := range r.Headers {
		if !SecretHeader(k) {
			headers[k] = v
		}
	}
	u, s, rt, t, rk := &in.User, &in.Session, &in.Route, &in.Time, &in.Risk
	return map[string]any{
		"request": map[string]any{
			"id": r.ID, "method": r.Method, "host": r.Host, "path": r.Path,
			"query": query, "headers": headers, "remote_ip": r.RemoteIP,
		},
		"user": map[string]any{
			"sub": u.Sub, "email": u.Email, "name": u.Name,
			"groups": list(u.Groups), "roles": list(u.Roles),
		},
		"session": map[string]any{
			"mfa": s.MFA, "amr": list(s.AMR), "acr": s.ACR,
			"auth_time": s.AuthTime, "auth_age_seconds": s.AuthAgeSeconds,
		},
		"route": map[string]any{"name": rt.Name, "host": rt.Host, "public": rt.Public, "mfa": rt.MFA},
		"time": map[string]any{
			"unix": t.Unix, "timezone": t.Timezone, "hour": t.Hour, "weekday": t.Weekday, "night": t.Night,
		},
		"risk": map[string]any{
			"flags": list(rk.Flags), "requests_1h": rk.Requests1h, "downloads_1h": rk.Downloads1h,
			"bytes_1h": rk.Bytes1h, "blocked": rk.Blocked, "step_up": rk.StepUp, "reason": rk.Reason,
		},
	}
}

// QueryFromURL returns the parsed query of u (nil-safe); malformed pairs are
// kept as url.ParseQuery keeps them, so the policy sees what the upstream
// will see.
func QueryFromURL(u *url.URL) map[string][]string {
	if u == nil || u.RawQuery == "" {
		return map[string][]string{}
	}
	q, _ := url.ParseQuery(u.RawQuery) // the partial result is what upstreams parse too
	return q
}

// sortedCopy returns a sorted, de-duplicated copy of ss.
func sortedCopy(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i > 0 && s == out[j-1] {
			continue
		}
		out[j] = s
		j++
	}
	return out[:j]
}
