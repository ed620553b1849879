package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults (docs/configuration.md lists them all; a test keeps the two in step).
const (
	DefaultListen               = ":8443"
	DefaultAdminListen          = "127.0.0.1:9090"
	DefaultTLSMode              = "local"
	DefaultACMEDirectory        = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultSessionCookie        = "_gatehouse"
	DefaultSessionStore         = "cookie"
	DefaultAuditDurability      = "batch"
	DefaultAnomalyTimezone      = "UTC"
	DefaultAnomalyNight         = "22:00-06:00"
	DefaultOnStoreError         = "fail_closed"
	DefaultAnomalyStore         = "memory"
	DefaultLogLevel             = "info"
	DefaultLogFormat            = "json"
	DefaultRouteMFA             = "optional"
	DefaultRulePer              = "user"
	DefaultReportFormat         = "html"
	DefaultHeaderUser           = "X-Gatehouse-User"
	DefaultHeaderEmail          = "X-Gatehouse-Email"
	DefaultHeaderGroups         = "X-Gatehouse-Groups"
	DefaultHeaderRoles          = "X-Gatehouse-Roles"
	DefaultAssertionHeader      = "X-Gatehouse-Assertion"
	DefaultPolicyDir            = "./policies"
	DefaultAuditDir             = "./data/audit"
	DefaultAuditKeyFile         = "./data/audit.key"
	DefaultLocalCADir           = "./data/ca"
	DefaultACMEStorage          = "./data/certs"
	DefaultSegmentSize     Size = 64 << 20
)

// DefaultAMRAny are the RFC 8176 amr values that count as MFA by default.
func DefaultAMRAny() []string { return []string{"mfa", "otp", "hwk", "swk", "fpt", "sms"} }

// DefaultScopes are the OIDC scopes requested by default.
func DefaultScopes() []string { return []string{"openid", "email", "profile"} }

// DefaultClaims maps each identity attribute to the ID-token claim read for
// it by default (dotted paths reach into nested claims).
func DefaultClaims() map[string]string {
	return map[string]string{"email": "email", "name": "name", "username": "preferred_username",
		"groups": "groups", "roles": "roles"}
}

// DefaultAllowedAlgs are the ID-token signature algorithms accepted by default.
func DefaultAllowedAlgs() []string { return []string{"RS256", "ES256"} }

// Default durations.
const (
	DefaultMFAMaxAge          = Duration(12 * time.Hour)
	DefaultSessionLifetime    = Duration(12 * time.Hour)
	DefaultSessionIdle        = Duration(time.Hour)
	DefaultRedisTimeout       = Duration(3 * time.Second)
	DefaultPolicyTimeout      = Duration(50 * time.Millisecond)
	DefaultCheckpointInterval = Duration(time.Second)
	DefaultGroupCommit        = Duration(10 * time.Millisecond)
	DefaultBlockFor           = Duration(time.Hour)
	DefaultMinHistory         = Duration(7 * 24 * time.Hour)
	DefaultAssertionTTL       = Duration(time.Minute)
	DefaultReadHeaderTimeout  = Duration(10 * time.Second)
	DefaultIdleTimeout        = Duration(120 * time.Second)
	DefaultUpstreamDial       = Duration(10 * time.Second)
	DefaultUpstreamHeader     = Duration(60 * time.Second)
	DefaultShutdownTimeout    = Duration(30 * time.Second)
)

// applyDefaults fills every key that is absent from the file and still zero.
// A key written explicitly (even as "" or 0) keeps its value, so Validate can
// say it is wrong instead of silently replacing it.
func applyDefaults(c *Config) {
	absent := func(path string) bool { _, ok := c.lines[path]; return !ok }
	str := func(path string, p *string, v string) {
		if *p == "" && absent(path) {
			*p = v
		}
	}
	dur := func(path string, p *Duration, v Duration) {
		if *p == 0 && absent(path) {
			*p = v
		}
	}
	list := func(path string, p *[]string, v []string) {
		if *p == nil && absent(path) {
			*p = v
		}
	}

	str("listen", &c.Listen, DefaultListen)
	str("admin_listen", &c.AdminListen, DefaultAdminListen)

	str("tls.mode", &c.TLS.Mode, DefaultTLSMode)
	str("tls.local_dir", &c.TLS.LocalDir, DefaultLocalCADir)
	str("tls.acme.directory", &c.TLS.ACME.Directory, DefaultACMEDirectory)
	str("tls.acme.storage", &c.TLS.ACME.Storage, DefaultACMEStorage)

	list("oidc.scopes", &c.OIDC.Scopes, DefaultScopes())
	list("oidc.allowed_algs", &c.OIDC.AllowedAlgs, DefaultAllowedAlgs())
	if c.OIDC.Claims == nil {
		c.OIDC.Claims = map[string]string{}
	}
	for k, v := range DefaultClaims() {
		if _, ok := c.OIDC.Claims[k]; !ok {
			c.OIDC.Claims[k] = v
		}
	}

	list("mfa.amr_any", &c.MFA.AMRAny, DefaultAMRAny())
	dur("mfa.max_age", &c.MFA.MaxAge, DefaultMFAMaxAge)

	str("session.cookie", &c.Session.Cookie, DefaultSessionCookie)
	dur("session.lifetime", &c.Session.Lifetime, DefaultSessionLifetime)
	dur("session.idle_timeout", &c.Session.IdleTimeout, DefaultSessionIdle)
	str("session.store", &c.Session.Store, DefaultSessionStore)

	dur("redis.timeout", &c.Redis.Timeout, DefaultRedisTimeout)

	str("policy.dir", &c.Policy.Dir, DefaultPolicyDir)
	dur("policy.timeout", &c.Policy.Timeout, DefaultPolicyTimeout)

	str("audit.dir", &c.Audit.Dir, DefaultAuditDir)
	str("audit.signing_key_file", &c.Audit.SigningKeyFile, DefaultAuditKeyFile)
	dur("audit.checkpoint_interval", &c.Audit.CheckpointInterval, DefaultCheckpointInterval)
	str("audit.durability", &c.Audit.Durability, DefaultAuditDurability)
	dur("audit.group_commit", &c.Audit.GroupCommit, DefaultGroupCommit)
	if c.Audit.SegmentSize == 0 && absent("audit.segment_size") {
		c.Audit.SegmentSize = DefaultSegmentSize
	}
	for i := range c.Audit.Reports {
		str(idx("audit.reports", i)+".format", &c.Audit.Reports[i].Format, DefaultReportFormat)
	}

	str("anomaly.timezone", &c.Anomaly.Timezone, DefaultAnomalyTimezone)
	str("anomaly.on_store_error", &c.Anomaly.OnStoreError, DefaultOnStoreError)
	str("anomaly.night", &c.Anomaly.Night, DefaultAnomalyNight)
	str("anomaly.store", &c.Anomaly.Store, DefaultAnomalyStore)
	dur("anomaly.block_for", &c.Anomaly.BlockFor, DefaultBlockFor)
	for i := range c.Anomaly.Rules {
		p := idx("anomaly.rules", i)
		str(p+".per", &c.Anomaly.Rules[i].Per, DefaultRulePer)
		dur(p+".min_history", &c.Anomaly.Rules[i].MinHistory, DefaultMinHistory)
	}

	str("identity.headers.user", &c.Identity.Headers.User, DefaultHeaderUser)
	str("identity.headers.email", &c.Identity.Headers.Email, DefaultHeaderEmail)
	str("identity.headers.groups", &c.Identity.Headers.Groups, DefaultHeaderGroups)
	str("identity.headers.roles", &c.Identity.Headers.Roles, DefaultHeaderRoles)
	str("identity.assertion.header", &c.Identity.Assertion.Header, DefaultAssertionHeader)
	dur("identity.assertion.ttl", &c.Identity.Assertion.TTL, DefaultAssertionTTL)

	str("log.level", &c.Log.Level, DefaultLogLevel)
	str("log.format", &c.Log.Format, DefaultLogFormat)
	if absent("log.access") {
		c.Log.Access = true
	}

	dur("timeouts.read_header", &c.Timeouts.ReadHeader, DefaultReadHeaderTimeout)
	dur("timeouts.idle", &c.Timeouts.Idle, DefaultIdleTimeout)
	dur("timeouts.upstream_dial", &c.Timeouts.UpstreamDial, DefaultUpstreamDial)
	dur("timeouts.upstream_response_header", &c.Timeouts.UpstreamHeader, DefaultUpstreamHeader)
	dur("timeouts.shutdown", &c.Timeouts.Shutdown, DefaultShutdownTimeout)

	for i := range c.Routes {
		str(idx("routes", i)+".mfa", &c.Routes[i].MFA, DefaultRouteMFA)
	}
}

func idx(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// pathFields lists every key that holds a filesystem path, with its field path.
func pathFields(c *Config) map[string]*string {
	m := map[string]*string{
		"admin_token_file":            &c.AdminTokenFile,
		"tls.cert_file":               &c.TLS.CertFile,
		"tls.key_file":                &c.TLS.KeyFile,
		"tls.local_dir":               &c.TLS.LocalDir,
		"tls.acme.storage":            &c.TLS.ACME.Storage,
		"tls.acme.ca_root":            &c.TLS.ACME.CARoot,
		"oidc.client_secret_file":     &c.OIDC.ClientSecretFile,
		"oidc.ca_root":                &c.OIDC.CARoot,
		"redis.password_file":         &c.Redis.PasswordFile,
		"policy.dir":                  &c.Policy.Dir,
		"anomaly.state_file":          &c.Anomaly.StateFile,
		"policy.shadow_dir":           &c.Policy.ShadowDir,
		"audit.dir":                   &c.Audit.Dir,
		"audit.signing_key_file":      &c.Audit.SigningKeyFile,
		"audit.publish.file":          &c.Audit.Publish.File,
		"audit.encryption_key_file":   &c.Audit.EncryptionKeyFile,
		"identity.assertion.key_file": &c.Identity.Assertion.KeyFile,
	}
	for i := range c.Session.SecretFiles {
		m[idx("session.secret_files", i)] = &c.Session.SecretFiles[i]
	}
	for i := range c.Audit.Reports {
		m[idx("audit.reports", i)+".deliver.dir"] = &c.Audit.Reports[i].Deliver.Dir
	}
	for i, a := range c.Anomaly.Alerts {
		if a.Webhook != nil {
			m[idx("anomaly.alerts", i)+".webhook.secret_file"] = &a.Webhook.SecretFile
		}
	}
	return m
}

// resolvePaths makes every relative path relative to dir (the config file's).
func resolvePaths(c *Config, dir string) {
	for _, p := range pathFields(c) {
		*p = resolve(dir, *p)
	}
}

func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// readSecrets reads each *_file secret into its Secret field.
func readSecrets(c *Config, dir string, errs *errorList) {
	type pair struct {
		inline, file string
		secret       *Secret
		path         string
	}
	pairs := []pair{
		{"admin_token", "admin_token_file", &c.AdminToken, c.AdminTokenFile},
		{"oidc.client_secret", "oidc.client_secret_file", &c.OIDC.ClientSecret, c.OIDC.ClientSecretFile},
		{"redis.password", "redis.password_file", &c.Redis.Password, c.Redis.PasswordFile},
	}
	for i, a := range c.Anomaly.Alerts {
		if a.Webhook != nil {
			p := idx("anomaly.alerts", i) + ".webhook."
			pairs = append(pairs, pair{p + "secret", p + "secret_file", &a.Webhook.Secret, a.Webhook.SecretFile})
		}
	}
	for _, p := range pairs {
		if p.path == "" {
			continue
		}
		if *p.secret != "" {
			errs.add(p.file, "%s and %s are both set; give the secret one way",
				lastElem(p.inline), lastElem(p.file))
			continue
		}
		s, err := readSecretFile(resolve(dir, p.path))
		if err != nil {
			errs.wrap(p.file, err, "%q: %s", p.path, causeOf(err))
			continue
		}
		*p.secret = Secret(s)
	}
}

func lastElem(p string) string { return p[strings.LastIndexByte(p, '.')+1:] }

// errEmptySecret is returned for a secret file holding only whitespace.
var errEmptySecret = fmt.Errorf("secret file is empty")

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// A FIFO or device (/dev/stdin) could block or never end.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return "", err
	}
	if len(b) > 64<<10 {
		return "", fmt.Errorf("secret file larger than 64 KiB")
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errEmptySecret
	}
	return s, nil
}
