package policy

import (
	"net/http"
	"strings"
)

// droppedHeaders never reach the input document: credentials (the policy
// judges the identity the proxy established, not raw tokens) and headers a
// client could use to lie about where it is or what it asked for. The
// proxy strips the spoofable ones before the upstream, too.
var droppedHeaders = map[string]bool{
	"cookie":               true,
	"authorization":        true,
	"proxy-authorization":  true,
	"x-api-key":            true,
	"x-auth-token":         true,
	"set-cookie":           true, // a response header: never a request's business
	"x-csrf-token":         true,
	"x-xsrf-token":         true,
	"x-amz-security-token": true,
	"forwarded":            true,
	"x-real-ip":            true,
	"x-client-ip":          true,
	"true-client-ip":       true,
	"cf-connecting-ip":     true,
	"fastly-client-ip":     true,
	"x-cluster-client-ip":  true,
	"x-original-url":       true,
	"x-rewrite-url":        true,
	"x-original-uri":       true,
	"x-original-host":      true,
	"via":                  true,
	// Identity headers other proxies and apps use: the upstream never
	// gets a client's copy (the proxy strips them), so the policy must not
	// be able to believe one either.
	"x-remote-user":        true,
	"remote-user":          true,
	"x-remote-group":       true,
	"x-user":               true,
	"x-email":              true,
	"x-auth-user":          true,
	"x-authenticated-user": true,
	"x-webauth-user":       true,
	"x-proxy-user":         true,
	// Method overrides never reach the upstream either: the policy judges
	// the request's real method.
	"x-http-method-override": true,
	"x-http-method":          true,
	"x-method-override":      true,
}

// droppedPrefixes: forwarding headers and the identity headers Gatehouse
// (and oauth2-proxy) send upstream (a client must not be able to pre-fill
// them).
var droppedPrefixes = []string{"x-forwarded-", "x-gatehouse-", "x-original-forwarded-", "x-auth-request-"}

// headerFact is what HeadersFromHTTP needs of a header name.
type headerFact struct {
	lower   string
	dropped bool
}

// commonHeaders holds, for the names browsers and API clients send on
// nearly every request (in net/http's canonical spelling), their lower
// case and whether they are dropped — computed once, so the request path
// folds no string for them. A fixed table: client-chosen names never
// grow it.
var commonHeaders = func() map[string]headerFact {
	m := map[string]headerFact{}
	for _, n := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Cookie", "Dnt", "Forwarded", "If-Match", "If-Modified-Since",
		"If-None-Match", "If-Range", "Origin", "Pragma", "Priority", "Range", "Referer", "Sec-Ch-Ua",
		"Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-User", "Sec-Websocket-Key", "Sec-Websocket-Version", "Te", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Csrf-Token", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Requested-With",
	} {
		m[n] = headerFact{lower: strings.ToLower(n), dropped: droppedFolded(n)}
	}
	return m
}()

// MaxHeaderValue bounds one header value in the input document; longer
// values are cut (the policy input is also what the audit log keeps).
const MaxHeaderValue = 1024

// DroppedHeader reports whether a header (any case) is left out of the
// input document.
func DroppedHeader(name string) bool {
	if f, ok := commonHeaders[name]; ok {
		return f.dropped
	}
	return droppedFolded(name)
}

func droppedFolded(name string) bool {
	// '_' folds to '-': many servers read X_Forwarded_For as
	// X-Forwarded-For, so the spelling must not smuggle one in.
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	if droppedHeaders[n] {
		return true
	}
	for _, p := range droppedPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// HeadersFromHTTP turns request headers into the input's headers object:
// names lower-cased, repeated values joined with ", ", credentials and
// spoofable forwarding headers removed (see [DroppedHeader]), and extra
// names (e.g. configured identity headers) removed as well.
func HeadersFromHTTP(h http.Header, extra ...string) map[string]string {
	return NewHeaderFilter(extra...).FromHTTP(h)
}

// HeaderFilter is HeadersFromHTTP with its extra names folded once (lower
// case, '_' as '-'), for a caller that builds the input of every request
// with the same ones.
type HeaderFilter struct {
	extra map[string]bool // folded names
}

// NewHeaderFilter returns the filter that also removes the extra names.
func NewHeaderFilter(extra ...string) *HeaderFilter {
	f := &HeaderFilter{}
	if len(extra) > 0 {
		f.extra = make(map[string]bool, len(extra))
		for _, e := range extra {
			f.extra[foldName(strings.ToLower(e))] = true
		}
	}
	return f
}

// foldName folds '_' to '-' in a lower-cased name, as droppedFolded does.
func foldName(n string) string {
	if strings.IndexByte(n, '_') >= 0 {
		return strings.ReplaceAll(n, "_", "-")
	}
	return n
}

// FromHTTP turns request headers into the input's headers object (see
// HeadersFromHTTP).
func (f *HeaderFilter) FromHTTP(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, vs := range h {
		if len(vs) == 0 {
			continue
		}
		var n string
		if c, ok := commonHeaders[name]; ok {
			if c.dropped {
				continue
			}
			n = c.lower
		} else {
			if droppedFolded(name) {
				continue
			}
			n = strings.ToLower(name)
		}
		// '_' folds to '-' on both sides, as in droppedFolded.
		if f.extra != nil && f.extra[foldName(n)] {
			continue
		}
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ", ")
		}
		if len(v) > MaxHeaderValue {
			v = v[:MaxHeaderValue]
		}
		if prev, ok := out[n]; ok { // two spellings of one name
			v = prev + ", " + v
		}
		out[n] = v
	}
	return out
}
