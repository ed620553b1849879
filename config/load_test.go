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

// minimal is a valid config with one login route; tests append to it.
const minimal = `external_url: https://gate.example.com
oidc: { issuer: https://idp.example.com, client_id: gatehouse }
session: { secret_files: [./keys/session.key] }
routes:
  - name: chat
    host: chat.example.com
    upstream: http://127.0.0.1:8065
`

// writeConfig writes body (and extra files, path -> content) into a new
// directory and returns the config's path.
func writeConfig(t *testing.T, body string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	p := writeConfig(t, minimal, nil)
	c := mustLoad(t, p)
	dir := filepath.Dir(p)
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":8443"},
		{"admin_listen", c.AdminListen, "127.0.0.1:9090"},
		{"tls.mode", c.TLS.Mode, "local"},
		{"tls.local_dir", c.TLS.LocalDir, filepath.Join(dir, "data/ca")},
		{"oidc.scopes", c.OIDC.Scopes, []string{"openid", "email", "profile"}},
		{"oidc.claims.groups", c.OIDC.Claims["groups"], "groups"},
		{"mfa.amr_any", c.MFA.AMRAny, []string{"mfa", "otp", "hwk", "swk", "fpt", "sms"}},
		{"mfa.max_age", c.MFA.MaxAge.D(), 12 * time.Hour},
		{"session.cookie", c.Session.Cookie, "_gatehouse"},
		{"session.lifetime", c.Session.Lifetime.D(), 12 * time.Hour},
		{"session.idle_timeout", c.Session.IdleTimeout.D(), time.Hour},
		{"session.store", c.Session.Store, "cookie"},
		{"session.secret_files", c.Session.SecretFiles, []string{filepath.Join(dir, "keys/session.key")}},
		{"policy.dir", c.Policy.Dir, filepath.Join(dir, "policies")},
		{"policy.timeout", c.Policy.Timeout.D(), 50 * time.Millisecond},
		{"audit.durability", c.Audit.Durability, "batch"},
		{"audit.checkpoint_interval", c.Audit.CheckpointInterval.D(), time.Second},
		{"audit.group_commit", c.Audit.GroupCommit.D(), 10 * time.Millisecond},
		{"audit.dir", c.Audit.Dir, filepath.Join(dir, "data/audit")},
		{"anomaly.timezone", c.Anomaly.Timezone, "UTC"},
		{"anomaly.on_store_error", c.Anomaly.OnStoreError, "fail_closed"},
		{"anomaly.night", c.Anomaly.Night, "22:00-06:00"},
		{"log.level", c.Log.Level, "info"},
		{"log.access", c.Log.Access, true},
		{"timeouts.read_header", c.Timeouts.ReadHeader.D(), 10 * time.Second},
		{"routes[0].mfa", c.Routes[0].MFA, "optional"},
		{"identity.headers.user", c.Identity.Headers.User, "X-Gatehouse-User"},
		{"Path", c.Path, p},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadExplicitValuesKept(t *testing.T) {
	p := writeConfig(t, minimal+`log: { access: false, level: debug }
mfa: { max_age: 0 }
oidc_extra: 1
`, nil)
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), `unknown key "oidc_extra"`) {
		t.Fatalf("want unknown key error, got %v", err)
	}
	p = writeConfig(t, minimal+`log: { access: false, level: debug }
mfa: { max_age: 0 }
`, nil)
	c := mustLoad(t, p)
	if c.Log.Access || c.Log.Level != "debug" || c.MFA.MaxAge != 0 {
		t.Errorf("explicit values replaced by defaults: access=%v level=%q max_age=%v", c.Log.Access, c.Log.Level, c.MFA.MaxAge)
	}
}

func TestLoadClaimsMergeDefaults(t *testing.T) {
	p := writeConfig(t, strings.Replace(minimal, "client_id: gatehouse", "client_id: gatehouse, claims: { roles: realm_access.roles }", 1), nil)
	c := mustLoad(t, p)
	if c.OIDC.Claims["roles"] != "realm_access.roles" || c.OIDC.Claims["email"] != "email" {
		t.Errorf("claims = %v", c.OIDC.Claims)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("GH_TEST_ISSUER", "https://idp.example.com/realms/x")
	t.Setenv("GH_TEST_SECRET", "s3cr3t")
	t.Setenv("GH_TEST_EMPTY", "")
	body := strings.Replace(minimal, "issuer: https://idp.example.com", "issuer: \"${GH_TEST_ISSUER}\", client_secret: \"${GH_TEST_SECRET}\"", 1) +
		"mfa: { step_up_acr: \"$${not_a_var}${GH_TEST_EMPTY}$HOME\", acr_any: [gold] }\n"
	c := mustLoad(t, writeConfig(t, body, nil))
	if c.OIDC.Issuer != "https://idp.example.com/realms/x" {
		t.Errorf("issuer = %q", c.OIDC.Issuer)
	}
	if c.OIDC.ClientSecret.Reveal() != "s3cr3t" {
		t.Errorf("client_secret not expanded")
	}
	if c.MFA.StepUpACR != "${not_a_var}$HOME" {
		t.Errorf("step_up_acr = %q, want the $${ escape and bare $ kept", c.MFA.StepUpACR)
	}

	_, err := Load(writeConfig(t, strings.Replace(minimal, "client_id: gatehouse", "client_id: \"${GH_TEST_NOT_SET_ANYWHERE}\"", 1), nil))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "oidc.client_id" || fe.Line != 2 || !strings.Contains(fe.Msg, "GH_TEST_NOT_SET_ANYWHERE is not set") {
		t.Errorf("missing env var: got %v", err)
	}
}

func TestSecretFiles(t *testing.T) {
	body := minimal + `admin_token_file: ./secrets/admin.token
redis: { password_file: secrets/redis.pw }
anomaly:
  alerts:
    - webhook: { url: https://hooks.example.com/a, secret_file: ./secrets/hook.key }
`
	body = strings.Replace(body, "client_id: gatehouse", "client_id: gatehouse, client_secret_file: ./secrets/oidc.secret", 1)
	p := writeConfig(t, body, map[string]string{
		"secrets/admin.token": "admin-tok\n", "secrets/oidc.secret": "  oidc-sec\r\n",
		"secrets/redis.pw": "redis-pw", "secrets/hook.key": "hook-key\n",
	})
	c := mustLoad(t, p)
	for name, got := range map[string]Secret{"admin-tok": c.AdminToken, "oidc-sec": c.OIDC.ClientSecret,
		"redis-pw": c.Redis.Password, "hook-key": c.Anomaly.Alerts[0].Webhook.Secret} {
		if got.Reveal() != name {
			t.Errorf("secret = %q, want %q", got.Reveal(), name)
		}
	}
	if want := filepath.Join(filepath.Dir(p), "secrets/admin.token"); c.AdminTokenFile != want {
		t.Errorf("admin_token_file = %q, want resolved %q", c.AdminTokenFile, want)
	}

	// Both inline and file, and a missing file: both reported, with lines.
	body = strings.Replace(minimal, "client_id: gatehouse", "client_id: gatehouse, client_secret: x, client_secret_file: ./nope", 1) +
		"admin_token_file: ./missing.token\n"
	_, err := Load(writeConfig(t, body, nil))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if es[0].Field != "oidc.client_secret_file" || !strings.Contains(es[0].Msg, "both set") || es[0].Line != 2 {
		t.Errorf("first error = %v", es[0])
	}
	if es[1].Field != "admin_token_file" || es[1].Line != 8 || !errors.Is(es[1], os.ErrNotExist) {
		t.Errorf("second error = %v (want os.ErrNotExist underneath)", es[1])
	}
}

func TestSecretFileMustBeRegular(t *testing.T) {
	body := minimal + "admin_token_file: " + os.DevNull + "\n"
	_, err := Load(writeConfig(t, body, nil))
	if err == nil || !strings.Contains(err.Error(), "admin_token_file: \""+os.DevNull+"\": not a regular file") {
		t.Errorf("got %v", err)
	}
}

func TestLine(t *testing.T) {
	c := mustLoad(t, writeConfig(t, minimal+"policy:\n  timeout: 20ms\n", nil))
	for field, want := range map[string]int{
		"routes[0].upstream": 7, "routes[0]": 5, "routes": 4, "oidc.client_id": 2,
		"routes[0].downloads.paths": 5, "policy.timeout": 9, "log.level": 0,
	} {
		file, line := c.Line(field)
		if line != want || file != c.Path {
			t.Errorf("Line(%q) = %s:%d, want line %d", field, file, line, want)
		}
	}
}

func TestAliasesAndBudget(t *testing.T) {
	// Aliases work...
	body := `external_url: https://gate.example.com
oidc: { issuer: https://idp.example.com, client_id: gatehouse }
session: { secret_files: [./k] }
routes:
  - &r { name: a, host: a.example.com, upstream: "http://127.0.0.1:1" }
  - { name: b, host: b.example.com, upstream: "http://127.0.0.1:2" }
`
	c := mustLoad(t, writeConfig(t, body, nil))
	if len(c.Routes) != 2 || c.Routes[0].Host != "a.example.com" {
		t.Errorf("routes = %+v", c.Routes)
	}
	// ...but a billion laughs is cut off, quickly, with an error.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("trusted_proxies: *a8\n")
	start := time.Now()
	_, err := Parse("laughs.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("want an error")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	var es Errors
	if !errors.As(err, &es) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml: cannot read config") {
		t.Errorf("got %v", err)
	}
}

func TestErrorsSortedOnePerLine(t *testing.T) {
	es := Errors{
		{File: "g.yaml", Line: 9, Field: "b", Msg: "two"},
		{File: "g.yaml", Line: 2, Field: "a", Msg: "one"},
		{File: "g.yaml", Field: "c", Msg: "no line"},
		{Field: "d", Msg: "no file"},
		{Line: 3, Msg: "line only"},
	}
	want := "d: no file\nline 3: line only\ng.yaml: c: no line\ng.yaml:2: a: one\ng.yaml:9: b: two"
	if got := es.Error(); got != want {
		t.Errorf("Errors.Error() =\n%s\nwant\n%s", got, want)
	}
}
