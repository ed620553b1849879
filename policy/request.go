package policy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"
)

// RequestLine is a request given on the command line, as in
// `gatehouse policy eval --request 'GET https://files.example.com/x?y=1'`.
type RequestLine struct {
	Method  string
	Scheme  string
	Host    string // lower-cased, without port or trailing dot
	RawPath string // escaped path as sent ("/" when empty); normalise before judging
	Query   map[string][]string
}

// ErrRequestLine is wrapped by every error of [ParseRequestLine].
var ErrRequestLine = errors.New("invalid request line")

// maxRequestLine bounds the input of [ParseRequestLine].
const maxRequestLine = 8 << 10

// ParseRequestLine reads "METHOD absolute-URL". The method is an HTTP token
// (upper-cased); the URL must be http(s) with a host, no user info and no
// fragment. It never panics, whatever the input.
func ParseRequestLine(s string) (RequestLine, error) {
	var rl RequestLine
	if len(s) > maxRequestLine {
		return rl, fmt.Errorf("%w: longer than %d bytes", ErrRequestLine, maxRequestLine)
	}
	if !utf8.ValidString(s) {
		return rl, fmt.Errorf("%w: not UTF-8", ErrRequestLine)
	}
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return rl, fmt.Errorf("%w: want \"METHOD URL\", got %d fields", ErrRequestLine, len(fields))
	}
	method, raw := fields[0], fields[1]
	if !isToken(method) {
		return rl, fmt.Errorf("%w: method %q is not an HTTP token", ErrRequestLine, method)
	}
	rl.Method = strings.ToUpper(method)
	u, err := url.Parse(raw)
	if err != nil {
		return rl, fmt.Errorf("%w: %w", ErrRequestLine, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return rl, fmt.Errorf("%w: scheme %q: want http or https", ErrRequestLine, u.Scheme)
	case u.Opaque != "":
		return rl, fmt.Errorf("%w: %q is not an absolute URL with a path", ErrRequestLine, raw)
	case u.User != nil:
		return rl, fmt.Errorf("%w: user info in URL", ErrRequestLine)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return rl, fmt.Errorf("%w: fragment in URL", ErrRequestLine)
	}
	host := u.Hostname()
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" || strings.ContainsAny(host, " /\\@") {
		return rl, fmt.Errorf("%w: no valid host in %q", ErrRequestLine, raw)
	}
	rl.Scheme, rl.Host = u.Scheme, host
	rl.RawPath = u.EscapedPath()
	if rl.RawPath == "" {
		rl.RawPath = "/"
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return rl, fmt.Errorf("%w: query: %w", ErrRequestLine, err)
	}
	rl.Query = q
	return rl, nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
