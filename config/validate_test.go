package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func base(t *testing.T) *Config {
	t.Helper()
	c, err := Parse("gatehouse.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("minimal config does not load: %v", err)
	}
	return c
}

func TestValidateTable(t *testing.T) {
	tmp := t.TempDir()
	certFile := filepath.Join(tmp, "cert.pem")
	if err := os.WriteFile(certFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	route := func(c *Config) *Route { return &c.Routes[0] }
	addRoute := func(c *Config, r Route) { c.Routes = append(c.Routes, r) }
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		field  string // "" means the config must be valid
		msg    string
	}{
		{"minimal is valid", func(c *Config) {}, "", ""},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen", "required"},
		{"listen no port", func(c *Config) { c.Listen = "localhost" }, "listen", "not a host:port"},
		{"listen bad port", func(c *Config) { c.Listen = ":99999" }, "listen", "invalid port"},
		{"listen port 0 ok", func(c *Config) { c.Listen = "127.0.0.1:0"; c.AdminListen = "127.0.0.1:0" }, "", ""},
		{"http_listen bad", func(c *Config) { c.HTTPListen = "8080" }, "http_listen", "not a host:port"},
		{"listen clash", func(c *Config) { c.HTTPListen = ":8443" }, "http_listen", "already used by listen"},
		{"admin public without token", func(c *Config) { c.AdminListen = ":9090" }, "admin_listen", "not a loopback"},
		{"admin public with token", func(c *Config) { c.AdminListen = ":9090"; c.AdminToken = "t" }, "", ""},
		{"trusted proxy CIDR ok", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "::1", "fd00::/8"} }, "", ""},
		{"trusted proxy bad", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "ten"} }, "trusted_proxies[1]", "not an IP address or CIDR"},
		{"trusted proxy host bits", func(c *Config) { c.TrustedProxies = []string{"10.1.2.3/8"} }, "trusted_proxies[0]", "did you mean 10.0.0.0/8"},
		{"external_url http", func(c *Config) { c.ExternalURL = "http://gate.example.com" }, "external_url", "https://"},
		{"external_url relative", func(c *Config) { c.ExternalURL = "/gate" }, "external_url", "https://"},
		{"external_url required", func(c *Config) { c.ExternalURL = "" }, "external_url", "required"},
		{"all public: no login settings needed", func(c *Config) {
			c.ExternalURL, c.OIDC.Issuer, c.OIDC.ClientID, c.Session.SecretFiles = "", "", "", nil
			route(c).Public = true
		}, "", ""},
		{"tls mode unknown", func(c *Config) { c.TLS.Mode = "selfsigned" }, "tls.mode", "must be one of acme, files, local"},
		{"tls files missing", func(c *Config) { c.TLS.Mode = "files" }, "tls.cert_file", "required with tls.mode files"},
		{"tls files not found", func(c *Config) {
			c.TLS.Mode, c.TLS.CertFile, c.TLS.KeyFile = "files", certFile, filepath.Join(tmp, "nokey.pem")
		}, "tls.key_file", "no such file"},
		{"tls files dir", func(c *Config) { c.TLS.Mode, c.TLS.CertFile, c.TLS.KeyFile = "files", certFile, tmp }, "tls.key_file", "is a directory"},
		{"tls files ok", func(c *Config) { c.TLS.Mode, c.TLS.CertFile, c.TLS.KeyFile = "files", certFile, certFile }, "", ""},
		{"tls local dir", func(c *Config) { c.TLS.LocalDir = "" }, "tls.local_dir", "required"},
		{"acme ok", func(c *Config) { c.TLS.Mode = "acme"; c.TLS.ACME.Email = "it@example.com" }, "", ""},
		{"acme bad directory", func(c *Config) { c.TLS.Mode = "acme"; c.TLS.ACME.Directory = "acme" }, "tls.acme.directory", "absolute"},
		{"acme bad email", func(c *Config) { c.TLS.Mode = "acme"; c.TLS.ACME.Email = "it" }, "tls.acme.email", "not an email"},
		{"acme ca_root missing", func(c *Config) { c.TLS.Mode = "acme"; c.TLS.ACME.CARoot = filepath.Join(tmp, "no.pem") }, "tls.acme.ca_root", "no such file"},
		{"oidc issuer required", func(c *Config) { c.OIDC.Issuer = "" }, "oidc.issuer", "required"},
		{"oidc issuer http", func(c *Config) { c.OIDC.Issuer = "http://idp.example.com" }, "oidc.issuer", "https"},
		{"oidc issuer http loopback ok", func(c *Config) { c.OIDC.Issuer = "http://127.0.0.1:5556/dex" }, "", ""},
		{"oidc issuer localhost ok", func(c *Config) { c.OIDC.Issuer = "http://dex.localhost:5556" }, "", ""},
		{"oidc client_id", func(c *Config) { c.OIDC.ClientID = "" }, "oidc.client_id", "required"},
		{"oidc scopes openid", func(c *Config) { c.OIDC.Scopes = []string{"email"} }, "oidc.scopes", "must include openid"},
		{"oidc scope spaces", func(c *Config) { c.OIDC.Scopes = []string{"openid", "a b"} }, "oidc.scopes[1]", "one word"},
		{"oidc claim unknown", func(c *Config) { c.OIDC.Claims["team"] = "team" }, "oidc.claims.team", "unknown attribute"},
		{"oidc claim path", func(c *Config) { c.OIDC.Claims["roles"] = "realm_access." }, "oidc.claims.roles", "dotted path"},
		{"oidc alg none", func(c *Config) { c.OIDC.AllowedAlgs = []string{"none"} }, "oidc.allowed_algs[0]", "must be one of"},
		{"oidc alg HS256", func(c *Config) { c.OIDC.AllowedAlgs = []string{"RS256", "HS256"} }, "oidc.allowed_algs[1]", "must be one of"},
		{"mfa duplicate amr", func(c *Config) { c.MFA.AMRAny = []string{"otp", "otp"} }, "mfa.amr_any[1]", "listed twice"},
		{"mfa empty amr value", func(c *Config) { c.MFA.AMRAny = []string{""} }, "mfa.amr_any[0]", "not a single value"},
		{"mfa nothing counts", func(c *Config) { c.MFA.AMRAny = nil; route(c).MFA = "required" }, "routes[0].mfa", "nothing counts as MFA"},
		{"mfa acr only ok", func(c *Config) {
			c.MFA.AMRAny = nil
			c.MFA.ACRAny = []string{"gold"}
			c.MFA.StepUpACR = "gold"
			route(c).MFA = "required"
		}, "", ""},
		{"mfa step_up without acr", func(c *Config) { c.MFA.StepUpACR = "gold" }, "mfa.step_up_acr", "acr_any is empty"},
		{"session cookie", func(c *Config) { c.Session.Cookie = "a;b" }, "session.cookie", "not a valid cookie name"},
		{"session secret files", func(c *Config) { c.Session.SecretFiles = nil }, "session.secret_files", "required"},
		{"session secret file empty", func(c *Config) { c.Session.SecretFiles = []string{""} }, "session.secret_files[0]", "empty path"},
		{"session lifetime", func(c *Config) { c.Session.Lifetime = 0 }, "session.lifetime", "greater than zero"},
		{"session idle > lifetime", func(c *Config) { c.Session.IdleTimeout = Duration(13 * time.Hour) }, "session.idle_timeout", "longer than session.lifetime"},
		{"session store", func(c *Config) { c.Session.Store = "memcached" }, "session.store", "must be one of cookie, redis"},
		{"session redis needs addr", func(c *Config) { c.Session.Store = "redis" }, "redis.addr", "session.store is redis"},
		{"anomaly redis needs addr", func(c *Config) { c.Anomaly.Store = "redis" }, "redis.addr", "anomaly.store is redis"},
		{"redis ok", func(c *Config) { c.Session.Store = "redis"; c.Redis.Addr = "127.0.0.1:6379" }, "", ""},
		{"redis sentinel ok", func(c *Config) {
			c.Session.Store = "redis"
			c.Redis.SentinelAddrs = []string{"10.0.0.1:26379"}
			c.Redis.MasterName = "mymaster"
		}, "", ""},
		{"redis sentinel master", func(c *Config) { c.Redis.SentinelAddrs = []string{"10.0.0.1:26379"} }, "redis.master_name", "required"},
		{"redis sentinel+cluster", func(c *Config) {
			c.Redis.SentinelAddrs, c.Redis.ClusterAddrs, c.Redis.MasterName = []string{"a:1"}, []string{"b:2"}, "m"
		}, "redis.cluster_addrs", "choose one"},
		{"redis addr bad", func(c *Config) { c.Redis.Addr = "redis" }, "redis.addr", "host:port"},
		{"redis db", func(c *Config) { c.Redis.DB = -1 }, "redis.db", "negative"},
		{"policy dir", func(c *Config) { c.Policy.Dir = "" }, "policy.dir", "required"},
		{"policy timeout", func(c *Config) { c.Policy.Timeout = 0 }, "policy.timeout", "greater than zero"},
		{"policy timeout long", func(c *Config) { c.Policy.Timeout = Duration(time.Minute) }, "policy.timeout", "too long"},
		{"policy shadow missing", func(c *Config) { c.Policy.ShadowDir = filepath.Join(tmp, "none") }, "policy.shadow_dir", "no such file"},
		{"policy shadow file", func(c *Config) { c.Policy.ShadowDir = certFile }, "policy.shadow_dir", "not a directory"},
		{"audit durability", func(c *Config) { c.Audit.Durability = "never" }, "audit.durability", "batch, always"},
		{"audit always ok", func(c *Config) { c.Audit.Durability = "always" }, "", ""},
		{"audit dir", func(c *Config) { c.Audit.Dir = "" }, "audit.dir", "required"},
		{"audit key", func(c *Config) { c.Audit.SigningKeyFile = "" }, "audit.signing_key_file", "required"},
		{"audit checkpoint", func(c *Config) { c.Audit.CheckpointInterval = 0 }, "audit.checkpoint_interval", "greater than zero"},
		{"audit segment", func(c *Config) { c.Audit.SegmentSize = 100 }, "audit.segment_size", "too small"},
		{"audit webhook", func(c *Config) { c.Audit.Publish.Webhook = "hooks" }, "audit.publish.webhook", "unsupported scheme"},
		{"audit backup to a directory", func(c *Config) { c.Audit.Backup.URL = "file:///mnt/backup/gatehouse" }, "", ""},
		{"audit backup relative", func(c *Config) { c.Audit.Backup.URL = "file://backup" }, "audit.backup.url", "file:///absolute/dir"},
		{"audit backup no path", func(c *Config) { c.Audit.Backup.URL = "file:backup" }, "audit.backup.url", "file:///absolute/dir"},
		{"audit backup inside the log", func(c *Config) {
			c.Audit.Dir = "/var/lib/gatehouse/audit"
			c.Audit.Backup.URL = "file:///var/lib/gatehouse/audit/copy"
		}, "audit.backup.url", "overlap"},
		{"audit backup inside a relative log dir", func(c *Config) {
			wd, _ := os.Getwd()
			c.Audit.Dir = "data/audit"
			c.Audit.Backup.URL = "file://" + filepath.Join(wd, "data", "audit", "copy")
		}, "audit.backup.url", "overlap"},
		{"audit backup holding the log", func(c *Config) {
			c.Audit.Dir = "/x/data/audit"
			c.Audit.Backup.URL = "file:///x/data"
		}, "audit.backup.url", "overlap"},
		{"audit backup error hides credentials", func(c *Config) { c.Audit.Backup.URL = "s3://AKIA:s3cr3t@/x" }, "audit.backup.url", "REDACTED"},
		{"audit backup beside the log", func(c *Config) {
			c.Audit.Dir = "/var/lib/gatehouse/audit"
			c.Audit.Backup.URL = "file:///var/lib/gatehouse/audit-backup"
		}, "", ""},
		{"route path charset", func(c *Config) { c.Routes[0].PathCharset = "latin1" }, "routes[0].path_charset", "nfkc, ascii"},
		{"route path charset ok", func(c *Config) { c.Routes[0].PathCharset = "nfkc" }, "", ""},
		{"audit backup to s3", func(c *Config) { c.Audit.Backup.URL = "s3://bucket/gatehouse?region=eu-west-1" }, "", ""},
		{"audit backup s3 credentials in the URL", func(c *Config) { c.Audit.Backup.URL = "s3://AKIA:secret@bucket" }, "audit.backup.url", "do not belong in the URL"},
		{"audit backup s3 without bucket", func(c *Config) { c.Audit.Backup.URL = "s3:///x" }, "audit.backup.url", "want s3://bucket"},
		{"audit backup ftp is refused, not ignored", func(c *Config) { c.Audit.Backup.URL = "ftp://backup/x" }, "audit.backup.url", "not supported"},
		{"audit backup interval", func(c *Config) { c.Audit.Backup.Interval = Duration(-time.Minute) }, "audit.backup.interval", "negative"},
		{"audit retention needs the encryption key", func(c *Config) { c.Audit.Retention = Duration(400 * 24 * time.Hour) }, "audit.retention", "needs audit.encryption_key_file"},
		{"audit retention short", func(c *Config) { c.Audit.Retention = Duration(time.Hour) }, "audit.retention", "shorter than a day"},
		{"audit report", func(c *Config) {
			c.Audit.Reports = []AuditReport{{Every: Duration(time.Hour), Format: "pdf", Deliver: AuditReportTarget{Dir: tmp}}}
		}, "audit.reports[0].format", "html, csv, json"},
		{"anomaly tz", func(c *Config) { c.Anomaly.Timezone = "Nowhere/Town" }, "anomaly.timezone", "unknown time zone"},
		{"anomaly tz ok", func(c *Config) { c.Anomaly.Timezone = "Asia/Hong_Kong" }, "", ""},
		{"anomaly night", func(c *Config) { c.Anomaly.Night = "10pm-6am" }, "anomaly.night", "HH:MM-HH:MM"},
		{"anomaly store error", func(c *Config) { c.Anomaly.OnStoreError = "ignore" }, "anomaly.on_store_error", "fail_closed, fail_open"},
		{"anomaly store", func(c *Config) { c.Anomaly.Store = "disk" }, "anomaly.store", "memory, redis"},
		{"state file with memory", func(c *Config) { c.Anomaly.StateFile = "/var/lib/gatehouse/anomaly.state" }, "", ""},
		{"state file with redis", func(c *Config) {
			c.Anomaly.Store, c.Redis.Addr, c.Anomaly.StateFile = "redis", "127.0.0.1:6379", "/x/anomaly.state"
		}, "anomaly.state_file", "anomaly.store: memory"},
		{"rule ok", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "bulk", When: "night", Window: Duration(time.Hour), DownloadsOver: 50, Per: "user", Action: []string{"alert", "block_session"}}}
		}, "", ""},
		{"rule no name", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Window: Duration(time.Hour), DownloadsOver: 1, Per: "user", Action: []string{"alert"}}}
		}, "anomaly.rules[0].name", "required"},
		{"rule duplicate name", func(c *Config) {
			r := AnomalyRule{Name: "x", Window: Duration(time.Hour), DownloadsOver: 1, Per: "user", Action: []string{"alert"}}
			c.Anomaly.Rules = []AnomalyRule{r, r}
		}, "anomaly.rules[1].name", "already names anomaly.rules[0]"},
		{"rule window", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "x", DownloadsOver: 1, Per: "user", Action: []string{"alert"}}}
		}, "anomaly.rules[0].window", "greater than zero"},
		{"rule no condition", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "x", Window: Duration(time.Hour), Per: "user", Action: []string{"alert"}}}
		}, "anomaly.rules[0]", "no condition"},
		{"rule negative", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "x", Window: Duration(time.Hour), RequestsOver: -1, BytesOver: 5, Per: "user", Action: []string{"alert"}}}
		}, "anomaly.rules[0].requests_over", "negative"},
		{"rule action", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "x", Window: Duration(time.Hour), BytesOver: 5, Per: "user", Action: []string{"alert", "nuke"}}}
		}, "anomaly.rules[0].action[1]", "must be one of alert, step_up, block_session, block_user, revoke"},
		{"rule when", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "x", When: "day", Window: Duration(time.Hour), BytesOver: 5, Per: "user", Action: []string{"revoke"}}}
		}, "anomaly.rules[0].when", "empty (any time) or night"},
		{"rule per", func(c *Config) {
			c.Anomaly.Rules = []AnomalyRule{{Name: "x", Window: Duration(time.Hour), BytesOver: 5, Per: "ip", Action: []string{"alert"}}}
		}, "anomaly.rules[0].per", "user, session"},
		{"alert without secret", func(c *Config) {
			c.Anomaly.Alerts = []AlertSink{{Webhook: &WebhookSink{URL: "https://h.example.com"}}}
		}, "anomaly.alerts[0].webhook.secret_file", "HMAC"},
		{"alert ok", func(c *Config) {
			c.Anomaly.Alerts = []AlertSink{{Webhook: &WebhookSink{URL: "https://h.example.com", Secret: "k"}}}
		}, "", ""},
		{"alert empty", func(c *Config) { c.Anomaly.Alerts = []AlertSink{{}} }, "anomaly.alerts[0]", "empty alert sink"},
		{"identity header bad", func(c *Config) { c.Identity.Headers.User = "X User" }, "identity.headers.user", "not a valid header name"},
		{"identity header reserved", func(c *Config) { c.Identity.Headers.Roles = "Authorization" }, "identity.headers.roles", "reserved"},
		{"identity header dup", func(c *Config) { c.Identity.Assertion.Header = "x-gatehouse-user" }, "identity.assertion.header", "already used by identity.headers.user"},
		{"identity ttl", func(c *Config) { c.Identity.Assertion.TTL = 0 }, "identity.assertion.ttl", "greater than zero"},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, "log.level", "debug, info, warn, error"},
		{"log format", func(c *Config) { c.Log.Format = "text" }, "log.format", "json, console"},
		{"timeouts", func(c *Config) { c.Timeouts.UpstreamHeader = 0 }, "timeouts.upstream_response_header", "greater than zero"},
		{"no routes", func(c *Config) { c.Routes = nil }, "routes", "at least one route"},
		{"route name empty", func(c *Config) { route(c).Name = "" }, "routes[0].name", "required"},
		{"route name dup", func(c *Config) {
			addRoute(c, Route{Name: "chat", Host: "x.example.com", Upstream: "http://x", MFA: "optional"})
		}, "routes[1].name", "already names routes[0]"},
		{"route host empty", func(c *Config) { route(c).Host = "" }, "routes[0].host", "required"},
		{"route host upper", func(c *Config) { route(c).Host = "Chat.example.com" }, "routes[0].host", "must be lowercase"},
		{"route host port", func(c *Config) { route(c).Host = "chat.example.com:443" }, "routes[0].host", "must not contain a port"},
		{"route host chars", func(c *Config) { route(c).Host = "chat_app.example.com" }, "routes[0].host", "not a valid host name"},
		{"route host trailing dot", func(c *Config) { route(c).Host = "chat.example.com." }, "routes[0].host", "not a valid host name"},
		{"route host localhost ok", func(c *Config) { route(c).Host = "chat.localhost" }, "", ""},
		{"route host ip ok", func(c *Config) { route(c).Host = "127.0.0.1" }, "", ""},
		{"route upstream scheme", func(c *Config) { route(c).Upstream = "htp://x" }, "routes[0].upstream", `"htp://x": unsupported scheme`},
		{"route upstream relative", func(c *Config) { route(c).Upstream = "/app" }, "routes[0].upstream", "unsupported scheme"},
		{"route upstream no host", func(c *Config) { route(c).Upstream = "http://" }, "routes[0].upstream", "missing host"},
		{"route upstream empty", func(c *Config) { route(c).Upstream = "" }, "routes[0].upstream", "required"},
		{"route upstream https path ok", func(c *Config) { route(c).Upstream = "https://10.0.0.1:8443/base" }, "", ""},
		{"route upstream query", func(c *Config) { route(c).Upstream = "http://x/?a=1" }, "routes[0].upstream", "query"},
		{"route mfa enum", func(c *Config) { route(c).MFA = "yes" }, "routes[0].mfa", "required, optional"},
		{"route public mfa", func(c *Config) { route(c).Public = true; route(c).MFA = "required" }, "routes[0].mfa", "public"},
		{"route prefix slash", func(c *Config) { route(c).PathPrefix = "api" }, "routes[0].path_prefix", "must start with /"},
		{"route prefix dots", func(c *Config) { route(c).PathPrefix = "/a/./b" }, "routes[0].path_prefix", "normalised"},
		{"route prefix double slash", func(c *Config) { route(c).PathPrefix = "/a//b" }, "routes[0].path_prefix", "normalised"},
		{"route prefix encoded", func(c *Config) { route(c).PathPrefix = "/a%2Fb" }, "routes[0].path_prefix", "normalised"},
		{"route prefix trailing slash ok", func(c *Config) { route(c).PathPrefix = "/api/" }, "", ""},
		{"route same host different prefix ok", func(c *Config) {
			addRoute(c, Route{Name: "api", Host: "chat.example.com", PathPrefix: "/api", Upstream: "http://x", MFA: "optional"})
		}, "", ""},
		{"route duplicate host", func(c *Config) {
			addRoute(c, Route{Name: "chat2", Host: "chat.example.com", Upstream: "http://x", MFA: "optional"})
		}, "routes[1].host", "already routed by routes[0]"},
		{"route duplicate host+prefix", func(c *Config) {
			route(c).PathPrefix = "/api"
			addRoute(c, Route{Name: "chat2", Host: "chat.example.com", PathPrefix: "/api/", Upstream: "http://x", MFA: "optional"})
		}, "routes[1].path_prefix", "already routed by routes[0]"},
		{"route glob bad", func(c *Config) { route(c).Downloads.Paths = []string{"/files/*", "[z-"} }, "routes[0].downloads.paths[1]", "invalid glob"},
		{"route content type bad", func(c *Config) { route(c).Downloads.ContentTypes = []string{"pdf"} }, "routes[0].downloads.content_types[0]", "media type"},
		{"route downloads ok", func(c *Config) {
			route(c).Downloads = Downloads{Paths: []string{"/files/*", "*.pdf"}, ContentTypes: []string{"application/octet-stream"}}
		}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base(t)
			tc.mutate(c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("want Errors naming %s, got %v", tc.field, err)
			}
			for _, e := range es {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("no error %s: ...%s...; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

// TestValidateAllAtOnce: Validate does not stop at the first problem.
func TestValidateAllAtOnce(t *testing.T) {
	c := base(t)
	c.Listen = "x"
	c.Routes[0].Upstream = "htp://x"
	c.Audit.Durability = "never"
	c.Anomaly.Night = "late"
	err := c.Validate()
	var es Errors
	if !errors.As(err, &es) || len(es) != 4 {
		t.Fatalf("want 4 problems, got %v", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Error("errors.As(*FieldError) fails")
	}
	if n := strings.Count(err.Error(), "\n"); n != 3 {
		t.Errorf("want one line per problem:\n%v", err)
	}
	// Lines come from the file the config was loaded from.
	for _, e := range es {
		if e.Field == "routes[0].upstream" && (e.Line != 7 || e.File != "gatehouse.yaml") {
			t.Errorf("upstream error at %s:%d, want gatehouse.yaml:7", e.File, e.Line)
		}
	}
}

// TestValidateNoSideEffects: Validate neither changes the config nor fills defaults.
func TestValidateNoSideEffects(t *testing.T) {
	c := base(t)
	c.Routes[0].MFA = ""
	c.Session.Cookie = ""
	before := *c
	before.Routes = append([]Route(nil), c.Routes...)
	_ = c.Validate()
	_ = c.Validate()
	if !reflect.DeepEqual(before, *c) {
		t.Error("Validate changed the config")
	}
	var empty Config
	if err := empty.Validate(); err == nil {
		t.Error("an empty Config built in Go must not validate (no defaults are filled by Validate)")
	}
	if !reflect.DeepEqual(empty, Config{}) {
		t.Error("Validate filled in fields of an empty config")
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"s3://AKIA:s3cr3t@bucket/x?region=r": "s3://REDACTED@bucket/x?region=r",
		"s3://bucket/x":                      "s3://bucket/x",
		"s3://AKIA:s3cr3t@/x%zz":             "s3://REDACTED@/x%zz",
		"file:///mnt/b":                      "file:///mnt/b",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestDirsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"/x/audit", "/x/audit", true},
		{"/x/audit", "/x/audit/copy", true},
		{"/x/audit", "/x", true},
		{"/x/audit", "/x/audit-backup", false},
		{"/x/audit", "/y", false},
	} {
		if got := DirsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("DirsOverlap(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
