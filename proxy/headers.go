package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
)

// headerPolicy decides which client-sent headers never reach an upstream
// and which client addresses are believed when they forward for others.
type headerPolicy struct {
	// exact holds lower-case names with '_' turned into '-'.
	exact map[string]bool
	// prefixes are lower-case name prefixes ("x-forwarded-").
	prefixes []string
	trusted  []netip.Prefix
	// sessionCookie is the Gatehouse session cookie name: it is removed from
	// the Cookie header so applications never see the session token.
	sessionCookie string
}

// spoofable are headers that carry identity or forwarding facts. A client
// could forge any of them, so every client-sent copy is dropped before the
// proxy sets its own.
var spoofable = []string{
	"forwarded", "x-real-ip", "x-client-ip", "true-client-ip", "cf-connecting-ip",
	"x-cluster-client-ip", "fastly-client-ip", "x-original-forwarded-for",
	"x-original-url", "x-rewrite-url", "x-original-uri", "x-original-host",
	"x-remote-user", "remote-user", "x-remote-group", "x-user", "x-email",
	"x-auth-user", "x-authenticated-user", "x-webauth-user", "x-proxy-user",
	// Method overrides: policy judged the request's real method; an
	// upstream must not run another one (GET judged, DELETE executed).
	"x-http-method-override", "x-http-method", "x-method-override",
}

var spoofablePrefixes = []string{"x-forwarded-", "x-gatehouse-", "x-auth-request-", "x-original-forwarded-"}

func newHeaderPolicy(cfg *config.Config) (*headerPolicy, error) {
	hp := &headerPolicy{exact: make(map[string]bool), prefixes: spoofablePrefixes}
	for _, n := range spoofable {
		hp.exact[n] = true
	}
	for _, n := range []string{cfg.Identity.Headers.User, cfg.Identity.Headers.Email,
		cfg.Identity.Headers.Groups, cfg.Identity.Headers.Roles, cfg.Identity.Assertion.Header} {
		if n != "" {
			hp.exact[foldHeader(n)] = true
		}
	}
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	hp.trusted = trusted
	hp.sessionCookie = cfg.Session.Cookie
	if hp.sessionCookie == "" {
		hp.sessionCookie = "_gatehouse"
	}
	return hp, nil
}

// ErrTrustedProxy wraps trusted_proxies errors.
var ErrTrustedProxy = errors.New("invalid trusted proxy")

// parseTrusted reads trusted_proxies: CIDRs or single addresses.
func parseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("trusted_proxies[%d]", i), Msg: fmt.Sprintf("%q is not a CIDR or an IP address", s), Err: ErrTrustedProxy}
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// foldHeader maps a header name to its comparison form: lower case, '_' as
// '-' (many servers treat X_Forwarded_For as X-Forwarded-For).
func foldHeader(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
}

// isSpoofable reports whether a client-sent header must be dropped.
func (hp *headerPolicy) isSpoofable(name string) bool {
	// Fold into a stack buffer: no string allocated per header per request.
	var buf [64]byte
	if t := strings.TrimSpace(name); len(t) <= len(buf) {
		b := buf[:len(t)]
		for i := 0; i < len(t); i++ {
			c := t[i]
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c == '_':
				c = '-'
			case c >= 0x80:
				return hp.isSpoofableFolded(foldHeader(name))
			}
			b[i] = c
		}
		if hp.exact[string(b)] {
			return true
		}
		for _, p := range hp.prefixes {
			if len(b) >= len(p) && string(b[:len(p)]) == p {
				return true
			}
		}
		return false
	}
	return hp.isSpoofableFolded(foldHeader(name))
}

// isSpoofableFolded is isSpoofable for a name already folded.
func (hp *headerPolicy) isSpoofableFolded(f string) bool {
	if hp.exact[f] {
		return true
	}
	for _, p := range hp.prefixes {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

// strip removes every spoofable header from h, whatever its spelling, and
// the Gatehouse session cookie.
func (hp *headerPolicy) strip(h http.Header) {
	for name := range h {
		if hp.isSpoofable(name) {
			delete(h, name)
		}
	}
	hp.stripSessionCookie(h)
}

// gatehouseCookie reports whether a cookie is one of Gatehouse's own: the
// session cookie and its chunks (name_1, name-1), the gh_* login and SSO
// cookies, each also with the __Host- or __Secure- prefix. The authn stage
// strips its cookies too; this holds even when no authn stage is wired.
func (hp *headerPolicy) gatehouseCookie(name string) bool {
	for _, p := range []string{"__Host-", "__Secure-"} {
		if n, ok := strings.CutPrefix(name, p); ok {
			name = n
			break
		}
	}
	c := hp.sessionCookie
	if rest, ok := strings.CutPrefix(name, c); ok && (rest == "" || rest[0] == '_' || rest[0] == '-') {
		return true // the session cookie or one of its chunks (name_1, name-1)
	}
	return strings.HasPrefix(name, "gh_")
}

// stripSetCookies drops upstream Set-Cookie headers that would plant or
// clear one of Gatehouse's own cookies in the browser (session fixation by
// a compromised or careless app).
func (hp *headerPolicy) stripSetCookies(h http.Header) {
	vals := h.Values("Set-Cookie")
	if len(vals) == 0 {
		return
	}
	kept := vals[:0:0]
	for _, v := range vals {
		name, _, _ := strings.Cut(v, "=")
		if !hp.gatehouseCookie(strings.TrimSpace(name)) {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(vals) {
		return
	}
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
}

// stripSessionCookie drops Gatehouse's own cookies from Cookie headers,
// keeping the application's.
func (hp *headerPolicy) stripSessionCookie(h http.Header) {
	vals := h["Cookie"] // canonical: no key to fold
	if len(vals) == 0 {
		return
	}
	var kept []string
	for _, line := range vals {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, _, _ := strings.Cut(part, "=")
			// Trimmed as net/http (and Gatehouse) read it: "name =v" is name.
			if hp.gatehouseCookie(strings.TrimSpace(name)) {
				continue
			}
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}

func (hp *headerPolicy) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range hp.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// connPeerKey is the context key of a connection's connPeer.
type connPeerKey struct{}

// connPeer is a connection's peer address, read once when the connection
// is accepted (http.Server.ConnContext) instead of parsing RemoteAddr for
// every request on it.
type connPeer struct {
	addr netip.Addr
	text string // addr.String()
	raw  string // the RemoteAddr text net/http gives the connection's requests
}

// withConnPeer is the HTTPS server's ConnContext.
func withConnPeer(ctx context.Context, c net.Conn) context.Context {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return ctx
	}
	a := ta.AddrPort().Addr().Unmap()
	return context.WithValue(ctx, connPeerKey{}, &connPeer{addr: a, text: a.String(), raw: ta.String()})
}

// peerOf is remoteAddr(r), and its text when known: from the connection's
// connPeer when r still names that peer, parsed otherwise.
func peerOf(r *http.Request) (netip.Addr, string) {
	if p, ok := r.Context().Value(connPeerKey{}).(*connPeer); ok && p.raw == r.RemoteAddr {
		return p.addr, p.text
	}
	return remoteAddr(r), ""
}

// remoteAddr parses http.Request.RemoteAddr.
func remoteAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// clientIP is the address of the real client: the peer itself, unless the
// peer is a trusted proxy; then X-Forwarded-For is read from the right,
// skipping trusted hops, and the first untrusted address is the client.
//
// A trusted proxy that sends no chain, or one that cannot be read, leaves
// the client unknown (the zero Addr: remote_ip ""). Answering with the
// proxy's own address instead would put every client inside the proxy's
// network — an office CIDR, say — for the policy.
func (hp *headerPolicy) clientIP(r *http.Request) netip.Addr {
	return hp.clientIPOf(r, remoteAddr(r))
}

// clientIPOf is clientIP for a request whose peer address (remoteAddr) is
// already known.
func (hp *headerPolicy) clientIPOf(r *http.Request, peer netip.Addr) netip.Addr {
	if !peer.IsValid() || !hp.isTrusted(peer) {
		return peer
	}
	return chainClient(forwardedFor(r.Header), hp.isTrusted)
}

// chainClient reads X-Forwarded-For hops from the right, skipping trusted
// ones: the first untrusted address (or the leftmost) is the client. An
// empty or unreadable chain gives the zero Addr: unknown.
func chainClient(hops []string, trusted func(netip.Addr) bool) netip.Addr {
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return netip.Addr{} // unreadable chain: the client is unknown
		}
		if !trusted(a) || i == 0 {
			return a
		}
	}
	return netip.Addr{}
}

// parseHop reads one X-Forwarded-For hop: an address, or an address with
// a port ("203.0.113.9:51234", "[2001:db8::1]:443"), as some load
// balancers write it.
func parseHop(hop string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// forwardedFor returns the hops of every X-Forwarded-For header, in order.
// Only the canonical spelling counts: variants are spoofing attempts.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h["X-Forwarded-For"] {
		for hop := range strings.SplitSeq(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	return hops
}

// setForwarded sets X-Forwarded-For/Host/Proto on an outbound request, as
// httputil.ProxyRequest.SetXForwarded does, except that a client's
// X-Forwarded-For and -Proto are kept only when the peer is a trusted
// proxy, and X-Forwarded-Host is always the host Gatehouse routed and
// judged: an app that picks its tenant from it must see that one, not
// whatever a front proxy let a client write.
//
// peer is remoteAddr(in), known the client address the pipeline has
// already formatted, as knownText: the peer's text is reused when it is
// that address.
func (hp *headerPolicy) setForwarded(in *http.Request, out http.Header, peer, known netip.Addr, knownText string) {
	trusted := peer.IsValid() && hp.isTrusted(peer)
	xff := ""
	if trusted {
		xff = strings.Join(forwardedFor(in.Header), ", ")
	}
	if peer.IsValid() {
		if xff != "" {
			xff += ", "
		}
		if peer == known && knownText != "" {
			xff += knownText
		} else {
			xff += peer.String()
		}
	}
	if xff != "" {
		out.Set("X-Forwarded-For", xff)
	}
	host, proto := in.Host, "http"
	if in.TLS != nil {
		proto = "https"
	}
	if trusted {
		if v := in.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
	}
	out.Set("X-Forwarded-Host", host)
	switch proto { // shared values (cap 1: an append copies), no allocation
	case "https":
		out["X-Forwarded-Proto"] = protoHTTPS
	default:
		out["X-Forwarded-Proto"] = protoHTTP
	}
}

var (
	protoHTTPS = []string{"https"}[:1:1]
	protoHTTP  = []string{"http"}[:1:1]
)
