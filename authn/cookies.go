package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/godebugprobe"
)

// Cookie sizes: browsers keep at least 4096 bytes per cookie, name and
// attributes included.
const (
	chunkSize = 3800
	maxChunks = 8
)

// ErrTooLarge is returned when a session does not fit in maxChunks cookies
// (use server-side sessions then).
var ErrTooLarge = errors.New("authn: session too large for cookies")

func (a *Authn) cookieName(base string) string {
	if a.secure {
		return "__Host-" + base
	}
	return base
}

// sessionCookie is the session cookie's name (made once, in New: the
// prefixed name is a concatenation, read on every request).
func (a *Authn) sessionCookie() string {
	if a.ownSession != "" {
		return a.ownSession
	}
	return a.cookieName(a.o.Session.Cookie)
}

func (a *Authn) newCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   a.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

func (a *Authn) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, a.newCookie(name, "", -1))
}

// readChunked joins a value written by writeChunked.
func readChunked(r *http.Request, name string) (string, bool) {
	v, ok := cookieValue(r, name)
	if !ok || v == "" {
		return "", false
	}
	n, first, chunked := strings.Cut(v, "~")
	if !chunked {
		return v, true
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 2 || count > maxChunks {
		return "", false
	}
	var b strings.Builder
	b.WriteString(first)
	for i := 1; i < count; i++ {
		ci, ok := cookieValue(r, name+"-"+strconv.Itoa(i))
		if !ok {
			return "", false
		}
		b.WriteString(ci)
	}
	return b.String(), true
}

// cookieValue is r.Cookie(name).Value, read where it stands in the
// Cookie header: r.Cookie builds a *Cookie (and its slice) for a session
// check on every request. It follows net/http's reading exactly (trimmed
// parts, the first cookie of that name with a valid value, surrounding
// quotes removed); a header with very many cookies, or any while
// GODEBUG httpcookiemaxnum is set below fastCookies, is left to r.Cookie,
// which enforces net/http's limit on their number (FuzzCookieValue and
// TestCookieValueHonorsCookieLimit hold the two together).
func cookieValue(r *http.Request, name string) (string, bool) {
	lines := r.Header["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if n > fastCookies || !cookieLimit.OK() {
		c, err := r.Cookie(name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// fastCookies is the number of cookies up to which cookieValue reads a
// Cookie header itself.
const fastCookies = 1000

// cookieLimit is whether net/http's limit on the cookies of a request
// (the default 3000, or GODEBUG httpcookiemaxnum, from the environment or
// the binary's default) lets fastCookies through: set lower, r.Cookie
// reads no cookie at all from a header past it, and cookieValue leaves
// every header to r.Cookie.
var cookieLimit = godebugprobe.New(func() bool {
	r := &http.Request{Header: http.Header{"Cookie": {strings.Repeat("a=; ", fastCookies-1) + "a="}}}
	_, err := r.Cookie("a")
	return err == nil
})

// validCookieValue is net/http's test of a cookie value's bytes. A
// session cookie is some 500 bytes, checked on every request: eight bytes
// are tested at a time (cookie8), and only a word that fails is looked at
// byte by byte.
func validCookieValue(v string) bool {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		w := v[i : i+8]
		if !cookie8(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56) {
			break
		}
	}
	for ; i < len(v); i++ {
		if !validCookieByte(v[i]) {
			return false
		}
	}
	return true
}

// validCookieByte is net/http's validCookieValueByte.
func validCookieByte(b byte) bool {
	return 0x20 <= b && b < 0x7f && b != '"' && b != ';' && b != '\\'
}

// cookie8 reports whether each of the eight bytes in x passes
// validCookieByte. The tests are the exact "has a byte below n" and "has a
// zero byte" word tricks (exact for bytes below 0x80, which the first test
// makes sure of); internal/jsonenc's plain8 is the same idea.
func cookie8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := func(x uint64, n uint64) uint64 { return (x - ones*n) & ^x & highs }
	zero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return x&highs == 0 && below(x, 0x20)|zero(x^(ones*0x7f))|zero(x^(ones*'"'))|zero(x^(ones*';'))|zero(x^(ones*'\\')) == 0
}

// writeChunked sets value as one cookie or, when long, as "N~part0" plus
// name-1 .. name-(N-1), and clears chunks left over from a longer value.
func (a *Authn) writeChunked(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) error {
	parts := []string{value}
	if len(value) > chunkSize {
		parts = nil
		for len(value) > 0 {
			n := min(chunkSize, len(value))
			parts = append(parts, value[:n])
			value = value[n:]
		}
		if len(parts) > maxChunks {
			return fmt.Errorf("%w: %d cookies needed", ErrTooLarge, len(parts))
		}
		parts[0] = strconv.Itoa(len(parts)) + "~" + parts[0]
	}
	for i, p := range parts {
		n := name
		if i > 0 {
			n += "-" + strconv.Itoa(i)
		}
		http.SetCookie(w, a.newCookie(n, p, maxAge))
	}
	if r != nil {
		for i := len(parts); i < maxChunks; i++ {
			n := name + "-" + strconv.Itoa(i)
			if _, err := r.Cookie(n); err == nil {
				a.clearCookie(w, n)
			}
		}
	}
	return nil
}

func (a *Authn) clearChunked(w http.ResponseWriter, r *http.Request, name string) {
	a.clearCookie(w, name)
	for i := 1; i < maxChunks; i++ {
		n := name + "-" + strconv.Itoa(i)
		if _, err := r.Cookie(n); err == nil {
			a.clearCookie(w, n)
		}
	}
}

// sessionRef is what a server-mode cookie holds.
type sessionRef struct {
	ID   string `json:"id"`
	Host string `json:"h"`
}

// errNoSession is an absent, invalid, expired, idle or revoked session.
var errNoSession = errors.New("authn: no valid session")

// loadSession returns the valid session of r for host, errNoSession when
// there is none, or another error when the store could not be asked (the
// caller refuses: fail closed). checkRevoked=false skips the revocation
// list (logout continuation only).
func (a *Authn) loadSession(ctx context.Context, r *http.Request, host string, checkRevoked bool) (*Session, error) {
	s, err := a.openSession(ctx, r, host)
	if err != nil {
		return nil, err
	}
	now := a.now()
	// Checked on every request, cached or not: nothing here is remembered.
	if now.Unix() >= s.Expires {
		return nil, errNoSession
	}
	// The current lifetime bounds the session too: a revocation is kept
	// only that long, so a session sealed under a longer lifetime (before
	// session.lifetime was lowered) must not outlive its revocation entry.
	if now.Sub(time.UnixMilli(s.Created)) >= a.o.Session.Lifetime {
		return nil, errNoSession
	}
	if it := a.o.Session.IdleTimeout; it > 0 && now.Sub(time.Unix(s.LastSeen, 0)) > it {
		return nil, errNoSession
	}
	if checkRevoked {
		if err := a.checkRevoked(ctx, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkRevoked is errNoSession for a revoked session, an error when the
// revocation list could not be asked (fail closed), else nil.
func (a *Authn) checkRevoked(ctx context.Context, s *Session) error {
	rev, err := a.o.Store.Revoked(ctx, s.ID, s.Subject, time.UnixMilli(s.Created))
	if err != nil {
		return fmt.Errorf("revocation check: %w", err)
	}
	if rev {
		return errNoSession
	}
	return nil
}

// openSession returns the session named by r's cookie for host when the
// cookie is authentic (its seal opens for host and has not expired),
// whether or not the session is still usable: idle, past the current
// lifetime, or revoked. Sign-out and a new login use it to learn which
// session this browser holds, so that session can be revoked everywhere;
// nothing else may act on what it returns. errNoSession when there is no
// authentic cookie (or, server mode, no record).
func (a *Authn) openSession(ctx context.Context, r *http.Request, host string) (*Session, error) {
	raw, ok := readChunked(r, a.sessionCookie())
	if !ok {
		return nil, errNoSession
	}
	d, ok := a.decodeSessionCookie(host, a.now(), raw)
	if !ok {
		return nil, errNoSession
	}
	var s *Session
	if a.o.ServerSide {
		var err error
		s, err = a.o.Store.Get(ctx, d.ref)
		if errors.Is(err, ErrNotFound) {
			return nil, errNoSession
		}
		if err != nil {
			return nil, fmt.Errorf("load session: %w", err)
		}
		s.Host = host
	} else {
		c := *d.sess // the cached record is shared: callers get their own copy
		s = &c
	}
	if s.ID == "" || s.Subject == "" {
		return nil, errNoSession
	}
	return s, nil
}

// decodedCookie is what an authentic session cookie holds: the session
// record (cookie mode) or the id it names (server mode), and the seal's
// expiry.
type decodedCookie struct {
	sess    *Session // never modified once cached
	ref     string
	sealExp int64 // unix seconds; the value is valid before it
}

// sessionCacheSize bounds the decoded-cookie cache; values longer than
// sessionCacheMaxValue (chunked sessions with very large claim sets) are
// decoded every time, so the cache stays within a few tens of MB.
const (
	sessionCacheSize     = 8192
	sessionCacheMaxValue = 4096
)

// sessionCacheKey is what a decoded session cookie is cached under: the
// host and the exact value. The map compares both in full on a hit, so a
// hit is the same bytes, already proven authentic for this host (no digest
// to compute per request, and none to collide).
type sessionCacheKey struct{ host, value string }

// decodeSessionCookie opens and decodes a session cookie value for host.
// Opening (base64, AES-GCM, JSON) is the costly part of a request's
// authentication, and a browser sends the same value until the cookie is
// rewritten, so the result is cached under host and value. Only the
// seal's own expiry is remembered with it; lifetime, idle time and
// revocation are judged by the caller on every request.
func (a *Authn) decodeSessionCookie(host string, now time.Time, raw string) (decodedCookie, bool) {
	cacheable := len(raw) <= sessionCacheMaxValue
	key := sessionCacheKey{host, raw}
	if cacheable {
		if d, ok := a.sessions.get(key); ok {
			if now.Unix() < d.sealExp {
				return d, true
			}
			a.sessions.remove(key)
			return decodedCookie{}, false
		}
	}
	plain, exp, err := a.seal.openExp("session", host, now, raw)
	if err != nil {
		return decodedCookie{}, false
	}
	d := decodedCookie{sealExp: exp.Unix()}
	if a.o.ServerSide {
		var ref sessionRef
		if err := json.Unmarshal(plain, &ref); err != nil || ref.Host != host || ref.ID == "" {
			return decodedCookie{}, false
		}
		d.ref = ref.ID
	} else {
		s := &Session{}
		if err := json.Unmarshal(plain, s); err != nil || s.Host != host {
			return decodedCookie{}, false
		}
		// Callers share these slices: clipped, an append cannot write into
		// the cached record.
		s.Groups, s.Roles, s.AMR = slices.Clip(s.Groups), slices.Clip(s.Roles), slices.Clip(s.AMR)
		d.sess = s
	}
	if cacheable {
		// Copies: raw is a piece of the request's Cookie line, which may be
		// much longer than the value (up to the header limit).
		a.sessions.put(sessionCacheKey{strings.Clone(host), strings.Clone(raw)}, d)
	}
	return d, true
}

// saveSession writes s for host: the sealed record (cookie mode) or the
// record in the Store and a sealed reference (server mode).
func (a *Authn) saveSession(ctx context.Context, w http.ResponseWriter, r *http.Request, host string, s *Session) error {
	exp := time.Unix(s.Expires, 0)
	maxAge := int(exp.Sub(a.now()).Seconds())
	if maxAge <= 0 {
		return errNoSession
	}
	var plain []byte
	var err error
	if a.o.ServerSide {
		rec := *s
		rec.Host = ""
		if err := a.o.Store.Put(ctx, &rec, exp.Sub(a.now())); err != nil {
			return fmt.Errorf("store session: %w", err)
		}
		plain, err = json.Marshal(sessionRef{ID: s.ID, Host: host})
	} else {
		c := *s
		c.Host = host
		if host != a.central {
			c.IDToken = "" // only the central host continues logout at the IdP
		}
		plain, err = json.Marshal(&c)
	}
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	return a.writeChunked(w, r, a.sessionCookie(), a.seal.seal("session", host, exp, plain), maxAge)
}

// touch keeps an active session from idling out. It rewrites the cookie
// (or the record) at most once per refresh interval.
func (a *Authn) touch(ctx context.Context, w http.ResponseWriter, r *http.Request, s *Session) error {
	if !a.touchDue(s) {
		return nil
	}
	s.LastSeen = a.now().Unix()
	return a.saveSession(ctx, w, r, s.Host, s)
}

// touchDue reports whether s's LastSeen should be refreshed now: an idle
// timeout is set and the last refresh is older than the refresh interval
// (a tenth of the idle timeout, at most a minute).
func (a *Authn) touchDue(s *Session) bool {
	it := a.o.Session.IdleTimeout
	if it <= 0 {
		return false
	}
	every := min(it/10, time.Minute)
	return a.now().Sub(time.Unix(s.LastSeen, 0)) >= every
}

// touchRecord keeps a server-mode session active from a forward-auth
// check, rate-limited like touch: only the stored record is rewritten (the
// cookie names it and need not change). In cookie mode it does nothing:
// the refreshed copy is a cookie, and a forward-auth answer has no safe
// way to reach the browser (see docs/authn.md), so such sessions idle out
// unless the user also uses a host served directly.
func (a *Authn) touchRecord(ctx context.Context, s *Session) error {
	if !a.o.ServerSide || !a.touchDue(s) {
		return nil
	}
	now := a.now()
	ttl := time.Unix(s.Expires, 0).Sub(now)
	if ttl <= 0 {
		return nil
	}
	rec := *s
	rec.Host = ""
	rec.LastSeen = now.Unix()
	if err := a.o.Store.Put(ctx, &rec, ttl); err != nil {
		return fmt.Errorf("refresh session: %w", err)
	}
	s.LastSeen = rec.LastSeen
	return nil
}

// The bind cookie ties an SSO code to the browser that asked for it.
type bindState struct {
	Value  string `json:"v"`
	Return string `json:"rd"`
}

func (a *Authn) bindCookie(id string) string { return a.cookieName("gh_sso_" + id) }

// The login cookie carries the OIDC flow's secrets from login to callback.
type loginState struct {
	State    string `json:"st"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"rd"`
	Bind     string `json:"b,omitempty"` // bind id "." hash, for a route host
	WantMFA  bool   `json:"mfa,omitempty"`
	StepUp   bool   `json:"su,omitempty"`
	PrevSID  string `json:"ps,omitempty"`
	// Started is when a step-up login began (unix seconds): an auth_time
	// from before it means the IdP did not authenticate again.
	Started int64 `json:"t,omitempty"`
}

func (a *Authn) loginCookie(state string) string {
	if len(state) > 8 {
		state = state[:8]
	}
	return a.cookieName("gh_login_" + state)
}

// IsOwnCookie reports whether a cookie name is one of Gatehouse's: the
// session cookie and its chunks, login and bind cookies. Upstreams never
// see them.
func (a *Authn) IsOwnCookie(name string) bool {
	sc := a.ownSession
	return name == sc || (strings.HasPrefix(name, sc) && strings.HasPrefix(name[len(sc):], "-")) ||
		strings.HasPrefix(name, a.ownLogin) || strings.HasPrefix(name, a.ownBind)
}

// StripCookies removes Gatehouse's cookies from the Cookie headers of h,
// keeping the application's own.
func (a *Authn) StripCookies(h http.Header) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	if len(vals) == 1 && !a.hasOwnCookie(vals[0]) {
		return // nothing to remove: the line goes on as it came
	}
	var kept []string
	for _, line := range vals {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			// Trimmed as net/http trims it: "name =v" is read as name.
			if part == "" || a.IsOwnCookie(strings.TrimSpace(name)) {
				continue
			}
			kept = append(kept, part)
		}
	}
	delete(h, "Cookie")
	if len(kept) > 0 {
		h["Cookie"] = []string{strings.Join(kept, "; ")}
	}
}

// hasOwnCookie reports whether a Cookie line holds one of Gatehouse's
// cookies, or an empty part (both make StripCookies rewrite the line).
func (a *Authn) hasOwnCookie(line string) bool {
	for part := range strings.SplitSeq(line, ";") {
		part = strings.TrimSpace(part)
		name, _, _ := strings.Cut(part, "=")
		if part == "" || a.IsOwnCookie(strings.TrimSpace(name)) {
			return true
		}
	}
	return false
}
