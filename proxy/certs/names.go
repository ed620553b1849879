package certs

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
)

// ErrUnknownServerName is returned to a TLS handshake whose server name is
// not one of the configured hosts. Gatehouse never makes or serves a
// certificate for a name it was not told about.
var ErrUnknownServerName = errors.New("certs: server name not configured")

// ErrInvalidName reports a host name or SNI value that is not a valid DNS name.
var ErrInvalidName = errors.New("certs: invalid host name")

const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// normalizeName lower-cases a DNS name, drops one trailing dot and checks it:
// labels of 1-63 letters, digits, '-' or '_', not starting or ending with
// '-', at most 253 bytes in all. wildcard allows a leftmost label of exactly
// "*". IP addresses are not names: callers handle them apart.
func normalizeName(s string, wildcard bool) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > maxNameLen {
		return "", fmt.Errorf("%w: %q: empty or longer than %d bytes", ErrInvalidName, s, maxNameLen)
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	s = string(b)
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if l == "*" {
			if !wildcard || i != 0 || len(labels) < 3 {
				return "", fmt.Errorf("%w: %q: a wildcard must be the whole leftmost label of a name with at least three labels", ErrInvalidName, s)
			}
			continue
		}
		if l == "" || len(l) > maxLabelLen {
			return "", fmt.Errorf("%w: %q: empty label or label longer than %d bytes", ErrInvalidName, s, maxLabelLen)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: %q: label %q starts or ends with '-'", ErrInvalidName, s, l)
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: %q: byte %q not allowed", ErrInvalidName, s, c)
			}
		}
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", fmt.Errorf("%w: %q is an IP address", ErrInvalidName, s)
	}
	return s, nil
}

// matchName reports whether the normalised name matches the normalised
// pattern: equal, or pattern "*.rest" and name is exactly one label
// followed by ".rest" (a wildcard covers one label only, RFC 6125 6.4.3).
func matchName(pattern, name string) bool {
	if pattern == name {
		return true
	}
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	label, tail, ok := strings.Cut(name, ".")
	return ok && label != "" && label != "*" && tail == rest
}

// hostSet is the configured host names and addresses, normalised.
type hostSet struct {
	names []string     // exact names and "*.x.y" patterns, in config order, no duplicates
	ips   []netip.Addr // literal addresses (served when SNI is empty)
}

// hostsRef is the current host set, swapped whole by Manager.SetHosts and
// read by every handshake.
type hostsRef struct{ p atomic.Pointer[hostSet] }

func (r *hostsRef) get() hostSet   { return *r.p.Load() }
func (r *hostsRef) set(hs hostSet) { r.p.Store(&hs) }

// newHostSet normalises hosts; an invalid entry is an error naming it.
func newHostSet(hosts []string) (hostSet, error) {
	var hs hostSet
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			a = a.Unmap()
			if a.Zone() != "" {
				return hostSet{}, fmt.Errorf("%w: %q: zoned addresses cannot be certified", ErrInvalidName, h)
			}
			if !seen[a.String()] {
				seen[a.String()] = true
				hs.ips = append(hs.ips, a)
			}
			continue
		}
		n, err := normalizeName(h, true)
		if err != nil {
			return hostSet{}, err
		}
		if !seen[n] {
			seen[n] = true
			hs.names = append(hs.names, n)
		}
	}
	return hs, nil
}

// match returns the configured entry that covers the SNI value sni: the
// exact name if configured, else a wildcard pattern. An exact entry wins
// over a wildcard so that it can have its own certificate.
func (hs hostSet) match(sni string) (string, error) {
	n, err := normalizeName(sni, false)
	if err != nil {
		return "", err
	}
	for _, p := range hs.names {
		if p == n {
			return p, nil
		}
	}
	for _, p := range hs.names {
		if matchName(p, n) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownServerName, n)
}

// hasIP reports whether a is one of the configured addresses.
func (hs hostSet) hasIP(a netip.Addr) bool {
	a = a.Unmap()
	for _, x := range hs.ips {
		if x == a {
			return true
		}
	}
	return false
}

// hostOnly strips a port from a Host header value ("a.example:8443",
// "[::1]:8443") and the brackets around an IPv6 literal.
func hostOnly(hostport string) string {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.IndexByte(hostport, ']'); i > 0 {
			return hostport[1:i]
		}
		return hostport
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && strings.Count(hostport, ":") == 1 {
		return hostport[:i]
	}
	return hostport
}

// allows reports whether a Host header value names a configured host, by
// name (wildcards included) or by address.
func (hs hostSet) allows(hostport string) bool {
	h := hostOnly(hostport)
	if a, err := netip.ParseAddr(h); err == nil {
		return hs.hasIP(a)
	}
	_, err := hs.match(h)
	return err == nil
}
