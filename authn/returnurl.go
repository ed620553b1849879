package authn

import (
	"net/url"
	"strings"
)

// maxReturnURL bounds return URLs kept in cookies and codes.
const maxReturnURL = 4096

// SafeReturnURL checks raw, the URL a user should land on after signing in,
// and returns it in absolute form only when it points at a host Gatehouse
// serves, with the expected scheme. A relative raw ("/path?q") is taken
// relative to currentHost. Anything a browser could read as another host is
// refused: scheme-relative "//evil.com", backslashes "/\evil.com" (also
// percent-encoded), opaque "https:evil.com", encoded slashes "%2F%2Fevil.com",
// userinfo "https://gate@evil.com", control characters and whitespace (which
// browsers strip), and non-ASCII bytes.
func SafeReturnURL(raw, scheme, currentHost string, served func(host string) bool) (string, bool) {
	if raw == "" || len(raw) > maxReturnURL {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c <= 0x20 || c >= 0x7f || c == '\\' {
			return "", false
		}
	}
	lower := strings.ToLower(raw)
	if strings.Contains(lower, "%5c") || strings.Contains(lower, "%00") {
		return "", false
	}
	// One round of decoding must not reveal another host either.
	dec, err := url.PathUnescape(raw)
	if err != nil || strings.HasPrefix(dec, "//") || strings.Contains(dec, "\\") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil {
		return "", false
	}
	if u.Scheme == "" && u.Host == "" {
		// Relative: a single leading slash, never two.
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.HasPrefix(lower, "/%2f") {
			return "", false
		}
		host := strings.ToLower(currentHost)
		if !served(host) {
			return "", false
		}
		return scheme + "://" + host + raw, true
	}
	if !strings.EqualFold(u.Scheme, scheme) || u.Host == "" || !strings.HasPrefix(lower, scheme+"://") {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if strings.ContainsAny(host, "%@[]") || strings.HasSuffix(host, ".") {
		return "", false
	}
	if !served(host) {
		return "", false
	}
	if p := u.EscapedPath(); p != "" && (!strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//")) {
		return "", false
	}
	return raw, true
}

// hostOf returns the lower-cased host[:port] of an absolute URL.
func hostOf(abs string) string {
	u, err := url.Parse(abs)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}
