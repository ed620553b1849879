package authn

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// handleForwardAuth is /.gatehouse/auth for nginx auth_request, Traefik
// ForwardAuth and Caddy forward_auth. The caller says which request it asks
// about with X-Original-URL (nginx) or X-Forwarded-Proto/-Host/-Uri
// (Traefik, Caddy), believed only from ForwardAuthTrusted callers.
//
// Answers: 200 with identity headers (and the assertion) to copy upstream,
// and ForwardCookieHeader: the request's cookies without Gatehouse's own,
// for the proxy to send upstream instead of the Cookie header it got;
// 401 when sign-in or MFA is needed (nginx: error_page 401 sends the
// browser to /.gatehouse/start; the Location header says where), or 302 to
// that URL for Traefik/Caddy browser requests; 403 when authorisation
// denies; 503 when session state cannot be read.
func (a *Authn) handleForwardAuth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !a.o.ForwardAuthTrusted(r) {
		http.Error(w, "forward-auth caller not trusted", http.StatusForbidden)
		return
	}
	orig, nginx, ok := originalRequest(r)
	if !ok {
		http.Error(w, "forward-auth: the original URL is missing or invalid", http.StatusBadRequest)
		return
	}
	// nginx: a subrequest sent to an app host ("proxy_set_header Host
	// $host", which follows an absolute-form request line) must ask about
	// that host, or a client could have one host judged and another served
	// (X-Original-URL built from $http_host, the client's Host header).
	// Subrequests to the central host name no app and are not compared.
	if nginx && a.servedHost(r.Host) && !sameHost(r.Host, a.central) && !sameHost(r.Host, orig.Host) {
		http.Error(w, "forward-auth: X-Original-URL names another host than the request", http.StatusForbidden)
		return
	}
	method, ok := originalMethod(r, nginx)
	if !ok {
		http.Error(w, "forward-auth: the original method is missing (nginx: proxy_set_header X-Original-Method $request_method)", http.StatusBadRequest)
		return
	}
	host := strings.ToLower(orig.Host)
	if !a.served(host) || !strings.EqualFold(orig.Scheme, a.scheme) {
		http.Error(w, "forward-auth: host not served", http.StatusForbidden)
		return
	}
	// The path the upstream will resolve ("/pub/../admin" is /admin):
	// routed and judged as such, refused when ambiguous.
	p, err := a.o.NormalizePath(orig.EscapedPath())
	if err != nil {
		http.Error(w, "forward-auth: ambiguous path", http.StatusBadRequest)
		return
	}
	route, known := a.routeFor(host, p)
	if !known {
		// Fail closed: what cannot be matched to a route is not judged.
		http.Error(w, "forward-auth: no route for this host and path", http.StatusForbidden)
		return
	}
	// Judge the original request as if it had come to us directly.
	or := r.Clone(r.Context())
	or.Host = orig.Host
	or.URL = orig
	or.RequestURI = orig.RequestURI()
	or.Method = method
	s, err := a.loadSession(r.Context(), or, host, true)
	if err != nil && !errors.Is(err, errNoSession) {
		http.Error(w, "session state unavailable", http.StatusServiceUnavailable)
		return
	}
	rd := orig.String()
	if s == nil && route.Public {
		// Public routes need no login, but policy still judges them (as
		// in the pipeline), with the anonymous identity.
		if a.o.Authorize != nil {
			v, err := a.o.Authorize(r.Context(), or, route, Identity{})
			if err != nil {
				http.Error(w, "authorisation unavailable", http.StatusForbidden)
				return
			}
			if v.RequireMFA {
				a.forwardChallenge(w, r, or, nginx, a.url(host, PathStart, url.Values{"rd": {rd}, "mfa": {"1"}}), false, true)
				return
			}
			if !v.Allow {
				http.Error(w, "access denied", http.StatusForbidden)
				return
			}
		}
		a.setForwardCookie(w.Header(), r)
		w.WriteHeader(http.StatusOK)
		return
	}
	if s == nil {
		a.forwardChallenge(w, r, or, nginx, a.LoginURL(host, rd), false, false)
		return
	}
	id := a.identity(s)
	needMFA := route.MFARequired
	if a.o.Authorize != nil {
		v, err := a.o.Authorize(r.Context(), or, route, id)
		if err != nil {
			http.Error(w, "authorisation unavailable", http.StatusForbidden)
			return
		}
		if v.StepUp {
			start := a.url(host, PathStart, url.Values{"rd": {rd}, "mfa": {"1"}, "step": {"1"}})
			a.forwardChallenge(w, r, or, nginx, start, true, true)
			return
		}
		if !v.Allow && !v.RequireMFA {
			http.Error(w, "access denied", http.StatusForbidden)
			return
		}
		needMFA = needMFA || v.RequireMFA
	}
	if needMFA && !id.MFA {
		start := a.url(host, PathStart, url.Values{"rd": {rd}, "mfa": {"1"}})
		a.forwardChallenge(w, r, or, nginx, start, true, true)
		return
	}
	// An active user behind the proxy must not idle out (server mode; see
	// touchRecord for cookie mode).
	if err := a.touchRecord(r.Context(), s); err != nil {
		http.Error(w, "session state unavailable", http.StatusServiceUnavailable)
		return
	}
	if err := a.UpstreamHeaders(route.Name, id, w.Header()); err != nil {
		http.Error(w, "assertion unavailable", http.StatusServiceUnavailable)
		return
	}
	a.setForwardCookie(w.Header(), r)
	w.WriteHeader(http.StatusOK)
}

// ForwardCookieHeader is the forward-auth answer's copy of the request's
// Cookie header without Gatehouse's cookies (session, chunks, login and
// SSO state). A proxy in front of an app sends it upstream as Cookie
// (nginx: auth_request_set + proxy_set_header Cookie; Caddy: copy_headers
// X-Gatehouse-Cookie>Cookie), so the app never holds the session cookie,
// which is a bearer credential for every route. Empty when nothing is
// left.
const ForwardCookieHeader = "X-Gatehouse-Cookie"

func (a *Authn) setForwardCookie(h http.Header, r *http.Request) {
	c := http.Header{"Cookie": r.Header.Values("Cookie")}
	a.StripCookies(c)
	h[ForwardCookieHeader] = []string{c.Get("Cookie")}
}

func (a *Authn) forwardChallenge(w http.ResponseWriter, r, orig *http.Request, nginx bool, start string, signedIn, wantMFA bool) {
	if !nginx && !IsAPIClient(orig) {
		http.Redirect(w, r, start, http.StatusFound)
		return
	}
	w.Header().Set("Location", start)
	a.apiChallenge(w, signedIn, wantMFA, start)
}

// originalMethod is the method of the request forward-auth judges. nginx
// sends its auth subrequest as GET and passes the client's headers on, so
// only X-Original-Method (which its config sets) counts there, and its
// absence refuses; Traefik and Caddy set X-Forwarded-Method themselves.
func originalMethod(r *http.Request, nginx bool) (string, bool) {
	m := r.Header.Get("X-Forwarded-Method")
	if nginx {
		m = r.Header.Get("X-Original-Method")
		if m == "" {
			return "", false
		}
	}
	if m == "" {
		return http.MethodGet, true
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; (c < 'A' || c > 'Z') && c != '-' {
			return "", false
		}
	}
	return m, true
}

// servedHost is served for a host written with or without its port.
func (a *Authn) servedHost(h string) bool {
	h = strings.ToLower(h)
	if a.served(h) {
		return true
	}
	if x, _, err := net.SplitHostPort(h); err == nil {
		return a.served(x)
	}
	return false
}

// sameHost compares two hosts as routes do: case, port and a trailing
// dot aside.
func sameHost(a, b string) bool {
	strip := func(h string) string {
		if x, _, err := net.SplitHostPort(h); err == nil {
			h = x
		}
		return strings.TrimSuffix(strings.ToLower(h), ".")
	}
	return strip(a) == strip(b)
}

// originalRequest reads the URL forward-auth asks about. nginx reports
// whether it came as X-Original-URL. A fragment is refused: clients never
// send one, and "/pub#/../secret" would be judged as /pub while an app
// resolving the raw path serves /secret.
func originalRequest(r *http.Request) (u *url.URL, nginx bool, ok bool) {
	if raw := r.Header.Get("X-Original-URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" || strings.Contains(raw, "#") {
			return nil, true, false
		}
		return u, true, true
	}
	proto, host, uri := r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Uri")
	if proto == "" || host == "" {
		return nil, false, false
	}
	if uri == "" {
		uri = "/"
	}
	if !strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, "//") || strings.Contains(uri, "#") {
		return nil, false, false
	}
	u, err := url.Parse(proto + "://" + host + uri)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, false, false
	}
	return u, false, true
}
