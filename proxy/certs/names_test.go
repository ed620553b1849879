package certs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in       string
		wildcard bool
		want     string
		ok       bool
	}{
		{"App.Example.COM.", false, "app.example.com", true},
		{"a-b_c.example", false, "a-b_c.example", true},
		{"*.example.com", true, "*.example.com", true},
		{"*.example.com", false, "", false},
		{"*.com", true, "", false},
		{"a.*.example.com", true, "", false},
		{"x*.example.com", true, "", false},
		{"", false, "", false},
		{".", false, "", false},
		{"a..b", false, "", false},
		{"-a.example", false, "", false},
		{"a-.example", false, "", false},
		{"a b.example", false, "", false},
		{"a.example\x00", false, "", false},
		{"127.0.0.1", false, "", false},
		{strings.Repeat("a", 64) + ".example", false, "", false},
		{strings.Repeat("a.", 127) + "a", false, "", false},
		{"ünicode.example", false, "", false},
	}
	for _, tt := range tests {
		got, err := normalizeName(tt.in, tt.wildcard)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("normalizeName(%q, %v) = %q, %v; want %q ok=%v", tt.in, tt.wildcard, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("normalizeName(%q): error %v is not ErrInvalidName", tt.in, err)
		}
	}
}

func TestHostSetMatch(t *testing.T) {
	hs, err := newHostSet([]string{"chat.example.com", "*.apps.example.com", "special.apps.example.com", "127.0.0.1", "[::1]", "Chat.Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs.names) != 3 || len(hs.ips) != 2 {
		t.Fatalf("hostSet = %+v: duplicates not folded or IPs not split", hs)
	}
	tests := []struct {
		sni, want string
		err       error
	}{
		{"chat.example.com", "chat.example.com", nil},
		{"CHAT.example.com.", "chat.example.com", nil},
		{"wiki.apps.example.com", "*.apps.example.com", nil},
		{"special.apps.example.com", "special.apps.example.com", nil}, // exact beats wildcard
		{"a.b.apps.example.com", "", ErrUnknownServerName},            // one label only
		{"apps.example.com", "", ErrUnknownServerName},
		{"example.com", "", ErrUnknownServerName},
		{"evil.com", "", ErrUnknownServerName},
		{"chat.example.com.evil.com", "", ErrUnknownServerName},
		{"*.apps.example.com", "", ErrInvalidName},
		{"127.0.0.1", "", ErrInvalidName},
		{"", "", ErrInvalidName},
	}
	for _, tt := range tests {
		got, err := hs.match(tt.sni)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("match(%q) = %q, %v; want %q, %v", tt.sni, got, err, tt.want, tt.err)
		}
	}
	for _, h := range []struct {
		host string
		ok   bool
	}{
		{"chat.example.com:8080", true}, {"x.apps.example.com", true}, {"127.0.0.1:80", true},
		{"[::1]:80", true}, {"10.0.0.1", false}, {"evil.com", false}, {"", false}, {"[::1", false},
	} {
		if got := hs.allows(h.host); got != h.ok {
			t.Errorf("allows(%q) = %v, want %v", h.host, got, h.ok)
		}
	}
	if !hs.hasIP(netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Error("mapped 127.0.0.1 not recognised")
	}
}

func TestNewHostSetErrors(t *testing.T) {
	for _, h := range []string{"bad host", "*.com", "fe80::1%eth0", "a.*.b.c"} {
		if _, err := newHostSet([]string{h}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("newHostSet(%q) error = %v, want ErrInvalidName", h, err)
		}
	}
}

// FuzzServerName checks SNI normalisation and wildcard matching on any
// input: no panic; a match is always a configured entry; an exact match
// is the normalised SNI itself; a wildcard match is one label more than the
// pattern's base; matching is case-insensitive.
func FuzzServerName(f *testing.F) {
	for _, s := range [][2]string{
		{"a.example.com", "*.example.com"}, {"a.b.example.com", "*.example.com"},
		{"Example.COM.", "example.com"}, {"", "*"}, {"*.example.com", "*.example.com"},
		{"a..example.com", "*.example.com"}, {"xn--bcher-kva.example", "*.example"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, sni, pattern string) {
		hs, err := newHostSet([]string{pattern})
		if err != nil {
			return
		}
		got, err := hs.match(sni)
		if err != nil {
			if !errors.Is(err, ErrUnknownServerName) && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("match(%q) unexpected error %v", sni, err)
			}
			return
		}
		if len(hs.names) != 1 || got != hs.names[0] {
			t.Fatalf("match(%q) = %q, not the configured entry %v", sni, got, hs.names)
		}
		n, err := normalizeName(sni, false)
		if err != nil {
			t.Fatalf("match accepted invalid SNI %q: %v", sni, err)
		}
		if base, ok := strings.CutPrefix(got, "*."); ok {
			if strings.Count(n, ".") != strings.Count(base, ".")+1 || !strings.HasSuffix(n, "."+base) {
				t.Fatalf("wildcard %q matched %q: more or less than one label", got, n)
			}
		} else if n != got {
			t.Fatalf("exact %q matched different name %q", got, n)
		}
		if up, err := hs.match(strings.ToUpper(sni)); err != nil || up != got {
			t.Fatalf("match is case-sensitive: %q -> %q, %v", strings.ToUpper(sni), up, err)
		}
	})
}
