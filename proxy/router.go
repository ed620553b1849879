package proxy

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Route is one compiled entry of the routing table: everything the pipeline
// and the upstream need, resolved once when the config is loaded.
type Route struct {
	Info         RouteInfo
	Target       *url.URL // upstream base URL
	WebSockets   bool
	PreserveHost bool
	// pathCharset is routes[].path_charset ("", "nfkc", "ascii").
	pathCharset string
	downloads   downloadMatcher
	// series caches this route's metrics (resolved on its first request).
	series atomic.Pointer[routeMetrics]
}

// metrics returns the route's series in m, resolved once per route.
func (rt *Route) metrics(m *metrics) *routeMetrics {
	if rm := rt.series.Load(); rm != nil && rm.m == m {
		return rm
	}
	rm := m.forRoute(rt.Info.Name)
	rt.series.Store(rm)
	return rm
}

// Router maps a request's Host and normalised path to a Route. It is built
// once from a config and never changes; a reload builds a new one.
type Router struct {
	hosts map[string][]*Route // by lower-case host, longest prefix first
	// charset is the strictest path_charset of each host's routes.
	charset map[string]string
}

// ErrRouteConfig wraps every error NewRouter returns.
var ErrRouteConfig = errors.New("invalid route")

// FieldError is a config problem the proxy finds while compiling a config,
// naming the field as the config does ("routes[2].upstream"), so that
// `gatehouse check` can print it with its file and line.
type FieldError struct {
	Field string
	Msg   string
	Err   error // the class: ErrRouteConfig, ErrAdminToken, ErrTrustedProxy
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap returns the class of the problem.
func (e *FieldError) Unwrap() error { return e.Err }

func routeErr(i int, field, format string, args ...any) error {
	f := fmt.Sprintf("routes[%d]", i)
	if field != "" {
		f += "." + field
	}
	return &FieldError{Field: f, Msg: fmt.Sprintf(format, args...), Err: ErrRouteConfig}
}

// NewRouter compiles the routes of a config. It reports every problem it
// finds (joined), naming the route by index as the config does.
func NewRouter(routes []config.Route) (*Router, error) {
	r := &Router{hosts: make(map[string][]*Route), charset: make(map[string]string)}
	seen := make(map[string]int)
	var errs []error
	for i, cr := range routes {
		rt, err := compileRoute(i, cr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key := rt.Info.Host + "\x00" + rt.Info.Prefix
		if j, dup := seen[key]; dup {
			errs = append(errs, routeErr(i, "host", "host %q with path_prefix %q is already routed by routes[%d]", rt.Info.Host, rt.Info.Prefix, j))
			continue
		}
		seen[key] = i
		r.hosts[rt.Info.Host] = append(r.hosts[rt.Info.Host], rt)
		r.charset[rt.Info.Host] = StricterCharset(r.charset[rt.Info.Host], rt.pathCharset)
	}
	for _, list := range r.hosts {
		sort.SliceStable(list, func(a, b int) bool { return len(list[a].Info.Prefix) > len(list[b].Info.Prefix) })
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func compileRoute(i int, cr config.Route) (*Route, error) {
	host := canonicalHost(cr.Host)
	if host == "" {
		return nil, routeErr(i, "host", "required")
	}
	prefix, err := canonicalPrefix(cr.PathPrefix)
	if err != nil {
		return nil, routeErr(i, "path_prefix", "%v", err)
	}
	u, err := url.Parse(cr.Upstream)
	if err != nil {
		return nil, routeErr(i, "upstream", "%q: %v", cr.Upstream, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, routeErr(i, "upstream", "%q: want http:// or https:// with a host", cr.Upstream)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, routeErr(i, "upstream", "%q: no query, fragment or user info allowed", cr.Upstream)
	}
	mfa := cr.MFA
	if mfa == "" {
		mfa = "optional"
	}
	dl, err := newDownloadMatcher(cr.Downloads)
	if err != nil {
		return nil, routeErr(i, "downloads.paths", "%v", err)
	}
	return &Route{
		Info: RouteInfo{
			Name: cr.Name, Host: host, Prefix: prefix, Public: cr.Public,
			MFA: mfa, Upstream: u.String(),
		},
		Target:       u,
		WebSockets:   cr.WebSockets,
		PreserveHost: cr.PreserveHost,
		pathCharset:  cr.PathCharset,
		downloads:    dl,
	}, nil
}

// canonicalHost lower-cases a host and strips a port and a trailing dot.
func canonicalHost(h string) string {
	h = strings.TrimSpace(h)
	// SplitHostPort only where a port may be: its error for a host without
	// one (the usual Host on 443) is an allocation, three per request.
	if i := strings.LastIndexByte(h, ':'); i > strings.LastIndexByte(h, ']') {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// canonicalPrefix makes "/api/" and "/api" both "/api"; "" and "/" mean the
// whole host.
func canonicalPrefix(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	n, err := NormalizePath(p)
	if err != nil || n != p && n != p+"/" && n+"/" != p {
		return "", fmt.Errorf("%q is not a normalised path", p)
	}
	return strings.TrimSuffix(n, "/"), nil
}

// Match returns the route for a Host header and a normalised path, or nil.
// The longest prefix that matches on a segment boundary wins: prefix "/api"
// matches "/api" and "/api/x" but not "/apix".
func (r *Router) Match(host, p string) *Route {
	for _, rt := range r.hosts[canonicalHost(host)] {
		pre := rt.Info.Prefix
		if pre == "" || p == pre || strings.HasPrefix(p, pre) && p[len(pre)] == '/' {
			return rt
		}
	}
	return nil
}

// Routes returns every route, ordered by host then longest prefix.
func (r *Router) Routes() []*Route {
	hosts := make([]string, 0, len(r.hosts))
	for h := range r.hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var out []*Route
	for _, h := range hosts {
		out = append(out, r.hosts[h]...)
	}
	return out
}

// downloadMatcher decides whether a response counts as a download.
type downloadMatcher struct {
	paths []string
	types []string // lower-case media types, "type/*" allowed
}

func newDownloadMatcher(d config.Downloads) (downloadMatcher, error) {
	var m downloadMatcher
	for _, p := range d.Paths {
		if _, err := path.Match(p, "/"); err != nil {
			return m, fmt.Errorf("%q: %w", p, err)
		}
		// Matched without regard to case (see IsDownload).
		m.paths = append(m.paths, strings.ToLower(p))
	}
	for _, ct := range d.ContentTypes {
		m.types = append(m.types, strings.ToLower(strings.TrimSpace(ct)))
	}
	return m, nil
}

// IsDownload reports whether a response to path p with the given
// Content-Type and Content-Disposition counts as a download: an attachment
// disposition always does; otherwise the route's downloads patterns decide.
//
// Path patterns use path.Match syntax. A pattern without "/" matches the last
// segment ("*.pdf"); a pattern ending in "/*" matches everything below that
// folder at any depth ("/files/*"); any other pattern matches the whole path.
// Case is ignored: on an upstream that ignores it, /x.PDF is the same file
// as /x.pdf, and counting one download too many is the safe side.
func (rt *Route) IsDownload(p, contentType, disposition string) bool {
	if disposition != "" {
		if d, _, err := mime.ParseMediaType(disposition); err == nil && d == "attachment" {
			return true
		} else if err != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(disposition)), "attachment") {
			return true
		}
	}
	if len(rt.downloads.paths) > 0 {
		p = strings.ToLower(p) // no copy when already lower case
	}
	for _, pat := range rt.downloads.paths {
		switch {
		case !strings.Contains(pat, "/"):
			if ok, _ := path.Match(pat, path.Base(p)); ok {
				return true
			}
		case strings.HasSuffix(pat, "/*"):
			dir := strings.TrimSuffix(pat, "/*")
			if ok, _ := path.Match(dir, p); ok {
				continue // the folder itself is not a download
			}
			for d := path.Dir(p); ; d = path.Dir(d) {
				if ok, _ := path.Match(dir, d); ok {
					return true
				}
				if d == "/" || d == "." {
					break
				}
			}
		default:
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		}
	}
	if len(rt.downloads.types) > 0 && contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			mt = strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
		}
		for _, t := range rt.downloads.types {
			if t == mt || strings.HasSuffix(t, "/*") && strings.HasPrefix(mt, strings.TrimSuffix(t, "*")) {
				return true
			}
		}
	}
	return false
}

// PathCharset is the path_charset every path of host is held to: the
// strictest of its routes'. One route's rule covers the whole host, since
// a look-alike of its prefix ("/ａdmin") would otherwise be routed to
// another route of the host, and reach the same upstream folded.
func (r *Router) PathCharset(host string) string { return r.charset[canonicalHost(host)] }

// StricterCharset returns the stricter of two path_charset values
// ("" < "nfkc" < "ascii").
func StricterCharset(a, b string) string {
	rank := map[string]int{"": 0, "nfkc": 1, "ascii": 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
