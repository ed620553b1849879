package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// The policy subcommands for policy authors: test, eval, replay. Each
// parses flags and calls into package policy.

func init() {
	register(command{name: "policy test", summary: "run Rego unit tests with OPA's tester (--run, --coverage, --threshold)", run: runPolicyTest})
	register(command{name: "policy eval", summary: "judge one input (--input FILE or --request 'GET URL'); --explain prints OPA's trace", run: runPolicyEval})
	register(command{name: "policy replay", summary: "re-judge recorded decisions with a draft policy; exit 1 if any changes", run: runPolicyReplay})
}

// policyFlags makes a flag set whose -h prints usage (exit 0 via errHelp).
func policyFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parsePolicyArgs parses flags that may come before or after positional
// arguments. It returns the exit code to use when parsing stops the command.
func parsePolicyArgs(fs *flag.FlagSet, args []string) (pos []string, stop bool, code int) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, 0
			}
			return nil, true, exitUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, false, 0
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), false, 0
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

const policyTestUsage = `Usage: gatehouse policy test [flags] DIR|FILE...

Runs the Rego tests (rules named test_*) found in *_test.rego files with OPA's
own tester, Rego v1, the capabilities Gatehouse serves with, and prints each
test like 'opa test -v'. Data files data.json/data.yaml are mounted by
directory, as the proxy mounts them.

Exit codes: 0 all tests pass (and coverage >= --threshold); 1 a test failed or
errored, no test ran, or coverage is below the threshold; 2 usage error.

Flags:
`

func runPolicyTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := policyFlags("policy test", policyTestUsage, stderr)
	run := fs.String("run", "", "only run tests whose name matches this regular expression")
	verbose := fs.Bool("v", true, "print every test, not only failures (-v=false for failures only)")
	coverage := fs.Bool("coverage", false, "report coverage (percentage and uncovered lines)")
	threshold := fs.Float64("threshold", 0, "fail when coverage is below this percentage (implies --coverage)")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout per test")
	paths, stop, code := parsePolicyArgs(fs, args)
	if stop {
		return code
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "gatehouse policy test: no DIR given")
		fs.Usage()
		return exitUsage
	}
	if *threshold < 0 || *threshold > 100 {
		fmt.Fprintln(stderr, "gatehouse policy test: --threshold must be between 0 and 100")
		return exitUsage
	}
	sum, err := policy.RunTests(ctx, policy.TestOptions{
		Paths: paths, Run: *run, Verbose: *verbose, Out: stdout,
		Coverage: *coverage, Threshold: *threshold, Timeout: *timeout,
	})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse policy test: %v\n", err)
		return 1
	}
	_ = sum
	return 0
}

const policyEvalUsage = `Usage: gatehouse policy eval [--config F | --policy DIR] (--input FILE | --request 'METHOD URL' [--user EMAIL --groups a,b ...]) [--explain]

Judges one input with the policy directory of the config (or --policy) and
prints the outcome, the deny reasons and the policy revision. --input takes an
input document (docs/policy.md) or a decision record from the audit log;
--request builds the document the proxy would build for that request, with
the route, time zone and night window taken from the config.

Exit codes: 0 the input was judged (whatever the outcome); 1 the policy does
not compile or the input is unreadable; 2 usage error.

Flags:
`

func runPolicyEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := policyFlags("policy eval", policyEvalUsage, stderr)
	cfgPath := fs.String("config", "gatehouse.yaml", "the config file (policy.dir, routes, anomaly.timezone/night)")
	dir := fs.String("policy", "", "policy directory (overrides the config's policy.dir; no config needed)")
	inputFile := fs.String("input", "", "input document (JSON), or an audit decision record")
	var rf requestFlags
	rf.register(fs)
	explain := fs.Bool("explain", false, "print OPA's evaluation trace")
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	evalTimeout := fs.Duration("timeout", 0, "evaluation timeout (default: the config's policy.timeout, else 50ms)")
	if _, stop, code := parsePolicyArgs(fs, args); stop {
		return code
	}
	if (*inputFile == "") == (rf.request == "") {
		fmt.Fprintln(stderr, "gatehouse policy eval: give exactly one of --input or --request")
		fs.Usage()
		return exitUsage
	}
	var cfg *config.Config
	if *dir == "" || rf.request != "" {
		c, err := config.Load(*cfgPath)
		switch {
		case err == nil:
			cfg = c
		case *dir == "":
			printConfigErrors(stderr, err)
			return 1
		}
	}
	pdir, timeout := *dir, policy.DefaultTimeout
	if cfg != nil {
		if pdir == "" {
			pdir = cfg.Policy.Dir
		}
		timeout = cfg.Policy.Timeout.D()
	}
	if *evalTimeout > 0 {
		timeout = *evalTimeout
	}
	set, err := policy.Compile(ctx, pdir, policy.CompileOptions{Timeout: timeout, SkipTests: true})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse policy eval: %v\n", err)
		return 1
	}

	var doc map[string]any
	if *inputFile != "" {
		doc, err = readInputDoc(*inputFile)
	} else {
		doc, err = rf.document(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse policy eval: %v\n", err)
		return 1
	}

	var trace bytes.Buffer
	var d policy.Decision
	var derr error
	if *explain {
		d, derr = set.Explain(ctx, doc, &trace)
	} else {
		d, derr = set.DecideDocument(ctx, doc)
	}
	if *asJSON {
		out := map[string]any{"outcome": d.Outcome, "allow": d.Allow, "deny": policyOrEmpty(d.Deny), "require_mfa": d.RequireMFA,
			"reasons": policyOrEmpty(d.Reasons), "revision": d.Revision, "duration_us": d.Duration.Microseconds()}
		if derr != nil {
			out["error"] = derr.Error()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		fmt.Fprintf(stdout, "decision:    %s\n", d.Outcome)
		fmt.Fprintf(stdout, "allow:       %v\n", d.Allow)
		fmt.Fprintf(stdout, "deny:        %s\n", policyList(d.Deny))
		fmt.Fprintf(stdout, "require_mfa: %v\n", d.RequireMFA)
		fmt.Fprintf(stdout, "reasons:     %s\n", policyList(d.Reasons))
		fmt.Fprintf(stdout, "revision:    %s\n", d.Revision)
		fmt.Fprintf(stdout, "duration:    %s\n", d.Duration.Round(time.Microsecond))
		if derr != nil {
			fmt.Fprintf(stdout, "error:       %v\n", derr)
		}
	}
	if *explain {
		fmt.Fprintln(stdout, "\ntrace:")
		_, _ = stdout.Write(trace.Bytes())
	}
	return 0
}

func policyOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func policyList(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// readInputDoc reads an input document, or the input of an audit decision
// record ({"type":"decision", "input": {...}}).
func readInputDoc(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("read input %s: %w", path, err)
	}
	if doc["type"] == "decision" {
		in, ok := doc["input"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("read input %s: decision record without an input", path)
		}
		return in, nil
	}
	return doc, nil
}

// requestFlags build an input document from a request line and identity.
type requestFlags struct {
	request, user, sub, groups, roles, ip, at, flags, route string
	mfa, blocked                                            bool
}

func (rf *requestFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&rf.request, "request", "", "request line: 'METHOD https://host/path?query'")
	fs.StringVar(&rf.user, "user", "", "user e-mail (empty: anonymous)")
	fs.StringVar(&rf.sub, "sub", "", "user subject (default: the e-mail)")
	fs.StringVar(&rf.groups, "groups", "", "comma-separated groups")
	fs.StringVar(&rf.roles, "roles", "", "comma-separated roles")
	fs.BoolVar(&rf.mfa, "mfa", false, "the session has MFA")
	fs.StringVar(&rf.ip, "remote-ip", "10.0.0.1", "client IP address")
	fs.StringVar(&rf.at, "at", "", "request time, RFC 3339 (default: now)")
	fs.StringVar(&rf.flags, "risk-flags", "", "comma-separated anomaly flags (e.g. bulk_download)")
	fs.BoolVar(&rf.blocked, "blocked", false, "an anomaly block applies")
	fs.StringVar(&rf.route, "route", "", "route name (default: the config's route for the URL)")
}

func policySplit(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// document builds what the proxy would build for the request (cfg may be
// nil: no route, UTC, no night window).
func (rf *requestFlags) document(cfg *config.Config) (map[string]any, error) {
	rl, err := policy.ParseRequestLine(rf.request)
	if err != nil {
		return nil, err
	}
	path, err := proxy.NormalizePath(rl.RawPath)
	if err != nil {
		return nil, fmt.Errorf("request path (the proxy answers 400): %w", err)
	}
	now := time.Now()
	if rf.at != "" {
		if now, err = time.Parse(time.RFC3339, rf.at); err != nil {
			return nil, fmt.Errorf("--at: %w", err)
		}
	}
	zone, night := time.UTC, false
	var route policy.RouteInput
	if cfg != nil {
		if zone, err = time.LoadLocation(cfg.Anomaly.Timezone); err != nil {
			return nil, fmt.Errorf("anomaly.timezone: %w", err)
		}
		if start, end, err := config.ParseNight(cfg.Anomaly.Night); err == nil {
			night = policyInWindow(now.In(zone), start, end)
		}
		route = policyMatchRoute(cfg, rl.Host, path)
	}
	if rf.route != "" {
		route.Name = rf.route
	}
	if route.MFA == "" {
		route.MFA = "optional"
	}
	if route.Host == "" {
		route.Host = rl.Host
	}
	sub := rf.sub
	if sub == "" {
		sub = rf.user
	}
	amr := []string{"pwd"}
	if rf.mfa {
		amr = append(amr, "otp")
	}
	in := policy.Input{
		Request: policy.RequestInput{ID: "cli", Method: rl.Method, Host: rl.Host, Path: path, Query: rl.Query,
			Headers: map[string]string{"user-agent": "gatehouse-policy-eval"}, RemoteIP: rf.ip},
		User:  policy.UserInput{Sub: sub, Email: rf.user, Groups: policySplit(rf.groups), Roles: policySplit(rf.roles)},
		Route: route,
		Time:  policy.NewTimeInput(now, zone, night),
		Risk:  policy.RiskInput{Flags: policySplit(rf.flags), Blocked: rf.blocked},
	}
	if sub != "" {
		in.Session = policy.NewSessionInput(rf.mfa, amr, "", now.Add(-5*time.Minute), now)
	} else {
		in.Session = policy.NewSessionInput(false, []string{}, "", time.Time{}, now)
	}
	return in.AuditMap(), nil
}

// policyInWindow reports whether t's time of day is in [start, end), which may
// wrap midnight.
func policyInWindow(t time.Time, start, end time.Duration) bool {
	tod := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
	if start <= end {
		return tod >= start && tod < end
	}
	return tod >= start || tod < end
}

// policyMatchRoute finds the configured route for host and path (longest prefix).
func policyMatchRoute(cfg *config.Config, host, path string) policy.RouteInput {
	var best *config.Route
	bestLen := -1
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if !strings.EqualFold(strings.TrimSuffix(r.Host, "."), host) {
			continue
		}
		p := strings.TrimSuffix(r.PathPrefix, "/")
		if p != "" && path != p && !strings.HasPrefix(path, p+"/") {
			continue
		}
		if len(p) > bestLen {
			best, bestLen = r, len(p)
		}
	}
	if best == nil {
		return policy.RouteInput{Host: host, MFA: "optional"}
	}
	mfa := best.MFA
	if mfa == "" {
		mfa = "optional"
	}
	return policy.RouteInput{Name: best.Name, Host: strings.ToLower(best.Host), Public: best.Public, MFA: mfa}
}

const policyReplayUsage = `Usage: gatehouse policy replay --audit DIR --policy DRAFT

Re-judges every decision recorded in the audit log under DIR with the draft
policy directory DRAFT (its own tests must pass) and prints each decision
whose outcome changes. Decisions without a recorded input (anomaly blocks,
inputs sealed by encryption at rest) are skipped and counted.

Exit codes: 0 no decision changes; 1 at least one changes (or the draft does
not compile, or the log cannot be read); 2 usage error.

Flags:
`

func runPolicyReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := policyFlags("policy replay", policyReplayUsage, stderr)
	auditDir := fs.String("audit", "", "audit log directory")
	draft := fs.String("policy", "", "draft policy directory")
	timeout := fs.Duration("timeout", policy.DefaultTimeout, "evaluation timeout per decision")
	if _, stop, code := parsePolicyArgs(fs, args); stop {
		return code
	}
	if *auditDir == "" || *draft == "" {
		fmt.Fprintln(stderr, "gatehouse policy replay: --audit and --policy are required")
		fs.Usage()
		return exitUsage
	}
	set, err := policy.Compile(ctx, *draft, policy.CompileOptions{Timeout: *timeout})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse policy replay: %v\n", err)
		return 1
	}
	st, err := policy.Replay(ctx, *auditDir, set, func(c policy.ReplayChange) {
		r := c.Record
		fmt.Fprintf(stdout, "CHANGED %s:%d index=%d request=%s: %s -> %s (was: %s; now: %s)\n",
			r.File, r.Line, r.Index, r.RequestID, r.Outcome, c.New.Outcome, policyList(r.Reasons), policyList(c.New.Reasons))
	})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse policy replay: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "replayed %d decisions from %d files with revision %s: %d changed, %d skipped (no input), %d unreadable lines\n",
		st.Decisions, st.Files, set.Revision(), st.Changed, st.Skipped, st.Unreadable)
	if st.Changed > 0 {
		return 1
	}
	return 0
}
