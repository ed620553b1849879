package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-dev/gatehouse/policy"
)

// A policy directory is compiled once; each request is one Decide.
func ExampleCompile() {
	dir, _ := os.MkdirTemp("", "policy-example")
	defer os.RemoveAll(dir)
	rego := `package gatehouse.authz

default allow := false

allow if "finance" in input.user.groups

deny contains "no_deletes" if input.request.method == "DELETE"

require_mfa if startswith(input.request.path, "/admin/")
`
	_ = os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(rego), 0o600)

	set, err := policy.Compile(context.Background(), dir, policy.CompileOptions{Timeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	in := policy.Input{
		Request: policy.RequestInput{ID: "r1", Method: "GET", Host: "files.example.com", Path: "/admin/users"},
		User:    policy.UserInput{Sub: "u1", Email: "ana@example.com", Groups: []string{"finance"}},
		Session: policy.NewSessionInput(false, []string{"pwd"}, "", now.Add(-time.Minute), now),
		Route:   policy.RouteInput{Name: "files", Host: "files.example.com", MFA: "optional"},
		Time:    policy.NewTimeInput(now, time.UTC, false),
	}
	d, _ := set.Decide(context.Background(), in)
	fmt.Println(d.Outcome, d.Reasons)

	in.Request.Method = "DELETE"
	d, _ = set.Decide(context.Background(), in)
	fmt.Println(d.Outcome, d.Reasons)

	in.Request.Method, in.Request.Path = "GET", "/reports/q3.xlsx"
	d, _ = set.Decide(context.Background(), in)
	fmt.Println(d.Outcome, d.Reasons)
	// Output:
	// step_up [mfa.required]
	// deny [no_deletes]
	// allow []
}
