package proxy

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

func TestNormalizePath(t *testing.T) {
	ok := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"//", "/"},
		{"/a", "/a"},
		{"/a/", "/a/"},
		{"/a/./b//c", "/a/b/c"},
		{"/a/b/../c", "/a/c"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"/a/b/c/../../d", "/a/d"},
		{"/a/..", "/"},
		{"/..a/b..", "/..a/b.."},
		{"/...", "/..."},
		{"/a%20b", "/a b"},
		{"/%41%42", "/AB"},
		{"/%2e/a", "/a"},
		{"/a/%2e%2E/b", "/b"},
		{"/caf%C3%A9", "/café"},
		{"/café", "/café"},
		{"/100%25.pdf", "/100%.pdf"},
		{"/a%3Fb", "/a?b"},
		{"/a%23b", "/a#b"},
		{"///a///b///", "/a/b/"},
		{"/s/report.pdf", "/s/report.pdf"},
	}
	for _, tc := range ok {
		got, err := NormalizePath(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, reason string }{
		{"a/b", PathNotAbsolute},
		{"*", PathNotAbsolute},
		{"/%2e%2e/secret", PathAboveRoot},
		{"/../secret", PathAboveRoot},
		{"/a/../../b", PathAboveRoot},
		{"/a%2Fb", PathEncodedSlash},
		{"/a%2fb", PathEncodedSlash},
		{"/a\\b", PathBackslash},
		{"/a%5Cb", PathBackslash},
		{"/a%5cb", PathBackslash},
		{"/%00", PathControl},
		{"/a\x00b", PathControl},
		{"/a%0Ab", PathControl},
		{"/a\tb", PathControl},
		{"/a%7F", PathControl},
		{"/a%zz", PathBadEscape},
		{"/a%4", PathBadEscape},
		{"/a%", PathBadEscape},
		{"/%C3%28", PathInvalidUTF8},
		{"/\xff", PathInvalidUTF8},
		{"/admin;jsessionid=x", PathParameter},
		{"/admin%3Bx/", PathParameter},
		{"/%252e%252e/secret", PathDoubleEncoding},
		{"/a%252Fb", PathDoubleEncoding},
		// The digits of the second escape encoded too: judged after decoding.
		{"/%25%32%65%25%32%65/secret", PathDoubleEncoding},
		{"/a%25%32%46b", PathDoubleEncoding},
		{"/%25%35%63evil", PathDoubleEncoding},
		{"/x%2541", PathDoubleEncoding},
	}
	for _, tc := range bad {
		got, err := NormalizePath(tc.in)
		var pe *PathError
		if !errors.As(err, &pe) || pe.Reason != tc.reason || !errors.Is(err, ErrAmbiguousPath) {
			t.Errorf("NormalizePath(%q) = %q, %v; want reason %s", tc.in, got, err, tc.reason)
		}
	}
}

func TestEscapePathRoundTrip(t *testing.T) {
	for _, p := range []string{"/", "/a b/c", "/100%.pdf", "/a?b#c", "/café/", "/%4"} {
		got, err := NormalizePath(EscapePath(p))
		if err != nil || got != p {
			t.Errorf("NormalizePath(EscapePath(%q)) = %q, %v", p, got, err)
		}
	}
}

// FuzzNormalizePath checks the properties policy relies on: the result
// starts with "/", has no "//" and no "." or ".." segment, and normalising
// its wire form again changes nothing.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/./b//c", "/%2e%2e/secret", "/a%2Fb", "/a\\b", "/%00",
		"/a/b/..", "/100%25.pdf", "/%252e", "/café", "/a;b", "//x/../y/"} {
		f.Add(s)
	}
	f.Add("/ａdmin")
	f.Add("/ﬁ%C2%B2")
	f.Fuzz(func(t *testing.T, raw string) {
		if cleanPath(raw) {
			// The fast path returns raw itself: the general case must agree.
			if p, err := normalizePath(raw); err != nil || p != raw {
				t.Fatalf("clean path %q normalises to %q, %v", raw, p, err)
			}
		}
		p, err := NormalizePath(raw)
		if err != nil {
			if !errors.Is(err, ErrAmbiguousPath) {
				t.Fatalf("error %v does not wrap ErrAmbiguousPath", err)
			}
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("%q -> %q: not absolute", raw, p)
		}
		if strings.Contains(p, "//") {
			t.Fatalf("%q -> %q: contains //", raw, p)
		}
		for s := range strings.SplitSeq(p, "/") {
			if s == "." || s == ".." {
				t.Fatalf("%q -> %q: dot segment", raw, p)
			}
		}
		// path_charset: ascii refuses exactly the non-ASCII paths; nfkc
		// accepts only paths NFKC leaves as they are, and never panics.
		ascii := true
		for i := 0; i < len(p); i++ {
			ascii = ascii && p[i] < 0x80
		}
		if err := CheckPathCharset(p, "ascii"); (err == nil) != ascii {
			t.Fatalf("%q: ascii check %v", p, err)
		}
		if err := CheckPathCharset(p, "nfkc"); err == nil && norm.NFKC.String(p) != p {
			t.Fatalf("%q: nfkc check passed a path NFKC changes", p)
		}
		if strings.ContainsAny(p, "\\;\x00") {
			t.Fatalf("%q -> %q: forbidden byte", raw, p)
		}
		again, err := NormalizePath(EscapePath(p))
		if err != nil || again != p {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, p, again, err)
		}
		if !strings.Contains(p, "%") {
			if again, err := NormalizePath(p); err != nil || again != p {
				t.Fatalf("not idempotent on decoded form: %q -> %q -> %q (%v)", raw, p, again, err)
			}
		}
	})
}

func TestCheckQuery(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{"", true},
		{"download=1&a=b", true},
		{"q=a%20b&q=c", true},
		{"download=1;a=b", false}, // Go drops the pair; Rack 2 or old parse_qs keep download=1
		{"a=%zz", false},
		{"a=%", false},
	} {
		err := CheckQuery(tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("CheckQuery(%q) = %v, want ok=%v", tc.raw, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrAmbiguousPath) {
			t.Errorf("CheckQuery(%q): %v is not ErrAmbiguousPath", tc.raw, err)
		}
	}
}

// TestCleanPathIsNormal: the paths the fast path returns unchanged, and
// the ones it leaves to the general case, which normalises them.
func TestCleanPathIsNormal(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		clean bool
	}{
		{"/", true}, {"/a/b", true}, {"/a/b/", true}, {"/files/report-2026.pdf", true}, {"/a.b/..c/.d", true},
		{"", false}, {"a", false}, {"//", false}, {"/a//b", false}, {"/a/./b", false}, {"/a/..", false},
		{"/a/.", false}, {"/./", false}, {"/a%20b", false}, {"/a b", false}, {"/a;b", false}, {"/a\\b", false},
		{"/café", false}, {"/a\x7f", false},
	} {
		if got := cleanPath(tc.raw); got != tc.clean {
			t.Errorf("cleanPath(%q) = %v, want %v", tc.raw, got, tc.clean)
			continue
		}
		if tc.clean {
			if p, err := normalizePath(tc.raw); err != nil || p != tc.raw {
				t.Errorf("clean %q: general case gives %q, %v", tc.raw, p, err)
			}
		}
	}
}

// FuzzCheckQuery: CheckQuery refuses exactly the queries url.ParseQuery
// refuses.
func FuzzCheckQuery(f *testing.F) {
	for _, s := range []string{"", "a=1", "a=1&b=2", "a=%41", "a=%4", "a%3=b", "a=1;b=2", "a=%zz", "&&", "=",
		"a=b=%41", "%", "a+b=c+d", strings.Repeat("a&", 1200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, perr := url.ParseQuery(raw)
		if err := CheckQuery(raw); (err == nil) != (perr == nil) {
			t.Fatalf("CheckQuery(%q) = %v, url.ParseQuery: %v", raw, err, perr)
		}
	})
}
