package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/gatehouse-dev/gatehouse/internal/godebugprobe"
)

// ErrAmbiguousPath is wrapped by every error NormalizePath returns: the path
// cannot be given one unambiguous meaning, so the request is refused with 400
// before routing, authentication or policy see it.
var ErrAmbiguousPath = errors.New("ambiguous request path")

// PathError says why a request path was refused. Reason is a stable id used
// in logs and metrics (e.g. "encoded_slash").
type PathError struct {
	Reason string
	Offset int // byte offset in the raw path where the problem was found
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%s: %s at byte %d", ErrAmbiguousPath, e.Reason, e.Offset)
}

// Unwrap makes errors.Is(err, ErrAmbiguousPath) true.
func (e *PathError) Unwrap() error { return ErrAmbiguousPath }

// Reasons a path is refused.
const (
	PathNotAbsolute    = "not_absolute"
	PathBadEscape      = "bad_escape"
	PathEncodedSlash   = "encoded_slash"
	PathBackslash      = "backslash"
	PathControl        = "control_character" // NUL and every other C0 control, DEL
	PathInvalidUTF8    = "invalid_utf8"
	PathAboveRoot      = "above_root"
	PathParameter      = "path_parameter"  // ';' raw or encoded
	QueryAmbiguous     = "ambiguous_query" // a query url.ParseQuery refuses (';' separators, bad escapes)
	PathDoubleEncoding = "double_encoding" // the decoded path still holds an escape (%252e, %25%32%65)
	PathNotASCII       = "not_ascii"       // routes[].path_charset: ascii
	PathCompatChar     = "compat_char"     // routes[].path_charset: nfkc (full-width letters, ligatures, …)
)

// CheckPathCharset applies a route's path_charset to a normalised path:
// "ascii" refuses any byte above 0x7F; "nfkc" refuses a path that Unicode
// compatibility folding (NFKC) would change — "/ａdmin" (full-width a),
// "/ﬁnance" (a ligature), "/admin²" — which an upstream that folds would
// read as another path than the one policy judged, while ordinary
// non-Latin names ("/文件/报告.pdf") pass. "" allows any valid UTF-8.
func CheckPathCharset(p, charset string) error {
	switch charset {
	case "ascii":
		for i := 0; i < len(p); i++ {
			if p[i] >= utf8.RuneSelf {
				return &PathError{Reason: PathNotASCII, Offset: i}
			}
		}
	case "nfkc":
		if !norm.NFKC.IsNormalString(p) {
			return &PathError{Reason: PathCompatChar, Offset: norm.NFKC.QuickSpanString(p)}
		}
	}
	return nil
}

// NormalizePath turns the path of a request target, as sent on the wire
// (percent-encoded, without query), into the one path that policy judges and
// the upstream receives (DESIGN.md, "request.path"):
//
//   - percent-escapes are decoded exactly once;
//   - "." and ".." segments are removed (RFC 3986 §5.2.4); a trailing slash
//     is kept, and a path ending in "." or ".." gets one;
//   - runs of slashes are merged into one.
//
// Paths that could mean two different things to two different parsers are
// refused with a *PathError (wrapping ErrAmbiguousPath): an encoded slash
// (%2F) or backslash (raw or %5C), NUL or any other control character, a
// malformed escape, invalid UTF-8 after decoding, ".." climbing above the
// root, ';' path parameters (raw or %3B: servlet containers strip them, so
// "/admin;x/" is "/admin/" to them), and double encoding (%25 followed by two
// hex digits: a second decoder would see a different path).
//
// The result always starts with "/", never contains "//" or a "." or ".."
// segment, and NormalizePath(EscapePath(p)) == p for every result p.
func NormalizePath(raw string) (string, error) {
	if cleanPath(raw) {
		return raw, nil // already normal: nothing to decode, merge or remove
	}
	return normalizePath(raw)
}

// cleanPath reports whether raw is its own normal form: absolute, plain
// printable ASCII without '%', '\' or ';', and no empty, "." or ".."
// segment (a final empty one, a trailing slash, is kept as it is). Most
// request paths are, and they cost no allocation; FuzzNormalizePath holds
// normalizePath to returning every clean path unchanged.
func cleanPath(raw string) bool {
	if raw == "" || raw[0] != '/' {
		return false
	}
	seg := 1 // start of the current segment
	for i := 1; i <= len(raw); i++ {
		if i < len(raw) {
			c := raw[i]
			if c <= 0x20 || c >= 0x7f || c == '%' || c == '\\' || c == ';' {
				return false
			}
			if c != '/' {
				continue
			}
		}
		switch raw[seg:i] {
		case "":
			if i < len(raw) {
				return false // "//"
			}
		case ".", "..":
			return false
		}
		seg = i + 1
	}
	return true
}

// normalizePath is NormalizePath's general case.
func normalizePath(raw string) (string, error) {
	if raw == "" {
		return "/", nil
	}
	if raw[0] != '/' {
		return "", &PathError{PathNotAbsolute, 0}
	}
	// Decode once, refusing anything ambiguous.
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", &PathError{PathBadEscape, i}
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			switch {
			case d == '/':
				return "", &PathError{PathEncodedSlash, i}
			case d == '\\':
				return "", &PathError{PathBackslash, i}
			case d == ';':
				return "", &PathError{PathParameter, i}
			case d < 0x20 || d == 0x7f:
				return "", &PathError{PathControl, i}
			}
			b.WriteByte(d)
			i += 2
		case c == '\\':
			return "", &PathError{PathBackslash, i}
		case c == ';':
			return "", &PathError{PathParameter, i}
		case c < 0x20 || c == 0x7f:
			return "", &PathError{PathControl, i}
		default:
			b.WriteByte(c)
		}
	}
	dec := b.String()
	if !utf8.ValidString(dec) {
		return "", &PathError{PathInvalidUTF8, 0}
	}
	// Double encoding, judged on the decoded path: whatever way the digits
	// were spelled ("%252e", "%25%32%65"), an upstream that decodes again
	// must find no escape left.
	for i := 0; i+2 < len(dec); i++ {
		if dec[i] == '%' && isHex(dec[i+1]) && isHex(dec[i+2]) {
			return "", &PathError{PathDoubleEncoding, i}
		}
	}
	// Remove dot-segments and empty segments.
	segs := make([]string, 0, strings.Count(dec, "/"))
	trailing := false
	for s := range strings.SplitSeq(dec[1:], "/") {
		switch s {
		case "":
			trailing = true
			continue
		case ".":
			trailing = true
			continue
		case "..":
			if len(segs) == 0 {
				return "", &PathError{PathAboveRoot, 0}
			}
			segs = segs[:len(segs)-1]
			trailing = true
			continue
		}
		segs = append(segs, s)
		trailing = false
	}
	if len(segs) == 0 {
		return "/", nil
	}
	out := "/" + strings.Join(segs, "/")
	if trailing {
		out += "/"
	}
	return out, nil
}

// EscapePath is the wire form of a normalised path: what the upstream
// receives on its request line.
func EscapePath(p string) string {
	u := url.URL{Path: p}
	return u.EscapedPath()
}

// CheckQuery refuses a raw query that does not parse cleanly: the pairs
// Go drops (';' separators, malformed escapes) are exactly the ones another
// parser upstream may keep, so policy and upstream would read two different
// queries.
func CheckQuery(raw string) error {
	if !queryParses(raw) {
		return &PathError{QueryAmbiguous, 0}
	}
	return nil
}

// queryParses reports whether url.ParseQuery(raw) succeeds, without
// building its map on every request: ParseQuery fails on a ';', on a '%'
// not followed by two hex digits, and past a number of parameters
// (GODEBUG urlmaxqueryparams; a long query, or any query while that limit
// is set below fastQueryParams, is left to ParseQuery itself: past the
// limit it returns an empty map, and the policy would judge no query at
// all). FuzzCheckQuery and TestCheckQueryHonorsParamLimit hold the two
// together.
func queryParses(raw string) bool {
	if raw == "" {
		// No query: policy and upstream read the same nothing, whatever
		// the limit (set to 1 or below, ParseQuery refuses even "").
		// Most requests; no GODEBUG lookup for them.
		return true
	}
	if strings.Count(raw, "&") >= fastQueryParams || !queryLimit.OK() {
		_, err := url.ParseQuery(raw)
		return err == nil
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// fastQueryParams is the number of parameters up to which queryParses
// judges a query itself.
const fastQueryParams = 1000

// queryLimit is whether url.ParseQuery's parameter limit (the default
// 10000, or GODEBUG urlmaxqueryparams, from the environment or the
// binary's default) lets fastQueryParams parameters through.
var queryLimit = godebugprobe.New(func() bool {
	_, err := url.ParseQuery(strings.Repeat("&", fastQueryParams-1))
	return err == nil
})

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
