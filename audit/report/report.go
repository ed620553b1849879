// Package report turns audit records into compliance reports: the record
// of processing and its security (GDPR Art. 30 and 32, Hong Kong PDPO DPP4)
// and the data-subject access report (GDPR Art. 15, PDPO DPP6). A report
// states the integrity of the log it was built from (the verified
// checkpoint and root) before anything else. Build aggregates; Render
// writes HTML (one self-contained printable file, inline CSS and SVG), CSV
// or JSON. Output is deterministic for the same records, so it is tested
// against golden files.
package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// Integrity is what verification established about the log.
type Integrity struct {
	Verified   bool  `json:"verified"`
	Records    int64 `json:"records"`
	Checkpoint int64 `json:"checkpoint_size"`
	// Unsigned records follow the latest checkpoint: no signature covers
	// them, so they are not verified (a live log has a few).
	Unsigned   int64  `json:"unsigned_records"`
	Root       string `json:"checkpoint_root"`
	Origin     string `json:"origin"`
	KeyFromLog bool   `json:"key_from_log"` // verified only against the log's own key.pub
	Problem    string `json:"problem,omitempty"`
}

// Options shape a report.
type Options struct {
	From, To  time.Time
	User      string // data-subject report for this subject or email
	Generated time.Time
	Location  *time.Location // for display; default UTC
}

// Totals counts records by kind.
type Totals struct {
	Records        int   `json:"records"`
	Decisions      int   `json:"decisions"`
	Allowed        int   `json:"allowed"`
	Denied         int   `json:"denied"`
	StepUps        int   `json:"step_up_decisions"`
	Logins         int   `json:"logins"`
	LoginsMFA      int   `json:"logins_with_mfa"`
	LoginsNoMFA    int   `json:"logins_without_mfa"`
	LoginFailures  int   `json:"login_failures"`
	StepUpLogins   int   `json:"step_up_logins"`
	Logouts        int   `json:"logouts"`
	Anomalies      int   `json:"anomalies"`
	Alerts         int   `json:"alerts"`
	Revocations    int   `json:"session_revocations"`
	ConfigReloads  int   `json:"config_reloads"`
	PolicyReloads  int   `json:"policy_reloads"`
	KeyChanges     int   `json:"key_changes"`
	SealedRecords  int   `json:"sealed_records"` // personal fields unreadable (no key or shredded)
	CompletedBytes int64 `json:"bytes_sent"`
}

// RouteRow is activity on one application.
type RouteRow struct {
	Route  string `json:"route"`
	Allow  int    `json:"allow"`
	Deny   int    `json:"deny"`
	StepUp int    `json:"step_up"`
	Total  int    `json:"total"`
}

// UserRow is activity of one user.
type UserRow struct {
	User      string `json:"user"`
	Requests  int    `json:"requests"`
	Denied    int    `json:"denied"`
	Logins    int    `json:"logins"`
	Anomalies int    `json:"anomalies"`
}

// Event is one listed record (denials, anomalies, administrative events,
// and every record of a data-subject report).
type Event struct {
	Index   int64     `json:"index"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	User    string    `json:"user,omitempty"`
	Route   string    `json:"route,omitempty"`
	Path    string    `json:"path,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Count is a named number (top lists).
type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Hour is one bar of the per-hour chart.
type Hour struct {
	Start    time.Time `json:"start"`
	Requests int       `json:"requests"`
	Denials  int       `json:"denials"`
}

// Report is the built report.
type Report struct {
	Title          string     `json:"title"`
	From           time.Time  `json:"from"`
	To             time.Time  `json:"to"`
	Generated      time.Time  `json:"generated"`
	User           string     `json:"data_subject,omitempty"`
	Integrity      Integrity  `json:"integrity"`
	Totals         Totals     `json:"totals"`
	Routes         []RouteRow `json:"routes"`
	Users          []UserRow  `json:"users"`
	TopUsers       []Count    `json:"top_users"`
	TopDeniedPaths []Count    `json:"top_denied_paths"`
	Hours          []Hour     `json:"hours"`
	Denials        []Event    `json:"denials"`
	Anomalies      []Event    `json:"anomalies"`
	Admin          []Event    `json:"administrative_events"`
	Records        []Event    `json:"records,omitempty"` // data-subject report: every record about the person
	loc            *time.Location
}

// maxListed bounds the listed denials/anomalies in a report (totals stay exact).
const maxListed = 500

func userOf(r *audit.Record) string {
	if r.Email != "" {
		return r.Email
	}
	return r.Subject
}

// localHour is the start of the hour of loc's wall clock that t falls in.
// Truncating the instant (t.Truncate(time.Hour)) cuts at UTC hours, which
// are not the local ones where the offset has minutes (India +05:30, Nepal
// +05:45): the chart's "15h" bar would hold 14:30-15:30.
func localHour(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	into := time.Duration(lt.Minute())*time.Minute + time.Duration(lt.Second())*time.Second + time.Duration(lt.Nanosecond())
	return t.Add(-into).UTC()
}

// Build aggregates recs (already filtered to the period and user).
func Build(recs []*audit.Record, integ Integrity, o Options) *Report {
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	rep := &Report{From: o.From, To: o.To, Generated: o.Generated, User: o.User, Integrity: integ, loc: loc,
		Title: "Gatehouse access and security report"}
	if o.User != "" {
		rep.Title = "Gatehouse data-subject access report"
	}
	routes := map[string]*RouteRow{}
	users := map[string]*UserRow{}
	denied := map[string]int{}
	hours := map[time.Time]*Hour{}
	user := func(r *audit.Record) *UserRow {
		u := userOf(r)
		if u == "" {
			u = "(anonymous)"
		}
		row := users[u]
		if row == nil {
			row = &UserRow{User: u}
			users[u] = row
		}
		return row
	}
	hour := func(t time.Time) *Hour {
		h := localHour(t, loc)
		b := hours[h]
		if b == nil {
			b = &Hour{Start: h}
			hours[h] = b
		}
		return b
	}
	add := func(list *[]Event, ev Event) {
		if len(*list) < maxListed {
			*list = append(*list, ev)
		}
	}
	t := &rep.Totals
	for _, r := range recs {
		t.Records++
		if r.Sealed != nil {
			t.SealedRecords++
		}
		ev := Event{Index: r.Index, Time: r.Time, Type: string(r.Type), User: userOf(r), Route: r.Route, Path: r.Path,
			Outcome: r.Outcome, Detail: detail(r)}
		if o.User != "" {
			rep.Records = append(rep.Records, ev)
		}
		switch r.Type {
		case audit.TypeDecision:
			t.Decisions++
			rr := routes[r.Route]
			if rr == nil {
				rr = &RouteRow{Route: r.Route}
				routes[r.Route] = rr
			}
			rr.Total++
			u := user(r)
			u.Requests++
			h := hour(r.Time)
			h.Requests++
			switch r.Outcome {
			case audit.OutcomeAllow:
				t.Allowed++
				rr.Allow++
			case audit.OutcomeDeny:
				t.Denied++
				rr.Deny++
				u.Denied++
				h.Denials++
				denied[r.Host+r.Path]++
				add(&rep.Denials, ev)
			case audit.OutcomeStepUp:
				t.StepUps++
				rr.StepUp++
			}
		case audit.TypeCompletion:
			t.CompletedBytes += r.Bytes
		case audit.TypeLogin:
			t.Logins++
			user(r).Logins++
			if r.MFA != nil && *r.MFA {
				t.LoginsMFA++
			} else {
				t.LoginsNoMFA++
			}
		case audit.TypeLoginFailure:
			t.LoginFailures++
			add(&rep.Admin, ev)
		case audit.TypeStepUp:
			t.StepUpLogins++
		case audit.TypeLogout:
			t.Logouts++
		case audit.TypeAnomaly:
			switch {
			case r.Reason == blocksSnapshot:
				// The list of active blocks the proxy writes so that a
				// restart can restore them: state, not an event.
			case slices.Equal(r.Actions, []string{"block"}) || slices.Equal(r.Actions, []string{"unblock"}):
				// An operator's block or unblock (admin API).
				add(&rep.Admin, ev)
			default:
				t.Anomalies++
				user(r).Anomalies++
				add(&rep.Anomalies, ev)
			}
		case audit.TypeAlert:
			t.Alerts++
			add(&rep.Anomalies, ev)
		case audit.TypeSessionRevoked:
			t.Revocations++
			add(&rep.Admin, ev)
		case audit.TypeConfigReload:
			t.ConfigReloads++
			add(&rep.Admin, ev)
		case audit.TypePolicyReload:
			t.PolicyReloads++
			add(&rep.Admin, ev)
		case audit.TypeKeyChange:
			t.KeyChanges++
			add(&rep.Admin, ev)
		case audit.TypeAuditStart, audit.TypeAuditStop:
			add(&rep.Admin, ev)
		}
	}
	for _, r := range routes {
		rep.Routes = append(rep.Routes, *r)
	}
	sort.Slice(rep.Routes, func(i, j int) bool { return rep.Routes[i].Route < rep.Routes[j].Route })
	for _, u := range users {
		rep.Users = append(rep.Users, *u)
		if u.Requests > 0 {
			rep.TopUsers = append(rep.TopUsers, Count{u.User, u.Requests})
		}
	}
	sort.Slice(rep.Users, func(i, j int) bool { return rep.Users[i].User < rep.Users[j].User })
	rep.TopUsers = top(rep.TopUsers, 10)
	for p, n := range denied {
		rep.TopDeniedPaths = append(rep.TopDeniedPaths, Count{p, n})
	}
	rep.TopDeniedPaths = top(rep.TopDeniedPaths, 10)
	// Every hour between the first and the last decision, quiet ones too
	// (bounded: a longer span lists only the hours with activity).
	var first, last time.Time
	for h := range hours {
		if first.IsZero() || h.Before(first) {
			first = h
		}
		if h.After(last) {
			last = h
		}
	}
	if !first.IsZero() && last.Sub(first) <= 31*24*time.Hour {
		for h := first; !h.After(last); h = h.Add(time.Hour) {
			if hours[h] == nil {
				hours[h] = &Hour{Start: h}
			}
		}
	}
	for _, h := range hours {
		rep.Hours = append(rep.Hours, *h)
	}
	sort.Slice(rep.Hours, func(i, j int) bool { return rep.Hours[i].Start.Before(rep.Hours[j].Start) })
	return rep
}

func top(c []Count, n int) []Count {
	sort.Slice(c, func(i, j int) bool {
		if c[i].Count != c[j].Count {
			return c[i].Count > c[j].Count
		}
		return c[i].Name < c[j].Name
	})
	if len(c) > n {
		c = c[:n]
	}
	return c
}

// detail is a one-line human summary of a record's type-specific fields.
func detail(r *audit.Record) string {
	var parts []string
	addf := func(format string, a ...any) { parts = append(parts, fmt.Sprintf(format, a...)) }
	if len(r.Reasons) > 0 {
		addf("reasons: %s", strings.Join(r.Reasons, ", "))
	}
	if r.Type == audit.TypeCompletion {
		addf("status %d, %d bytes, %s", r.Status, r.Bytes, r.Duration().Round(time.Microsecond))
	}
	if r.MFA != nil {
		addf("mfa %t", *r.MFA)
	}
	if len(r.AMR) > 0 {
		addf("amr %s", strings.Join(r.AMR, ","))
	}
	if r.Rule != "" {
		addf("rule %s", r.Rule)
	}
	if len(r.Actions) > 0 {
		addf("actions %s", strings.Join(r.Actions, ","))
	}
	if r.Result != "" {
		addf("result %s", r.Result)
	}
	if r.Reason != "" {
		addf("reason: %s", r.Reason)
	}
	if r.Error != "" {
		addf("error: %s", r.Error)
	}
	if r.KeyID != "" {
		addf("key %s", keyName(r.KeyID))
	}
	if r.ClientIP != "" {
		addf("from %s", r.ClientIP)
	}
	if r.Sealed != nil {
		addf("personal fields sealed (%s)", r.Sealed.Period)
	}
	return strings.Join(parts, "; ")
}

// keyName shortens a verifier key to name+hash.
func keyName(vkey string) string {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) < 2 {
		return vkey
	}
	return parts[0] + "+" + parts[1]
}

// blocksSnapshot is the reason of the anomaly records listing the active
// blocks (written by the proxy with the memory store; see docs/anomaly.md).
const blocksSnapshot = "blocks_snapshot"
