package report

import (
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
)

//go:embed report.html.tmpl
var tmplFS embed.FS

// Formats Render knows.
var Formats = []string{"html", "csv", "json"}

// Render writes the report in format (html, csv or json).
func Render(w io.Writer, rep *Report, format string) error {
	switch format {
	case "html":
		return renderHTML(w, rep)
	case "csv":
		return renderCSV(w, rep)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("render json report: %w", err)
		}
		return nil
	}
	return fmt.Errorf("render report: unknown format %q (html, csv, json)", format)
}

// renderCSV writes one table with a section column, so that a spreadsheet
// or SIEM can filter: summary, integrity, route, user, denial, anomaly,
// admin, hour and (data-subject reports) record rows.
func renderCSV(w io.Writer, rep *Report) error {
	cw := csv.NewWriter(w)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	n := strconv.Itoa
	rows := [][]string{{"section", "time", "index", "type", "user", "route", "path", "outcome", "count", "detail"}}
	row := func(section, t, idx, typ, user, route, path, outcome, count, detail string) {
		r := []string{section, t, idx, typ, user, route, path, outcome, count, detail}
		for i := range r {
			r[i] = csvCell(r[i])
		}
		rows = append(rows, r)
	}
	in := rep.Integrity
	row("integrity", ts(rep.Generated), "", "verified", "", "", "", strconv.FormatBool(in.Verified), strconv.FormatInt(in.Records, 10),
		fmt.Sprintf("checkpoint %d root %s origin %s key_from_log %t unsigned_records %d %s", in.Checkpoint, in.Root, in.Origin, in.KeyFromLog, in.Unsigned, in.Problem))
	row("period", ts(rep.From), "", "from", rep.User, "", "", "", "", "")
	row("period", ts(rep.To), "", "to", rep.User, "", "", "", "", "")
	t := rep.Totals
	for _, c := range []struct {
		k string
		v int
	}{{"records", t.Records}, {"decisions", t.Decisions}, {"allowed", t.Allowed}, {"denied", t.Denied},
		{"step_up_decisions", t.StepUps}, {"logins", t.Logins}, {"logins_with_mfa", t.LoginsMFA},
		{"logins_without_mfa", t.LoginsNoMFA}, {"login_failures", t.LoginFailures}, {"step_up_logins", t.StepUpLogins},
		{"logouts", t.Logouts}, {"anomalies", t.Anomalies}, {"alerts", t.Alerts}, {"session_revocations", t.Revocations},
		{"config_reloads", t.ConfigReloads}, {"policy_reloads", t.PolicyReloads}, {"key_changes", t.KeyChanges},
		{"sealed_records", t.SealedRecords}} {
		row("summary", "", "", c.k, "", "", "", "", n(c.v), "")
	}
	for _, r := range rep.Routes {
		row("route", "", "", "decision", "", r.Route, "", "allow", n(r.Allow), "")
		row("route", "", "", "decision", "", r.Route, "", "deny", n(r.Deny), "")
		row("route", "", "", "decision", "", r.Route, "", "step_up", n(r.StepUp), "")
	}
	for _, u := range rep.Users {
		row("user", "", "", "requests", u.User, "", "", "", n(u.Requests), fmt.Sprintf("denied %d logins %d anomalies %d", u.Denied, u.Logins, u.Anomalies))
	}
	for _, h := range rep.Hours {
		row("hour", ts(h.Start), "", "decision", "", "", "", "", n(h.Requests), fmt.Sprintf("denied %d", h.Denials))
	}
	ev := func(section string, list []Event) {
		for _, e := range list {
			row(section, ts(e.Time), strconv.FormatInt(e.Index, 10), e.Type, e.User, e.Route, e.Path, e.Outcome, "", e.Detail)
		}
	}
	ev("denial", rep.Denials)
	ev("anomaly", rep.Anomalies)
	ev("admin", rep.Admin)
	ev("record", rep.Records)
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("render csv report: %w", err)
	}
	return nil
}

// csvCell defuses a cell a spreadsheet would run as a formula (OWASP CSV
// injection): a value starting with =, +, -, @, a tab or a carriage return
// gets a leading single quote. User names, paths and reasons come from
// requests, so any of them may be an attacker's.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// bar is one bar of an SVG chart, geometry precomputed.
type bar struct {
	X, Y, W, H float64
	Y2, H2     float64 // second series (denials)
	Label      string
	Value      int
	Value2     int
}

type chart struct {
	Width, Height float64
	Bars          []bar
	Max           int
}

func hourChart(hs []Hour, loc *time.Location) chart {
	c := chart{Width: 720, Height: 160}
	for _, h := range hs {
		c.Max = max(c.Max, h.Requests)
	}
	if len(hs) == 0 || c.Max == 0 {
		return c
	}
	bw := min((c.Width-40)/float64(len(hs)), 40)
	for i, h := range hs {
		hh := float64(h.Requests) / float64(c.Max) * (c.Height - 30)
		dh := float64(h.Denials) / float64(c.Max) * (c.Height - 30)
		c.Bars = append(c.Bars, bar{X: 30 + float64(i)*bw, W: max(bw-2, 1), Y: c.Height - 20 - hh, H: hh, Y2: c.Height - 20 - dh, H2: dh,
			Label: h.Start.In(loc).Format("01-02 15h"), Value: h.Requests, Value2: h.Denials})
	}
	return c
}

func topChart(cs []Count) chart {
	c := chart{Width: 720, Height: float64(len(cs))*22 + 10}
	for _, x := range cs {
		c.Max = max(c.Max, x.Count)
	}
	for i, x := range cs {
		w := 0.0
		if c.Max > 0 {
			w = float64(x.Count) / float64(c.Max) * 380
		}
		c.Bars = append(c.Bars, bar{X: 300, Y: float64(i)*22 + 5, W: w, H: 16, Label: x.Name, Value: x.Count})
	}
	return c
}

func renderHTML(w io.Writer, rep *Report) error {
	loc := rep.loc
	if loc == nil {
		loc = time.UTC
	}
	funcs := template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(loc).Format("2006-01-02 15:04:05 MST")
		},
		"f": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	}
	t, err := template.New("report.html.tmpl").Funcs(funcs).ParseFS(tmplFS, "report.html.tmpl")
	if err != nil {
		return fmt.Errorf("render html report: %w", err)
	}
	data := struct {
		*Report
		HourChart, UserChart, PathChart chart
	}{rep, hourChart(rep.Hours, loc), topChart(rep.TopUsers), topChart(rep.TopDeniedPaths)}
	if err := t.Execute(w, data); err != nil {
		return fmt.Errorf("render html report: %w", err)
	}
	return nil
}

// WriteFile renders the report into path atomically (temp file + rename).
func WriteFile(path string, rep *Report, format string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, ".report-*")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	err = Render(f, rep, format)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

// FromLog verifies the log in dir with vs (nil: its own key.pub), reads
// the records in [o.From, o.To) (for o.User, if set) and builds the report.
// A log that fails verification is an error unless unverified is set; the
// report then says why it is not verified.
func FromLog(dir string, vs []note.Verifier, ring *audit.Keyring, o Options, unverified bool) (*Report, error) {
	integ := Integrity{}
	sum, err := audit.Verify(dir, audit.VerifyOptions{Verifiers: vs})
	switch {
	case err == nil:
		integ = Integrity{Verified: true, Records: sum.Records, Checkpoint: sum.Latest.Size, Root: sum.Latest.Root.String(),
			Origin: sum.Latest.Origin, KeyFromLog: sum.KeyFromLog}
	case unverified:
		integ.Problem = err.Error()
	default:
		return nil, fmt.Errorf("report on %s: log does not verify: %w", dir, err)
	}
	recs, err := audit.Search(dir, ring, audit.Filter{From: o.From, To: o.To, User: o.User})
	if err != nil {
		return nil, fmt.Errorf("report on %s: %w", dir, err)
	}
	return Build(recs, integ, o), nil
}
