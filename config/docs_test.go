package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// schemaKeys lists every YAML key of the schema as a dotted path, list
// elements written as [] ("routes[].upstream"), by walking the struct tags.
func schemaKeys(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType || t == sizeType || t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		key := joinPath(prefix, name)
		*out = append(*out, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			schemaKeys(ft.Elem(), key+"[]", out)
		} else {
			schemaKeys(ft, key, out)
		}
	}
}

// TestDocsCoverEveryKey: docs/configuration.md names every key of the schema
// (in backticks, as a full path), so the reference cannot drift from the code.
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	schemaKeys(reflect.TypeFor[Config](), "", &keys)
	for k := range DefaultClaims() {
		keys = append(keys, "oidc.claims."+k)
	}
	if len(keys) < 100 {
		t.Fatalf("only %d keys found by walking the schema", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
}
