package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/demo"
	"github.com/gatehouse-dev/gatehouse/internal/idp"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

func init() {
	register(command{name: "demo", summary: "the whole system on loopback (local CA, real OIDC provider, sample apps)", run: runDemo})
}

const demoUsage = `Usage: gatehouse demo [--dir data/demo] [--port 8443] [--at HH:MM]

Runs the whole system on loopback: three sample apps (chat, files, wiki)
behind Gatehouse with a local CA, a real OpenID Provider (npm oidc-provider)
with two users, the policy cookbook, the signed audit log, and the anomaly
rules with a local webhook receiver. Host names are *.localhost, which
browsers and curl resolve to 127.0.0.1. Run it from the repository (it uses
test/idp and examples/policies); make demo installs what it needs.

--at makes it HH:MM now wherever the time of day is judged (the anomaly
rules' night window and hour bands, the policy's input.time), e.g. --at
02:00 shows the night rules by day. Every clock stays real: sign-in, MFA,
sessions and the audit log are not shifted.

Exit codes: 0 after Ctrl-C; 1 the demo could not start; 2 usage error.

Flags:
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", "data/demo", "data directory (config, keys, CA, audit log)")
	port := fs.Int("port", 8443, "HTTPS port on 127.0.0.1 (the admin listener takes the next one)")
	at := fs.String("at", "", "pretend it is HH:MM now in the anomaly timezone")
	if stop, code := parseFlags(fs, demoUsage, args, stdout, stderr); stop {
		return code
	}
	const tz = "Asia/Hong_Kong"
	zone, err := demoZone(*at, tz, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: --at: %v\n", err)
		return exitUsage
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	root, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	env, err := demo.Prepare(ctx, demo.Options{Dir: *dir, RepoRoot: root, Port: *port, Keys: demo.KeysWith(self), Timezone: tz})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	defer env.Close()
	cfg, err := config.Load(env.ConfigPath)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	log, err := proxy.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	printDemo(stdout, env, self, *at)
	if err := serveInZone(ctx, cfg, log, true, zone); err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	return 0
}

// demoZone returns a fixed zone in which it is hh:mm now (named after tz),
// or nil without --at. Only the time of day moves: instants, and so every
// clock, stay real. (Shifting the process clock instead made the real
// IdP's tokens and auth_time read as expired or as coming from the future:
// no sign-in between 00:00 and 01:00, no MFA at most hours.)
func demoZone(at, tz string, now func() time.Time) (*time.Location, error) {
	if at == "" {
		return nil, nil
	}
	t, err := time.Parse("15:04", at)
	if err != nil {
		return nil, fmt.Errorf("%q is not HH:MM", at)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return nil, err
	}
	n := now().UTC()
	const day = 24 * 60 * 60
	sinceMidnight := func(h, m, s int) int { return h*3600 + m*60 + s }
	// The offset from UTC that puts now at hh:mm, in (-12h, +12h].
	off := (sinceMidnight(t.Hour(), t.Minute(), 0) - sinceMidnight(n.Hour(), n.Minute(), n.Second())) % day
	if off > day/2 {
		off -= day
	} else if off <= -day/2 {
		off += day
	}
	return time.FixedZone(tz+" (demo --at "+at+")", off), nil
}

var demoText = template.Must(template.New("demo").Parse(`
Gatehouse demo{{if .At}} (time of day set to {{.At}} Hong Kong time; clocks real){{end}}

  Apps (every one behind login; wiki needs MFA):
    https://chat.localhost:{{.Port}}/
    https://files.localhost:{{.Port}}/
    https://wiki.localhost:{{.Port}}/

  Trust the local CA:  {{.CA}}
    curl --cacert {{.CA}} -i https://chat.localhost:{{.Port}}/
    (302 to the login: open it in a browser that trusts the CA, or pass --ignore-certificate-errors)

  Users at the OpenID Provider {{.Issuer}}:
    alice / {{.AlicePassword}}  + TOTP (secret {{.TOTP}}; code now: {{.Code}}; or: oathtool --totp -b {{.TOTP}})
    bob   / {{.BobPassword}}    (password only: wiki asks for a second factor he does not have)

  Admin listener: http://127.0.0.1:{{.AdminPort}}/healthz /readyz /metrics (token in {{.Dir}}/admin.token)
  Alerts received by the demo webhook: {{.Alerts}}

  Tour (bulk download at night, block, audit): scripts/demo-tour.sh {{.Dir}}   (start the demo with --at 02:00)

  Audit log, verified offline and reported:
    {{.Self}} audit verify {{.Dir}}/audit --key {{.Dir}}/keys/audit.pub
    {{.Self}} audit report {{.Dir}}/audit --key {{.Dir}}/keys/audit.pub --format html --out {{.Dir}}/report.html

Ctrl-C stops everything.
`))

func printDemo(w io.Writer, env *demo.Env, self, at string) {
	code, _ := idp.TOTP(idp.AliceTOTP, time.Now(), 6)
	rel := func(p string) string {
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, p); err == nil {
				return r
			}
		}
		return p
	}
	_ = demoText.Execute(w, map[string]any{
		"At": at, "Port": env.Port, "AdminPort": env.AdminPort, "CA": rel(filepath.Join(env.Dir, "ca", "ca.pem")),
		"Issuer": env.Issuer, "AlicePassword": idp.AlicePassword, "BobPassword": idp.BobPassword,
		"TOTP": idp.AliceTOTP, "Code": code, "Dir": rel(env.Dir), "Alerts": rel(env.AlertsFile), "Self": rel(self),
	})
}

func init() {
	register(command{name: "demo tour", summary: "walk a running demo through the bulk-download-at-night story", run: runDemoTour})
}

const demoTourUsage = `Usage: gatehouse demo tour [--dir data/demo] [--port 8443] [--downloads 60]

Against a running ` + "`gatehouse demo --at 02:00`" + `: signs in as alice (password + TOTP),
downloads files until the bulk-download-at-night rule fires, shows that the
session is blocked and that the signed alert reached the demo's webhook.

Exit codes: 0 every step happened; 1 a step did not; 2 usage error.

Flags:
`

func runDemoTour(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo tour", flag.ContinueOnError)
	dir := fs.String("dir", "data/demo", "the demo's data directory")
	port := fs.Int("port", 8443, "the demo's HTTPS port")
	n := fs.Int("downloads", 60, "files to download")
	if stop, code := parseFlags(fs, demoTourUsage, args, stdout, stderr); stop {
		return code
	}
	if err := demo.Tour(ctx, demo.TourOptions{Dir: *dir, Port: *port, Downloads: *n, Out: stdout}); err != nil {
		fmt.Fprintf(stderr, "gatehouse demo tour: %v\n", err)
		return 1
	}
	return 0
}
