package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// extraMandated names the calibration row whose bare proxy does, for every
// request, the work the issues require of the `policy` row, through
// Gatehouse's own packages and with none of its pipeline around them:
//
//   - the identity headers and assertion upstream (as extraHeaders),
//   - a decision of the cookbook policy (examples/policies) with the
//     decision memo, as Gatehouse serves it, on an input built from the
//     request, and
//   - two records in a signed audit log (batch durability): the decision,
//     with its input summary, before the request goes upstream, and the
//     completion after.
//
// It leaves out what Gatehouse does besides: the session check, routing,
// path normalisation, request ids, the guard contexts, the anomaly stage,
// metrics. Its ratio is therefore an upper bound of what any pipeline built
// on these packages can reach on this machine.
const extraMandated = "mandated"

// extraMandatedRedis is extraMandated plus what the `anomaly-redis` row
// adds: the anomaly detector (the row's two rules) with its state in a
// real redis-server, asked before the decision (input.risk), guarding the
// request while it is served and told of its completion.
const extraMandatedRedis = "mandated-redis"

// mandated is the required per-request work of extraMandated.
type mandated struct {
	engine *policy.Engine
	log    *audit.Log
	// detector is set for extraMandatedRedis.
	detector *anomaly.Detector
}

// newMandatedRedis is newMandated with the anomaly detector on Redis at
// addr.
func newMandatedRedis(ctx context.Context, dir, root, addr string) (*mandated, error) {
	m, err := newMandated(ctx, dir, root)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, fmt.Errorf("BENCH_REDIS must be set")
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	zone, err := time.LoadLocation("Asia/Hong_Kong")
	if err != nil {
		return nil, err
	}
	// The anomaly-redis row's rules (rows.go, anomalyConf).
	rules := []anomaly.Rule{
		{Name: "bulk-download-at-night", Night: true, Window: time.Hour, DownloadsOver: 1000000,
			Actions: []anomaly.Action{anomaly.ActionAlert, anomaly.ActionBlockSession}},
		{Name: "unusual-volume", Window: time.Hour, RequestsOver: 100000000, Actions: []anomaly.Action{anomaly.ActionAlert}},
	}
	d, err := anomaly.New(anomaly.Options{Zone: zone, Night: "22:00-06:00", Rules: rules, Store: anomaly.NewRedisStore(c, "")})
	if err != nil {
		return nil, fmt.Errorf("anomaly: %w", err)
	}
	if err := d.Ready(ctx); err != nil {
		return nil, fmt.Errorf("anomaly: %w", err)
	}
	m.detector = d
	return m, nil
}

// newMandated opens a fresh audit log in dir and loads the cookbook from
// the repository at root.
func newMandated(ctx context.Context, dir, root string) (*mandated, error) {
	if dir == "" || root == "" {
		return nil, fmt.Errorf("BENCH_DIR and BENCH_ROOT must be set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	skey, _, err := note.GenerateKey(rand.Reader, "bench.gatehouse")
	if err != nil {
		return nil, err
	}
	key, err := audit.ParseSigningKey(skey)
	if err != nil {
		return nil, err
	}
	lg, err := audit.Open(ctx, audit.Options{Dir: dir, Key: key, Durability: audit.DurabilityBatch})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	eng, err := policy.New(ctx, policy.Options{Dir: filepath.Join(root, "examples", "policies"), Timeout: 500 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := eng.Ready(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &mandated{engine: eng, log: lg}, nil
}

// The identity the bench's signed-in user has in Gatehouse's rows.
var (
	benchAMR    = []string{"pwd", "otp"}
	benchGroups = []string{"staff", "finance"}
	benchRoles  = []string{"admin", "staff"}
)

const benchSession = "uD7E9PkglJyEMk7acoihK7nRCl-P9EdOr4k6rxFigOg"

// wrap does the required work around next (the reverse proxy).
func (m *mandated) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		now := time.Now()
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		in := policy.Input{
			Request: policy.RequestInput{ID: "7787fbf0db13f78a03199dbdb4d7f984", Method: r.Method, Host: strings.ToLower(host),
				Path: r.URL.Path, Query: policy.QueryFromURL(r.URL), Headers: policy.HeadersFromHTTP(r.Header), RemoteIP: ip},
			User:    policy.UserInput{Sub: "alice", Email: "alice@example.com", Name: "Alice Admin", Groups: benchGroups, Roles: benchRoles},
			Session: policy.NewSessionInput(true, benchAMR, "urn:gatehouse:mfa", now.Add(-time.Minute), now),
			Route:   policy.RouteInput{Name: "files", Host: "app.localhost", MFA: "optional"},
			Time:    policy.NewTimeInput(now, time.UTC, false),
			Risk:    policy.RiskInput{Flags: []string{}},
		}
		subject := anomaly.Subject{User: in.User.Sub, Session: benchSession, IP: ip, AuthTime: now.Add(-time.Minute)}
		if m.detector != nil {
			risk, err := m.detector.Assess(ctx, subject)
			if err != nil || risk.Blocked {
				http.Error(w, fmt.Sprintf("blocked: %s %v", risk.Reason, err), http.StatusForbidden)
				return
			}
			in.Risk = policy.RiskInput{Flags: risk.Flags, Requests1h: risk.Counts.Requests, Downloads1h: risk.Counts.Downloads,
				Bytes1h: risk.Counts.Bytes, StepUp: risk.StepUp}
			if in.Risk.Flags == nil {
				in.Risk.Flags = []string{}
			}
		}
		d, err := m.engine.Decide(ctx, in)
		if err != nil || !d.Allowed() {
			http.Error(w, fmt.Sprintf("denied: %v %v", d.Reasons, err), http.StatusForbidden)
			return
		}
		rec := audit.Record{Type: audit.TypeDecision, Subject: in.User.Sub, SessionID: benchSession,
			RequestID: in.Request.ID, Route: in.Route.Name, Method: r.Method, Host: r.Host, Path: in.Request.Path,
			Email: in.User.Email, ClientIP: ip, InputJSON: in.AppendAuditJSON(nil), Outcome: "allow", Revision: d.Revision}
		if _, err := m.log.Append(ctx, &rec); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		if m.detector != nil {
			wctx, release := m.detector.Watch(ctx, subject)
			next.ServeHTTP(cw, r.WithContext(wctx))
			_ = m.detector.Observe(ctx, subject, anomaly.Observation{Path: in.Request.Path, Status: cw.status, Bytes: cw.bytes})
			if release != nil {
				release()
			}
		} else {
			next.ServeHTTP(cw, r)
		}
		done := audit.Record{Type: audit.TypeCompletion, Subject: rec.Subject, SessionID: rec.SessionID, RequestID: rec.RequestID,
			Route: rec.Route, Method: rec.Method, Host: rec.Host, Path: rec.Path, Email: rec.Email, ClientIP: ip,
			Status: cw.status, Bytes: cw.bytes, DurationNS: int64(time.Since(now))}
		_, _ = m.log.Append(context.WithoutCancel(ctx), &done)
	})
}

// countingWriter notes the status and the bytes of the answer, as the
// completion record needs.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.bytes += int64(n)
	return n, err
}

// Flush lets the reverse proxy flush through the wrapper.
func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
