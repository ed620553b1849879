package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaPath = "../docs/policy-input.schema.json"

// CompileInputSchema compiles docs/policy-input.schema.json (shared with the
// proxy's tests through a copy of this helper).
func compileInputSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func validateDoc(t *testing.T, sch *jsonschema.Schema, v any) error {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

func schemaInputs() map[string]Input {
	full := cookbookInput()
	full.Request.Query = map[string][]string{"download": {"1"}, "token": {"s3cret"}}
	full.Risk = RiskInput{Flags: []string{"night", "bulk_download"}, Requests1h: 900, Downloads1h: 60, Bytes1h: 73400320, Blocked: true, StepUp: true, Reason: "bulk"}
	anon := Input{ // what the builder gives for an anonymous caller: nil slices and maps
		Request: RequestInput{ID: "r", Method: "GET", Host: "wiki.example.com", Path: "/", Query: QueryFromURL(nil), Headers: HeadersFromHTTP(nil)},
		Session: NewSessionInput(false, nil, "", time.Time{}, time.Now()),
		Route:   RouteInput{Name: "wiki", Host: "wiki.example.com", Public: true, MFA: "optional"},
		Time:    NewTimeInput(time.Now(), nil, false),
	}
	zone, _ := time.LoadLocation("Asia/Hong_Kong")
	night := baseInput()
	night.Time = NewTimeInput(time.Date(2026, 12, 1, 18, 30, 0, 0, time.UTC), zone, true)
	return map[string]Input{"full": full, "anonymous": anon, "night": night}
}

// The documents the engine evaluates and the audit log keeps match the
// published JSON Schema.
func TestInputMatchesSchema(t *testing.T) {
	sch := compileInputSchema(t)
	for name, in := range schemaInputs() {
		if err := validateDoc(t, sch, in.AuditMap()); err != nil {
			t.Errorf("%s: audit map: %v", name, err)
		}
		// The ast.Value the engine really evaluates, as JSON.
		v, err := ast.JSON(in.Value())
		if err != nil {
			t.Fatal(err)
		}
		if err := validateDoc(t, sch, v); err != nil {
			t.Errorf("%s: evaluated value: %v", name, err)
		}
	}
	// The schema is strict: an undocumented field fails it.
	doc := baseInput().AuditMap()
	doc["request"].(map[string]any)["undocumented"] = true
	if err := validateDoc(t, sch, doc); err == nil {
		t.Error("schema accepted an undocumented field")
	}
}

// Value (what the policy evaluates) and AuditMap (what the audit log keeps
// for replay) are the same document, secrets aside.
func TestValueAndAuditMapAgree(t *testing.T) {
	for name, in := range schemaInputs() {
		delete(in.Request.Query, "token")
		want, err := ast.InterfaceToValue(in.AuditMap())
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Value(); got.Compare(want) != 0 {
			t.Errorf("%s:\nvalue %v\n  map %v", name, got, want)
		}
	}
}

func TestAuditMapRedactsCredentials(t *testing.T) {
	in := baseInput()
	in.Request.Query = map[string][]string{"Token": {"a", "b"}, "access_token": {"x"}, "page": {"2"}}
	q := in.AuditMap()["request"].(map[string]any)["query"].(map[string]any)
	if q["Token"].([]any)[1] != Redacted || q["access_token"].([]any)[0] != Redacted || q["page"].([]any)[0] != "2" {
		t.Fatalf("query %v", q)
	}
	if in.Request.Query["Token"][0] != "a" {
		t.Fatal("the policy's view was redacted too")
	}
}

// docs/policy.md documents every field of the schema (and so of the input).
func TestDocsCoverSchema(t *testing.T) {
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for top, obj := range s.Properties {
		for field := range obj.Properties {
			name := "input." + top + "." + field
			if !regexp.MustCompile("`" + regexp.QuoteMeta(name) + "`").Match(doc) {
				missing = append(missing, name)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/policy.md does not document: %s", strings.Join(missing, ", "))
	}
	// And the Go type has exactly the schema's fields.
	var typed map[string]map[string]any
	b, _ := json.Marshal(baseInput().AuditMap())
	_ = json.Unmarshal(b, &typed)
	for top, fields := range typed {
		for f := range fields {
			if _, ok := s.Properties[top].Properties[f]; !ok {
				t.Errorf("input.%s.%s is not in the schema", top, f)
			}
		}
	}
}

func TestHeadersFromHTTP(t *testing.T) {
	h := map[string][]string{
		"User-Agent": {"ua"}, "Accept": {"a", "b"}, "Cookie": {"s=1"}, "Authorization": {"Bearer x"},
		"X-Forwarded-For": {"1.2.3.4"}, "X_Forwarded_For": {"6.6.6.6"}, "x_gatehouse_user": {"root"}, "X_Real_IP": {"6.6.6.6"}, "Forwarded": {"for=1.2.3.4"}, "X-Real-Ip": {"1.2.3.4"},
		"X-Gatehouse-User": {"admin"}, "X-Remote-User": {"admin"}, "X-Break-Glass-Reason": {strings.Repeat("r", 2000)},
	}
	got := HeadersFromHTTP(h, "X-Remote-User")
	want := map[string]string{"user-agent": "ua", "accept": "a, b", "x-break-glass-reason": strings.Repeat("r", MaxHeaderValue)}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q", k, got[k])
		}
	}
}
