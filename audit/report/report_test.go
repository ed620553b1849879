package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/audit"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var base = time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)

// fixture is a day of activity touching every record type.
func fixture() []*audit.Record {
	yes, no := true, false
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	recs := []*audit.Record{
		{Type: audit.TypeAuditStart, Time: at(0), KeyID: "audit.example+1234abcd+AQID"},
		{Type: audit.TypeLogin, Time: at(1), Subject: "u-ana", Email: "ana@example.com", SessionID: "s1", MFA: &yes, AMR: []string{"pwd", "otp"}},
		{Type: audit.TypeLogin, Time: at(2), Subject: "u-bob", Email: "bob@example.com", SessionID: "s2", MFA: &no, AMR: []string{"pwd"}},
		{Type: audit.TypeLoginFailure, Time: at(3), Reason: "state mismatch", ClientIP: "198.51.100.7"},
	}
	for i := 0; i < 12; i++ {
		r := &audit.Record{Type: audit.TypeDecision, Time: at(10 + i*15), Subject: "u-ana", Email: "ana@example.com",
			Route: "files", Host: "files.example.com", Method: "GET", Path: "/s/report-" + string(rune('a'+i)) + ".pdf",
			Outcome: audit.OutcomeAllow, Revision: "r1", ClientIP: "203.0.113.9"}
		if i%4 == 3 {
			r.Outcome, r.Reasons, r.Path = audit.OutcomeDeny, []string{"download at night"}, "/s/payroll.xlsx"
		}
		recs = append(recs, r, &audit.Record{Type: audit.TypeCompletion, Time: at(10 + i*15), Subject: "u-ana",
			Route: "files", Status: 200, Bytes: 1000, DurationNS: int64(3 * time.Millisecond)})
	}
	recs = append(recs,
		&audit.Record{Type: audit.TypeDecision, Time: at(50), Subject: "u-bob", Email: "bob@example.com", Route: "chat",
			Host: "chat.example.com", Path: "/api/admin", Outcome: audit.OutcomeStepUp, Reasons: []string{"mfa_required"}},
		&audit.Record{Type: audit.TypeStepUp, Time: at(51), Subject: "u-bob", Email: "bob@example.com", MFA: &yes, Result: "mfa"},
		&audit.Record{Type: audit.TypeDecision, Time: at(52), Subject: "u-bob", Email: "bob@example.com", Route: "chat",
			Host: "chat.example.com", Path: "/api/admin", Outcome: audit.OutcomeDeny, Reasons: []string{"not in group admins"}},
		&audit.Record{Type: audit.TypeAnomaly, Time: at(130), Subject: "u-ana", Email: "ana@example.com", Rule: "bulk-download-at-night",
			Actions: []string{"alert", "block_session"}, Flags: []string{"night"}},
		&audit.Record{Type: audit.TypeAlert, Time: at(130), Subject: "u-ana", Rule: "bulk-download-at-night", Result: "delivered"},
		&audit.Record{Type: audit.TypeSessionRevoked, Time: at(131), Subject: "u-ana", SessionID: "s1", Reason: "anomaly: bulk-download-at-night", Actor: "anomaly"},
		&audit.Record{Type: audit.TypePolicyReload, Time: at(140), Result: "failed", Error: "policy test failed: test_deny_night"},
		&audit.Record{Type: audit.TypeConfigReload, Time: at(141), Result: "ok"},
		&audit.Record{Type: audit.TypeKeyChange, Time: at(142), KeyID: "audit.example+9999abcd+AQID", Reason: "audit signing key changed"},
		&audit.Record{Type: audit.TypeLogout, Time: at(150), Subject: "u-bob", Email: "bob@example.com", SessionID: "s2"},
		&audit.Record{Type: audit.TypeAuditStop, Time: at(200)},
	)
	for i, r := range recs {
		r.Version, r.Index = 1, int64(i)
	}
	return recs
}

var integ = Integrity{Verified: true, Records: 40, Checkpoint: 40, Root: "n1Hc3P4f0sYnB1d7G8m0g5f5oGRVXz3l3VqF2A5tYkI=", Origin: "audit.example"}

func TestGolden(t *testing.T) {
	opts := Options{From: base, To: base.Add(24 * time.Hour), Generated: base.Add(25 * time.Hour)}
	full := fixture()
	var ana []*audit.Record
	for _, r := range full {
		if (audit.Filter{User: "ana@example.com"}).Match(r) {
			ana = append(ana, r)
		}
	}
	subj := opts
	subj.User = "ana@example.com"
	broken := integ
	broken.Verified, broken.Problem = false, "modified record: segments/00000000000000000000.jsonl line 5 (index 4)"
	cases := []struct {
		name string
		rep  *Report
	}{
		{"report", Build(full, integ, opts)},
		{"subject", Build(ana, integ, subj)},
		{"unverified", Build(full[:6], broken, opts)},
	}
	for _, tc := range cases {
		for _, format := range Formats {
			if tc.name == "unverified" && format != "html" {
				continue
			}
			t.Run(tc.name+"."+format, func(t *testing.T) {
				var b bytes.Buffer
				if err := Render(&b, tc.rep, format); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", tc.name+"."+format+".golden")
				if *update {
					os.MkdirAll("testdata", 0o755)
					if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update)", err)
				}
				if !bytes.Equal(b.Bytes(), want) {
					t.Fatalf("%s differs from %s (run with -update after checking the change)\n%s", tc.name, golden, b.String())
				}
			})
		}
	}
}

func TestBuildCounts(t *testing.T) {
	rep := Build(fixture(), integ, Options{})
	tt := rep.Totals
	if tt.Decisions != 14 || tt.Denied != 4 || tt.Allowed != 9 || tt.StepUps != 1 {
		t.Fatalf("decisions %+v", tt)
	}
	if tt.Logins != 2 || tt.LoginsMFA != 1 || tt.LoginsNoMFA != 1 || tt.LoginFailures != 1 || tt.StepUpLogins != 1 {
		t.Fatalf("logins %+v", tt)
	}
	if tt.Anomalies != 1 || tt.Alerts != 1 || tt.Revocations != 1 || tt.PolicyReloads != 1 || tt.ConfigReloads != 1 || tt.KeyChanges != 1 {
		t.Fatalf("events %+v", tt)
	}
	if len(rep.TopDeniedPaths) == 0 || rep.TopDeniedPaths[0].Name != "files.example.com/s/payroll.xlsx" || rep.TopDeniedPaths[0].Count != 3 {
		t.Fatalf("top denied %+v", rep.TopDeniedPaths)
	}
	if rep.Routes[0].Route != "chat" || rep.Routes[1].Deny != 3 {
		t.Fatalf("routes %+v", rep.Routes)
	}
}

func TestHTMLSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Build(fixture(), integ, Options{}), "html"); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, bad := range []string{"<script", "<link", "src=", "http://", "https://"} {
		if strings.Contains(s, bad) {
			t.Errorf("HTML report references outside content: %q", bad)
		}
	}
	for _, want := range []string{"<svg", "<style>", "Verified.", "GDPR Art. 30", "PDPO"} {
		if !strings.Contains(s, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if err := Render(&b, &Report{}, "pdf"); err == nil {
		t.Fatal("unknown format accepted")
	}
}

// TestBuildOperatorBlocksAndSnapshots: an operator's block and unblock are
// administrative events, not anomalies; the proxy's snapshots of the
// active blocks are state and appear nowhere.
func TestBuildOperatorBlocksAndSnapshots(t *testing.T) {
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	before := Build(fixture(), integ, Options{})
	recs := append(fixture(),
		&audit.Record{Type: audit.TypeAnomaly, Time: at(160), Subject: "mallory", Actions: []string{"block"}, Reason: "operator:case 12",
			Detail: map[string]any{"action": "block", "kind": "user", "id": "mallory", "until": "2026-12-04T00:00:00Z", "ok": true}},
		&audit.Record{Type: audit.TypeAnomaly, Time: at(161), Subject: "mallory", Actions: []string{"unblock"}, Reason: "operator",
			Detail: map[string]any{"action": "unblock", "kind": "user", "id": "mallory"}},
		&audit.Record{Type: audit.TypeAnomaly, Time: at(162), Actions: []string{"snapshot"}, Reason: "blocks_snapshot",
			Detail: map[string]any{"action": "snapshot", "blocks": []any{}}},
	)
	rep := Build(recs, integ, Options{})
	if rep.Totals.Anomalies != before.Totals.Anomalies || len(rep.Anomalies) != len(before.Anomalies) {
		t.Errorf("anomalies %d (%d listed), want %d (%d)", rep.Totals.Anomalies, len(rep.Anomalies), before.Totals.Anomalies, len(before.Anomalies))
	}
	if len(rep.Admin) != len(before.Admin)+2 {
		t.Errorf("administrative events %d, want %d (+ block, unblock)", len(rep.Admin), len(before.Admin)+2)
	}
}
