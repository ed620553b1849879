package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
)

// gatehouse sessions revoke --user U | --session ID: end sessions on every
// host and replica through the admin API of a running gatehouse.

func init() {
	register(command{name: "sessions revoke", summary: "end sessions: --user U | --session ID (admin API)", run: runSessionsRevoke})
}

func runSessionsRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cfgPath, admin, tokenFile, asJSON := anomalyFlags("sessions revoke", stderr)
	user := fs.String("user", "", "user id (OIDC sub): every current session of this user ends")
	session := fs.String("session", "", "session id to end")
	reason := fs.String("reason", "", "reason recorded in the audit log")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	body, ok := userOrSession(fs, *user, *session, stderr)
	if !ok {
		return exitUsage
	}
	if *reason != "" {
		body["reason"] = *reason
	}
	a, err := resolveAnomalyAdmin(*cfgPath, *admin, *tokenFile, *asJSON)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse sessions revoke: %v\n", err)
		return 1
	}
	var out struct {
		Error string `json:"error"`
	}
	code, raw, err := a.call(ctx, http.MethodPost, "/api/v1/sessions/revoke", body, &out)
	if err != nil || code != http.StatusOK {
		fmt.Fprintf(stderr, "gatehouse sessions revoke: %s\n", anomalyErrText(code, out.Error, err))
		return 1
	}
	if a.json {
		_, _ = stdout.Write(raw)
		return 0
	}
	target := "session " + body["session"]
	if body["user"] != "" {
		target = "user " + body["user"]
	}
	fmt.Fprintf(stdout, "revoked %s (takes effect on the next request, on every replica)\n", target)
	return 0
}
