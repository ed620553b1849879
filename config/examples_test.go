package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// exampleConfigs lists the Gatehouse configs under examples/: every *.yaml
// except examples/broken/ and OPA data files (data.yaml, anything under a
// policies/ directory).
func exampleConfigs(t *testing.T) []string {
	var out []string
	err := filepath.WalkDir("examples", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "broken" || d.Name() == "policies" || d.Name() == "data") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") && d.Name() != "data.yaml" {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setExampleEnv sets every ${VAR} the file refers to, to a placeholder that is
// also a valid host name label (some appear in URLs).
func setExampleEnv(t *testing.T, data []byte) {
	for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
		if strings.Contains(m[1], "NEVER_SET") {
			continue
		}
		t.Setenv(m[1], strings.ReplaceAll(strings.ToLower(m[1]), "_", "-"))
	}
}

// TestExamplesLoad: every example config loads and validates, with its
// secrets taken from the environment as documented.
func TestExamplesLoad(t *testing.T) {
	t.Chdir("..")
	files := exampleConfigs(t)
	for _, want := range []string{"examples/quickstart/gatehouse.yaml",
		"examples/apps/nextcloud.yaml", "examples/apps/mattermost.yaml", "examples/apps/wikijs.yaml", "examples/apps/grafana.yaml",
		"examples/idps/keycloak.yaml", "examples/idps/entra-id.yaml", "examples/idps/okta.yaml", "examples/idps/google.yaml", "examples/idps/dex.yaml"} {
		found := false
		for _, f := range files {
			found = found || f == want
		}
		if !found {
			t.Errorf("example %s is missing", want)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			setExampleEnv(t, data)
			c, err := Load(f)
			if err != nil {
				t.Fatalf("example does not load:\n%v", err)
			}
			if len(c.Routes) == 0 {
				t.Error("example has no routes")
			}
			if strings.Contains(string(data), "${GATEHOUSE_OIDC_SECRET}") && c.OIDC.ClientSecret.Reveal() != "gatehouse-oidc-secret" {
				t.Errorf("client secret not taken from the environment: %q", c.OIDC.ClientSecret.Reveal())
			}
		})
	}
}

// TestExamplesIdPClaims pins the claim mappings the IdP examples document.
func TestExamplesIdPClaims(t *testing.T) {
	t.Chdir("..")
	for file, want := range map[string]map[string]string{
		"examples/idps/keycloak.yaml": {"roles": "realm_access.roles", "groups": "groups"},
		"examples/idps/entra-id.yaml": {"roles": "roles", "groups": "groups", "username": "preferred_username"},
		"examples/idps/okta.yaml":     {"groups": "groups"},
		"examples/idps/google.yaml":   {"username": "email"},
		"examples/idps/dex.yaml":      {"groups": "groups"},
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		setExampleEnv(t, data)
		c, err := Load(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for k, v := range want {
			if c.OIDC.Claims[k] != v {
				t.Errorf("%s: oidc.claims.%s = %q, want %q", file, k, c.OIDC.Claims[k], v)
			}
		}
	}
}

// TestBrokenExamples: each examples/broken/*.yaml fails with exactly the
// messages its "# expect:" comment lines give, in order.
func TestBrokenExamples(t *testing.T) {
	t.Chdir("..")
	files, err := filepath.Glob("examples/broken/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("broken examples: %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if rest, ok := strings.CutPrefix(line, "# expect: "); ok {
					want = append(want, rest)
				}
			}
			if len(want) == 0 {
				t.Fatal("no # expect: line")
			}
			setExampleEnv(t, data)
			_, err = Load(f)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("want config.Errors, got %v", err)
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}
