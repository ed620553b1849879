package policy

import (
	"net/http"
	"strings"
	"testing"
)

// oldExtraMatch is the per-request comparison HeaderFilter replaced: a
// header n (lower case) is an extra name e when they are equal ignoring
// case, or once '_' is folded to '-' on both sides.
func oldExtraMatch(n string, extra []string) bool {
	nf := strings.ReplaceAll(n, "_", "-")
	for _, e := range extra {
		if strings.EqualFold(e, n) || strings.EqualFold(strings.ReplaceAll(e, "_", "-"), nf) {
			return true
		}
	}
	return false
}

// FuzzHeaderFilter: the filter built once removes exactly the headers the
// old per-request comparison removed, for header names of any spelling.
func FuzzHeaderFilter(f *testing.F) {
	for _, s := range [][2]string{{"X-Gatehouse-User", "x_gatehouse_user"}, {"X_Auth_Email", "X-AUTH-EMAIL"},
		{"X-Id", "X-Idd"}, {"a_b-c", "A-B_C"}, {"X-Identity-Assertion", "x-identity-assertion"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, extra, name string) {
		if !validToken(extra) || !validToken(name) {
			return // names Go's server and config validation let through
		}
		h := http.Header{name: {"v"}}
		got := NewHeaderFilter(extra).FromHTTP(h)
		_, kept := got[strings.ToLower(name)]
		plain := HeadersFromHTTP(h)
		_, keptPlain := plain[strings.ToLower(name)]
		want := keptPlain && !oldExtraMatch(strings.ToLower(name), []string{extra})
		if kept != want {
			t.Fatalf("extra %q, header %q: kept %v, the old comparison %v", extra, name, kept, want)
		}
	})
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
