package config

import (
	"fmt"
	"mime"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // anomaly.timezone must load on hosts without a zoneinfo database
)

// Validate checks the whole config and returns every problem at once as
// Errors (nil if there is none), each with the file:line of the key when the
// config came from Load. It has no side effects: it neither changes c nor
// writes anything; it only looks at files that must already exist (TLS
// certificates in mode files, CA roots, an explicitly set policy.dir).
func (c *Config) Validate() error {
	v := &errorList{file: c.Path, lines: c.lines}
	login := false
	for _, r := range c.Routes {
		if !r.Public {
			login = true
		}
	}
	c.validateListeners(v, login)
	c.validateTLS(v)
	c.validateOIDC(v, login)
	c.validateMFA(v)
	c.validateSession(v, login)
	c.validateRedis(v)
	c.validatePolicy(v)
	c.validateAudit(v)
	c.validateAnomaly(v)
	c.validateIdentity(v)
	c.validateLog(v)
	c.validateRoutes(v)
	return v.err()
}

func (c *Config) has(field string) bool { _, ok := c.lines[field]; return ok }

func oneOf(v *errorList, field, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.add(field, "%q: must be one of %s", val, strings.Join(allowed, ", "))
	}
}

func positive(v *errorList, field string, d Duration) {
	if d <= 0 {
		v.add(field, "must be greater than zero")
	}
}

func required(v *errorList, field, val, why string) bool {
	if val == "" {
		v.add(field, "required%s", why)
		return false
	}
	return true
}

// checkAddr validates a listen or dial address "host:port".
func checkAddr(v *errorList, field, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(field, "%q: not a host:port address", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(field, "%q: invalid port", addr)
		return
	}
	if strings.ContainsAny(host, " /") {
		v.add(field, "%q: invalid host", addr)
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (c *Config) validateListeners(v *errorList, login bool) {
	if required(v, "listen", c.Listen, "") {
		checkAddr(v, "listen", c.Listen)
	}
	if c.HTTPListen != "" {
		checkAddr(v, "http_listen", c.HTTPListen)
	}
	if required(v, "admin_listen", c.AdminListen, "") {
		checkAddr(v, "admin_listen", c.AdminListen)
		if host, _, err := net.SplitHostPort(c.AdminListen); err == nil && !isLoopbackHost(host) && c.AdminToken == "" {
			v.add("admin_listen", "%q is not a loopback address: set admin_token_file so the admin API is not open", c.AdminListen)
		}
	}
	seen := map[string]string{}
	for _, l := range []struct{ field, addr string }{{"listen", c.Listen}, {"http_listen", c.HTTPListen}, {"admin_listen", c.AdminListen}} {
		if l.addr == "" || strings.HasSuffix(l.addr, ":0") {
			continue
		}
		if prev, dup := seen[l.addr]; dup {
			v.add(l.field, "%q is already used by %s", l.addr, prev)
		}
		seen[l.addr] = l.field
	}
	for i, p := range c.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			if pfx.Masked() != pfx {
				v.add(idx("trusted_proxies", i), "%q has host bits set (did you mean %s?)", p, pfx.Masked())
			}
			continue
		}
		if _, err := netip.ParseAddr(p); err == nil {
			continue
		}
		v.add(idx("trusted_proxies", i), "%q: not an IP address or CIDR", p)
	}
	if c.ExternalURL == "" {
		if login {
			v.add("external_url", "required: routes that need login redirect back to external_url + /.gatehouse/callback")
		}
	} else if u, err := url.Parse(c.ExternalURL); err != nil || u.Scheme != "https" || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		v.add("external_url", "%q: must be an absolute https:// URL without query or fragment", c.ExternalURL)
	}
}

func (c *Config) validateTLS(v *errorList) {
	t := c.TLS
	switch t.Mode {
	case "local":
		required(v, "tls.local_dir", t.LocalDir, " with tls.mode local")
	case "files":
		for _, f := range []struct{ field, p string }{{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
			if required(v, f.field, f.p, " with tls.mode files") {
				checkFile(v, f.field, f.p, false)
			}
		}
	case "acme":
		if u, err := url.Parse(t.ACME.Directory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add("tls.acme.directory", "%q: must be an absolute https:// URL", t.ACME.Directory)
		}
		required(v, "tls.acme.storage", t.ACME.Storage, " with tls.mode acme")
		if t.ACME.Email != "" && !strings.Contains(t.ACME.Email, "@") {
			v.add("tls.acme.email", "%q: not an email address", t.ACME.Email)
		}
		if t.ACME.CARoot != "" {
			checkFile(v, "tls.acme.ca_root", t.ACME.CARoot, false)
		}
	default:
		oneOf(v, "tls.mode", t.Mode, "acme", "files", "local")
	}
}

// checkFile reports a path that does not exist or is of the wrong kind.
func checkFile(v *errorList, field, p string, dir bool) {
	st, err := os.Stat(p)
	switch {
	case err != nil:
		v.wrap(field, err, "%q: %s", p, causeOf(err))
	case dir && !st.IsDir():
		v.add(field, "%q: not a directory", p)
	case !dir && st.IsDir():
		v.add(field, "%q: is a directory, want a file", p)
	}
}

var knownAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

func (c *Config) validateOIDC(v *errorList, login bool) {
	o := c.OIDC
	if o.Issuer == "" {
		if login {
			v.add("oidc.issuer", "required: some routes are not public")
		}
	} else if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		v.add("oidc.issuer", "%q: must be an absolute https:// URL (http only on loopback)", o.Issuer)
	}
	if o.ClientID == "" && login {
		v.add("oidc.client_id", "required: some routes are not public")
	}
	if !slices.Contains(o.Scopes, "openid") && (login || c.has("oidc.scopes")) {
		v.add("oidc.scopes", "must include openid")
	}
	for i, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \t") {
			v.add(idx("oidc.scopes", i), "%q: a scope is one word", s)
		}
	}
	for k, claim := range o.Claims {
		f := "oidc.claims." + k
		if _, known := DefaultClaims()[k]; !known {
			v.add(f, "unknown attribute %q (want email, name, username, groups or roles)", k)
			continue
		}
		if claim == "" || slices.Contains(strings.Split(claim, "."), "") {
			v.add(f, "%q: want a claim name or dotted path such as realm_access.roles", claim)
		}
	}
	if o.CARoot != "" {
		checkFile(v, "oidc.ca_root", o.CARoot, false)
	}
	if len(o.AllowedAlgs) == 0 && c.has("oidc.allowed_algs") {
		v.add("oidc.allowed_algs", "must list at least one algorithm")
	}
	for i, a := range o.AllowedAlgs {
		oneOf(v, idx("oidc.allowed_algs", i), a, knownAlgs...)
	}
}

func (c *Config) validateMFA(v *errorList) {
	m := c.MFA
	for _, l := range []struct {
		field string
		vals  []string
	}{{"mfa.amr_any", m.AMRAny}, {"mfa.acr_any", m.ACRAny}} {
		seen := map[string]bool{}
		for i, s := range l.vals {
			f := idx(l.field, i)
			switch {
			case s == "" || strings.ContainsAny(s, " \t"):
				v.add(f, "%q: not a single value", s)
			case seen[s]:
				v.add(f, "%q: listed twice", s)
			}
			seen[s] = true
		}
	}
	if len(m.AMRAny) == 0 && len(m.ACRAny) == 0 {
		for i, r := range c.Routes {
			if r.MFA == "required" {
				v.add(idx("routes", i)+".mfa", "required, but mfa.amr_any and mfa.acr_any are both empty: nothing counts as MFA")
			}
		}
	}
	if m.StepUpACR != "" && len(m.ACRAny) == 0 {
		v.add("mfa.step_up_acr", "set, but mfa.acr_any is empty: the acr obtained by step-up would not count as MFA")
	}
}

// cookie-name token characters (RFC 6265 / RFC 7230 tchar).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 126 || r <= 32 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}

func (c *Config) validateSession(v *errorList, login bool) {
	s := c.Session
	if !isToken(s.Cookie) {
		v.add("session.cookie", "%q: not a valid cookie name", s.Cookie)
	}
	if len(s.SecretFiles) == 0 && login {
		v.add("session.secret_files", "required: at least one key file seals the session cookies (gatehouse keys generate)")
	}
	for i, f := range s.SecretFiles {
		if f == "" {
			v.add(idx("session.secret_files", i), "empty path")
		}
	}
	positive(v, "session.lifetime", s.Lifetime)
	positive(v, "session.idle_timeout", s.IdleTimeout)
	if s.IdleTimeout > s.Lifetime && s.Lifetime > 0 {
		v.add("session.idle_timeout", "%s is longer than session.lifetime %s", s.IdleTimeout, s.Lifetime)
	}
	oneOf(v, "session.store", s.Store, "cookie", "redis")
}

func (c *Config) validateRedis(v *errorList) {
	r := c.Redis
	need := ""
	if c.Session.Store == "redis" {
		need = "session.store"
	} else if c.Anomaly.Store == "redis" {
		need = "anomaly.store"
	}
	switch {
	case len(r.SentinelAddrs) > 0 && len(r.ClusterAddrs) > 0:
		v.add("redis.cluster_addrs", "set together with redis.sentinel_addrs; choose one")
	case len(r.SentinelAddrs) > 0 && r.MasterName == "":
		v.add("redis.master_name", "required with redis.sentinel_addrs")
	case r.Addr == "" && len(r.SentinelAddrs) == 0 && len(r.ClusterAddrs) == 0 && need != "":
		v.at(lineOf(c.lines, need), "redis.addr", "required: %s is redis", need)
	}
	if r.Addr != "" {
		checkAddr(v, "redis.addr", r.Addr)
	}
	for i, a := range r.SentinelAddrs {
		checkAddr(v, idx("redis.sentinel_addrs", i), a)
	}
	for i, a := range r.ClusterAddrs {
		checkAddr(v, idx("redis.cluster_addrs", i), a)
	}
	if r.DB < 0 {
		v.add("redis.db", "must not be negative")
	}
	positive(v, "redis.timeout", r.Timeout)
}

func (c *Config) validatePolicy(v *errorList) {
	p := c.Policy
	if required(v, "policy.dir", p.Dir, "") && c.has("policy.dir") {
		checkFile(v, "policy.dir", p.Dir, true)
	}
	positive(v, "policy.timeout", p.Timeout)
	if p.Timeout > Duration(10*time.Second) {
		v.add("policy.timeout", "%s is too long: requests wait for the decision (at most 10s)", p.Timeout)
	}
	if p.ShadowDir != "" {
		checkFile(v, "policy.shadow_dir", p.ShadowDir, true)
	}
}

func checkURL(v *errorList, field, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	if err != nil {
		v.add(field, "%q: invalid URL", raw)
		return
	}
	if !slices.Contains(schemes, u.Scheme) {
		v.add(field, "%q: unsupported scheme", raw)
		return
	}
	if u.Host == "" && u.Scheme != "file" {
		v.add(field, "%q: missing host", raw)
	}
}

func (c *Config) validateAudit(v *errorList) {
	a := c.Audit
	required(v, "audit.dir", a.Dir, "")
	required(v, "audit.signing_key_file", a.SigningKeyFile, "")
	positive(v, "audit.checkpoint_interval", a.CheckpointInterval)
	oneOf(v, "audit.durability", a.Durability, "batch", "always")
	positive(v, "audit.group_commit", a.GroupCommit)
	if a.CheckpointInterval > 0 && a.GroupCommit > a.CheckpointInterval {
		v.add("audit.group_commit", "%s is longer than audit.checkpoint_interval %s", a.GroupCommit, a.CheckpointInterval)
	}
	if a.SegmentSize < 1<<20 {
		v.add("audit.segment_size", "%s is too small (at least 1MiB)", a.SegmentSize)
	}
	if a.Publish.Webhook != "" {
		checkURL(v, "audit.publish.webhook", a.Publish.Webhook, "https", "http")
	}
	if a.Retention != 0 && a.Retention < Duration(24*time.Hour) {
		v.add("audit.retention", "%s is shorter than a day (0 keeps everything)", a.Retention)
	}
	if a.Retention != 0 && a.EncryptionKeyFile == "" {
		v.add("audit.retention", "needs audit.encryption_key_file: retention works by destroying the data keys of encrypted personal fields (records stay verifiable)")
	}
	if a.Backup.URL != "" {
		validateBackup(v, a)
	}
	if a.Backup.Interval < 0 {
		v.add("audit.backup.interval", "must not be negative")
	}
	for i, r := range a.Reports {
		p := idx("audit.reports", i)
		positive(v, p+".every", r.Every)
		oneOf(v, p+".format", r.Format, "html", "csv", "json")
		required(v, p+".deliver.dir", r.Deliver.Dir, "")
	}
}

var anomalyActions = []string{"alert", "step_up", "block_session", "block_user", "revoke"}

func (c *Config) validateAnomaly(v *errorList) {
	a := c.Anomaly
	if a.Timezone == "" {
		v.add("anomaly.timezone", "required (an IANA name such as Europe/Berlin, or UTC)")
	} else if _, err := time.LoadLocation(a.Timezone); err != nil {
		v.add("anomaly.timezone", "%q: unknown time zone", a.Timezone)
	}
	oneOf(v, "anomaly.on_store_error", a.OnStoreError, "fail_closed", "fail_open")
	if _, _, err := ParseNight(a.Night); err != nil {
		v.add("anomaly.night", "%s", err.Error())
	}
	oneOf(v, "anomaly.store", a.Store, "memory", "redis")
	if a.StateFile != "" && a.Store == "redis" {
		v.add("anomaly.state_file", "is for anomaly.store: memory (Redis keeps the state itself)")
	}
	positive(v, "anomaly.block_for", a.BlockFor)
	names := map[string]int{}
	for i, r := range a.Rules {
		p := idx("anomaly.rules", i)
		if r.Name == "" {
			v.add(p+".name", "required")
		} else if first, dup := names[r.Name]; dup {
			v.add(p+".name", "%q already names anomaly.rules[%d]", r.Name, first)
		} else {
			names[r.Name] = i
		}
		if r.When != "" && r.When != "night" {
			v.add(p+".when", "%q: must be empty (any time) or night", r.When)
		}
		positive(v, p+".window", r.Window)
		conds := 0
		for _, n := range []struct {
			key string
			val float64
		}{{"downloads_over", float64(r.DownloadsOver)}, {"bytes_over", float64(r.BytesOver)},
			{"requests_over", float64(r.RequestsOver)}, {"distinct_paths_over", float64(r.DistinctPathsOver)},
			{"above_baseline", r.AboveBaseline}} {
			switch {
			case n.val < 0:
				v.add(p+"."+n.key, "must not be negative")
			case n.val > 0:
				conds++
			}
		}
		if conds == 0 {
			v.add(p, "no condition: set downloads_over, bytes_over, requests_over, distinct_paths_over or above_baseline")
		}
		if r.AboveBaseline > 0 && r.AboveBaseline <= 1 {
			v.add(p+".above_baseline", "%g: a multiple of the usual rate must be above 1", r.AboveBaseline)
		}
		oneOf(v, p+".per", r.Per, "user", "session")
		if len(r.Action) == 0 {
			v.add(p+".action", "required: one or more of %s", strings.Join(anomalyActions, ", "))
		}
		seen := map[string]bool{}
		for j, act := range r.Action {
			if seen[act] {
				v.add(idx(p+".action", j), "%q: listed twice", act)
			}
			seen[act] = true
			oneOf(v, idx(p+".action", j), act, anomalyActions...)
		}
	}
	for i, s := range a.Alerts {
		p := idx("anomaly.alerts", i)
		if s.Webhook == nil {
			v.add(p, "empty alert sink: set webhook")
			continue
		}
		if required(v, p+".webhook.url", s.Webhook.URL, "") {
			checkURL(v, p+".webhook.url", s.Webhook.URL, "https", "http")
		}
		if s.Webhook.Secret == "" {
			v.add(p+".webhook.secret_file", "required: the alert body is signed with HMAC-SHA256")
		}
	}
}

// ParseNight reads a daily window "HH:MM-HH:MM" (it may wrap midnight, as in
// "22:00-06:00") and returns its start and end as offsets from midnight.
func ParseNight(s string) (start, end time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		start, ok = parseClock(a)
	}
	if ok {
		end, ok = parseClock(b)
	}
	if !ok {
		return 0, 0, fmt.Errorf("%q: want HH:MM-HH:MM, e.g. 22:00-06:00", s)
	}
	if start == end {
		return 0, 0, fmt.Errorf("%q: empty window (start equals end)", s)
	}
	return start, end, nil
}

func parseClock(s string) (time.Duration, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || s[0] == '+' || s[3] == '+' {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, true
}

func (c *Config) validateIdentity(v *errorList) {
	h := c.Identity.Headers
	seen := map[string]string{}
	for _, f := range []struct{ field, name string }{
		{"identity.headers.user", h.User}, {"identity.headers.email", h.Email},
		{"identity.headers.groups", h.Groups}, {"identity.headers.roles", h.Roles},
		{"identity.assertion.header", c.Identity.Assertion.Header},
	} {
		if !isToken(f.name) {
			v.add(f.field, "%q: not a valid header name", f.name)
			continue
		}
		canon := strings.ToLower(f.name)
		switch canon {
		case "host", "connection", "cookie", "authorization", "content-length", "transfer-encoding",
			"upgrade", "te", "trailer", "keep-alive", "proxy-authorization", "forwarded", "x-forwarded-for":
			v.add(f.field, "%q: reserved header", f.name)
			continue
		}
		if prev, dup := seen[canon]; dup {
			v.add(f.field, "%q is already used by %s", f.name, prev)
		}
		seen[canon] = f.field
	}
	positive(v, "identity.assertion.ttl", c.Identity.Assertion.TTL)
}

func (c *Config) validateLog(v *errorList) {
	oneOf(v, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(v, "log.format", c.Log.Format, "json", "console")
	positive(v, "timeouts.read_header", c.Timeouts.ReadHeader)
	positive(v, "timeouts.idle", c.Timeouts.Idle)
	positive(v, "timeouts.upstream_dial", c.Timeouts.UpstreamDial)
	positive(v, "timeouts.upstream_response_header", c.Timeouts.UpstreamHeader)
	positive(v, "timeouts.shutdown", c.Timeouts.Shutdown)
}

// checkHost validates a route host: a lowercase DNS name or IP, no port.
func checkHost(v *errorList, field, h string) {
	if h == "" {
		v.add(field, "required")
		return
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return
	}
	if _, _, err := net.SplitHostPort(h); err == nil || strings.Contains(h, ":") {
		v.add(field, "%q: must not contain a port", h)
		return
	}
	if strings.ToLower(h) != h {
		v.add(field, "%q: must be lowercase", h)
		return
	}
	if len(h) > 253 {
		v.add(field, "%q: too long", h)
		return
	}
	for _, label := range strings.Split(h, ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for i := 0; ok && i < len(label); i++ {
			c := label[i]
			ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
		}
		if !ok {
			v.add(field, "%q: not a valid host name", h)
			return
		}
	}
}

func checkUpstream(v *errorList, field, raw string) {
	if raw == "" {
		v.add(field, "required")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.add(field, "%q: invalid URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(field, "%q: unsupported scheme", raw)
	case u.Host == "" || u.Hostname() == "":
		v.add(field, "%q: missing host", raw)
	case u.User != nil:
		v.add(field, "%q: credentials in the URL are not allowed", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		v.add(field, "%q: must not have a query or fragment", raw)
	}
}

// checkPrefix requires a normalised absolute path: the router matches it
// against normalised request paths, so anything else would never match.
func checkPrefix(v *errorList, field, p string) {
	if p == "" {
		return
	}
	if !strings.HasPrefix(p, "/") {
		v.add(field, "%q: must start with /", p)
		return
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != p || strings.ContainsAny(p, "%?#\\\x00") {
		v.add(field, "%q: not a normalised path (no ., .., //, %%, ?, # or \\)", p)
	}
}

func (c *Config) validateRoutes(v *errorList) {
	if len(c.Routes) == 0 {
		v.add("routes", "at least one route is required")
		return
	}
	names := map[string]int{}
	hosts := map[string]int{}
	for i, r := range c.Routes {
		p := idx("routes", i)
		switch {
		case r.Name == "":
			v.add(p+".name", "required")
		case strings.ContainsAny(r.Name, " \t\n/"):
			v.add(p+".name", "%q: no spaces or slashes", r.Name)
		default:
			if first, dup := names[r.Name]; dup {
				v.add(p+".name", "%q already names routes[%d]", r.Name, first)
			} else {
				names[r.Name] = i
			}
		}
		checkHost(v, p+".host", r.Host)
		checkPrefix(v, p+".path_prefix", r.PathPrefix)
		checkUpstream(v, p+".upstream", r.Upstream)
		oneOf(v, p+".mfa", r.MFA, "required", "optional")
		if r.PathCharset != "" {
			oneOf(v, p+".path_charset", r.PathCharset, "nfkc", "ascii")
		}
		if r.Public && r.MFA == "required" {
			v.add(p+".mfa", "required on a public route: public routes have no login")
		}
		key := r.Host + " " + strings.TrimSuffix(r.PathPrefix, "/")
		if first, dup := hosts[key]; dup && r.Host != "" {
			f := p + ".host"
			if r.PathPrefix != "" {
				f = p + ".path_prefix"
			}
			v.add(f, "host %q with path_prefix %q is already routed by routes[%d]", r.Host, r.PathPrefix, first)
		} else {
			hosts[key] = i
		}
		for j, g := range r.Downloads.Paths {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				v.add(idx(p+".downloads.paths", j), "%q: invalid glob pattern", g)
			}
		}
		for j, ct := range r.Downloads.ContentTypes {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || !strings.Contains(mt, "/") {
				v.add(idx(p+".downloads.content_types", j), "%q: not a media type such as application/pdf", ct)
			}
		}
	}
}

// validateBackup checks audit.backup.url: a scheme this build can write
// to (file, s3), a file:// target that is an absolute directory neither
// inside the log nor holding it, an s3:// one without credentials in it.
// Messages quote the URL without its credentials.
func validateBackup(v *errorList, a Audit) {
	shown := RedactURL(a.Backup.URL)
	u, err := url.Parse(a.Backup.URL)
	if err != nil {
		v.add("audit.backup.url", "%q: not a URL", shown)
		return
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			v.add("audit.backup.url", "%q: want file:///absolute/dir (three slashes)", shown)
			return
		}
		if DirsOverlap(a.Dir, u.Path) {
			v.add("audit.backup.url", "%q and audit.dir %q overlap: a backup must be apart from the log it copies (and must survive its disk)", shown, a.Dir)
		}
	case "s3":
		// The parameters are checked where the target is opened
		// (internal/s3target, also run by `gatehouse check`).
		if u.Host == "" {
			v.add("audit.backup.url", "%q: want s3://bucket[/prefix][?endpoint=host:port&region=...]", shown)
		}
		if u.User != nil {
			v.add("audit.backup.url", "credentials do not belong in the URL (it is logged): use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the AWS credentials file or an IAM role")
		}
	default:
		v.add("audit.backup.url", "%q: scheme %q is not supported: file:///dir or s3://bucket", shown, u.Scheme)
	}
}

// DirsOverlap reports whether one directory is the other or inside it
// (relative paths are taken from the working directory).
func DirsOverlap(a, b string) bool {
	abs := func(p string) string {
		if q, err := filepath.Abs(p); err == nil {
			return q
		}
		return filepath.Clean(p)
	}
	inside := func(dir, p string) bool {
		rel, err := filepath.Rel(dir, p)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	a, b = abs(a), abs(b)
	return inside(a, b) || inside(b, a)
}

// RedactURL hides a URL's credentials (user:password@) for messages and
// logs; its query is kept.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "REDACTED@" + raw[i+1:]
			}
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
