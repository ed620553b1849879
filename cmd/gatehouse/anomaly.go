package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// gatehouse anomaly list | unblock | block: talk to a running gatehouse
// through its admin API (admin_listen, bearer admin token).

func init() {
	register(command{name: "anomaly list", summary: "list active anomaly blocks (admin API)", run: runAnomalyList})
	register(command{name: "anomaly unblock", summary: "lift a block: --user U | --session ID | --address IP (admin API)", run: runAnomalyUnblock})
	register(command{name: "anomaly block", summary: "block --user U | --session ID | --address IP [--for 1h] (admin API)", run: runAnomalyBlock})
}

// anomalyAdmin is how a subcommand reaches the admin API.
type anomalyAdmin struct {
	base  string
	token string
	json  bool
}

func anomalyFlags(name string, stderr io.Writer) (*flag.FlagSet, *string, *string, *string, *bool) {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gatehouse %s [flags]\n\n%s, through the admin API of a running gatehouse.\n\nFlags:\n", name, commands[name].summary)
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nExit codes: 0 done; 1 the admin API refused or could not be reached; 2 usage error.")
	}
	cfgPath := fs.String("config", "gatehouse.yaml", "config file (admin_listen and the admin token are read from it)")
	admin := fs.String("admin", "", "admin API base URL (default: http://<admin_listen>)")
	tokenFile := fs.String("token-file", "", "file holding the admin token (default: the config's admin_token / admin_token_file; env GATEHOUSE_ADMIN_TOKEN)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	return fs, cfgPath, admin, tokenFile, asJSON
}

// resolveAnomalyAdmin finds the admin URL and token: flags first, then the
// environment, then the config file.
func resolveAnomalyAdmin(cfgPath, admin, tokenFile string, asJSON bool) (*anomalyAdmin, error) {
	a := &anomalyAdmin{base: strings.TrimRight(admin, "/"), json: asJSON}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read admin token: %w", err)
		}
		a.token = strings.TrimSpace(string(b))
	} else if t := os.Getenv("GATEHOUSE_ADMIN_TOKEN"); t != "" {
		a.token = t
	}
	if a.base == "" || a.token == "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("load %s (or give --admin and --token-file): %w", cfgPath, err)
		}
		if a.token == "" {
			a.token = cfg.AdminToken.Reveal()
		}
		if a.base == "" {
			host, port, err := net.SplitHostPort(cfg.AdminListen)
			if err != nil {
				return nil, fmt.Errorf("admin_listen %q: %w", cfg.AdminListen, err)
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			a.base = "http://" + net.JoinHostPort(host, port)
		}
	}
	if a.token == "" {
		return nil, errors.New("no admin token: set admin_token(_file) in the config, GATEHOUSE_ADMIN_TOKEN or --token-file")
	}
	return a, nil
}

// call sends one admin request and decodes the JSON answer into out.
func (a *anomalyAdmin) call(ctx context.Context, method, path string, body any, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("admin request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("admin API %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read admin answer: %w", err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("admin answer (status %d) is not JSON: %w", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, raw, nil
}

// anomalyBlockView is one block as the admin API lists it.
type anomalyBlockView struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
	Until   time.Time `json:"until"`
	Counts  struct {
		Requests  int64 `json:"requests"`
		Bytes     int64 `json:"bytes"`
		Downloads int64 `json:"downloads"`
	} `json:"counts"`
}

func runAnomalyList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath, admin, tokenFile, asJSON := anomalyFlags("anomaly list", stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err == nil {
			fmt.Fprintf(stderr, "gatehouse anomaly list: unexpected argument %q\n", fs.Arg(0))
		}
		return exitUsage
	}
	a, err := resolveAnomalyAdmin(*cfgPath, *admin, *tokenFile, *asJSON)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse anomaly list: %v\n", err)
		return 1
	}
	var out struct {
		Blocks []anomalyBlockView `json:"blocks"`
		Error  string             `json:"error"`
	}
	code, raw, err := a.call(ctx, http.MethodGet, "/api/v1/anomaly/blocks", nil, &out)
	if err != nil || code != http.StatusOK {
		fmt.Fprintf(stderr, "gatehouse anomaly list: %s\n", anomalyErrText(code, out.Error, err))
		return 1
	}
	if a.json {
		_, _ = stdout.Write(raw)
		return 0
	}
	if len(out.Blocks) == 0 {
		fmt.Fprintln(stdout, "no active blocks")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tRULE\tREASON\tSINCE\tUNTIL\tDOWNLOADS\tBYTES")
	for _, b := range out.Blocks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", b.Kind, b.ID, orDash(b.Rule), b.Reason,
			b.Created.UTC().Format(time.RFC3339), b.Until.UTC().Format(time.RFC3339), b.Counts.Downloads, b.Counts.Bytes)
	}
	_ = tw.Flush()
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func anomalyErrText(code int, apiErr string, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case apiErr != "":
		return fmt.Sprintf("admin API answered %d: %s", code, apiErr)
	}
	return fmt.Sprintf("admin API answered %d", code)
}

// userOrSession is the body naming one user or one session.
func userOrSession(fs *flag.FlagSet, user, session string, stderr io.Writer) (map[string]string, bool) {
	if (user == "") == (session == "") || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: give exactly one of --user or --session\n", fs.Name())
		return nil, false
	}
	if user != "" {
		return map[string]string{"user": user}, true
	}
	return map[string]string{"session": session}, true
}

// anomalyTarget is the body naming a block's target: one user, session or
// anonymous caller's address.
func anomalyTarget(fs *flag.FlagSet, user, session, address string, stderr io.Writer) (map[string]string, bool) {
	body := map[string]string{}
	for k, v := range map[string]string{"user": user, "session": session, "address": address} {
		if v != "" {
			body[k] = v
		}
	}
	if len(body) != 1 || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: give exactly one of --user, --session or --address\n", fs.Name())
		return nil, false
	}
	return body, true
}

func runAnomalyUnblock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath, admin, tokenFile, asJSON := anomalyFlags("anomaly unblock", stderr)
	user := fs.String("user", "", "user id (OIDC sub) to unblock")
	session := fs.String("session", "", "session id to unblock")
	address := fs.String("address", "", "an anonymous caller's IP address to unblock")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	body, ok := anomalyTarget(fs, *user, *session, *address, stderr)
	if !ok {
		return exitUsage
	}
	a, err := resolveAnomalyAdmin(*cfgPath, *admin, *tokenFile, *asJSON)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse anomaly unblock: %v\n", err)
		return 1
	}
	var out struct {
		Unblocked bool   `json:"unblocked"`
		Error     string `json:"error"`
	}
	code, raw, err := a.call(ctx, http.MethodPost, "/api/v1/anomaly/unblock", body, &out)
	switch {
	case err == nil && code == http.StatusNotFound:
		fmt.Fprintf(stderr, "gatehouse anomaly unblock: no active block for %s\n", anomalyTargetText(body))
		return 1
	case err != nil || code != http.StatusOK:
		fmt.Fprintf(stderr, "gatehouse anomaly unblock: %s\n", anomalyErrText(code, out.Error, err))
		return 1
	}
	if a.json {
		_, _ = stdout.Write(raw)
		return 0
	}
	fmt.Fprintf(stdout, "unblocked %s\n", anomalyTargetText(body))
	return 0
}

func anomalyTargetText(body map[string]string) string {
	if u, ok := body["user"]; ok {
		return "user " + u
	}
	return "session " + body["session"]
}

func runAnomalyBlock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath, admin, tokenFile, asJSON := anomalyFlags("anomaly block", stderr)
	user := fs.String("user", "", "user id (OIDC sub) to block")
	session := fs.String("session", "", "session id to block")
	address := fs.String("address", "", "an anonymous caller's IP address to block")
	dur := fs.Duration("for", 0, "how long (default: anomaly.block_for)")
	reason := fs.String("reason", "", "reason recorded in the audit log")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	body, ok := anomalyTarget(fs, *user, *session, *address, stderr)
	if !ok {
		return exitUsage
	}
	if *dur < 0 {
		fmt.Fprintln(stderr, "gatehouse anomaly block: --for must be positive")
		return exitUsage
	}
	if *dur > 0 {
		body["for"] = dur.String()
	}
	if *reason != "" {
		body["reason"] = *reason
	}
	a, err := resolveAnomalyAdmin(*cfgPath, *admin, *tokenFile, *asJSON)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse anomaly block: %v\n", err)
		return 1
	}
	var out struct {
		Block anomalyBlockView `json:"block"`
		Error string           `json:"error"`
	}
	code, raw, err := a.call(ctx, http.MethodPost, "/api/v1/anomaly/block", body, &out)
	if err != nil || code != http.StatusOK {
		fmt.Fprintf(stderr, "gatehouse anomaly block: %s\n", anomalyErrText(code, out.Error, err))
		return 1
	}
	if a.json {
		_, _ = stdout.Write(raw)
		return 0
	}
	fmt.Fprintf(stdout, "blocked %s until %s\n", anomalyTargetText(body), out.Block.Until.UTC().Format(time.RFC3339))
	return 0
}
