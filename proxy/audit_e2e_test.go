package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/config"
)

// End-to-end tests of the audit stage through the real pipeline: the
// registered builder (buildAudit) opens a real log from config.

// auditTestConfig returns a config whose audit section points at a fresh
// log directory and signing key.
func auditTestConfig(t *testing.T, upstream string, durability string) (*config.Config, string) {
	t.Helper()
	base := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.proxy.test")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(base, "audit.key")
	os.WriteFile(keyFile, []byte(skey+"\n"), 0o600)
	os.WriteFile(filepath.Join(base, "audit.pub"), []byte(vkey+"\n"), 0o644)
	cfg := baseConfig(upstream)
	cfg.Audit = config.Audit{Dir: filepath.Join(base, "audit"), SigningKeyFile: keyFile, Durability: durability,
		CheckpointInterval: config.Duration(50 * time.Millisecond), Publish: config.AuditPublish{File: filepath.Join(base, "published", "checkpoint")}}
	return cfg, base
}

func auditServer(t *testing.T, cfg *config.Config) (*Server, string) {
	t.Helper()
	s, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), extra: func(w *Wiring) {
		if err := buildAudit(context.Background(), w); err != nil {
			t.Fatalf("build audit: %v", err)
		}
	}})
	t.Cleanup(func() { s.runClose(context.Background()) })
	return s, front.URL
}

func auditVerifier(t *testing.T, base string) note.Verifier {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(base, "audit.pub"))
	v, err := audit.ParseVerifierKey(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuditRecordsDecisionsAndCompletions(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	cfg, base := auditTestConfig(t, up.URL, "always")
	s, front := auditServer(t, cfg)
	frontSrv := &testFront{url: front}
	for i := range 5 {
		if code := frontSrv.get(t, "app.example.com", fmt.Sprintf("/doc/%d", i), map[string]string{"Cookie": "secret=1"}); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if err := s.runClose(context.Background()); err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(cfg.Audit.Dir, audit.VerifyOptions{Verifiers: []note.Verifier{auditVerifier(t, base)}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var decisions, completions int
	audit.Scan(cfg.Audit.Dir, nil, func(r *audit.Record) error {
		switch r.Type {
		case audit.TypeDecision:
			decisions++
			if r.Outcome != audit.OutcomeAllow || r.Route != "app" || r.Subject != alice.Subject || r.Revision != "rev1" || !strings.HasPrefix(r.Path, "/doc/") {
				t.Errorf("decision record %+v", r)
			}
		case audit.TypeCompletion:
			completions++
			if r.Status != 200 || r.Bytes == 0 || r.DurationNS == 0 {
				t.Errorf("completion record %+v", r)
			}
		}
		return nil
	})
	if decisions != 5 || completions != 5 {
		t.Fatalf("decisions %d completions %d (summary %+v)", decisions, completions, sum)
	}
	// The published copy is the final checkpoint.
	pub, err := os.ReadFile(cfg.Audit.Publish.File)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(cfg.Audit.Dir, audit.VerifyOptions{Verifiers: []note.Verifier{auditVerifier(t, base)}, Trusted: [][]byte{pub}}); err != nil {
		t.Fatalf("verify against the published checkpoint: %v", err)
	}
}

func TestAuditFailureRefusesRequests(t *testing.T) {
	up, seen := echoUpstream(t, nil)
	cfg, _ := auditTestConfig(t, up.URL, "always")
	cfg.Audit.SegmentSize = 1 // every record opens a new segment
	s, front := auditServer(t, cfg)
	f := &testFront{url: front}
	if code := f.get(t, "app.example.com", "/ok", nil); code != 200 {
		t.Fatalf("healthy log: %d", code)
	}
	n, _ := s.wiring.Recorder.(*auditRecorder).log.Size()
	// The disk "fails": the next segment cannot be created.
	os.Symlink("/dev/full", filepath.Join(cfg.Audit.Dir, "segments", fmt.Sprintf("%020d.jsonl", n)))
	before := len(*seen)
	if code := f.get(t, "app.example.com", "/after-failure", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("request with an unwritable log: %d, want 503", code)
	}
	if len(*seen) != before {
		t.Fatal("request went upstream without its decision record")
	}
	if code := f.get(t, "app.example.com", "/again", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("later request: %d, want 503", code)
	}
	code, body := adminDo(t, s.AdminHandler(), "GET", "/readyz", "")
	if code != 503 || !strings.Contains(body, `"audit"`) {
		t.Fatalf("readyz with a failed audit log: %d %s", code, body)
	}
	_, metrics := adminDo(t, s.AdminHandler(), "GET", "/metrics", "")
	if !strings.Contains(metrics, "gatehouse_audit_alerts_total 1") || !strings.Contains(metrics, "gatehouse_audit_up 0") {
		t.Fatalf("audit alert metrics missing:\n%s", grepLines(metrics, "gatehouse_audit"))
	}
}

func TestAuditTailMismatchNotReady(t *testing.T) {
	up, seen := echoUpstream(t, nil)
	cfg, _ := auditTestConfig(t, up.URL, "batch")
	s, front := auditServer(t, cfg)
	f := &testFront{url: front}
	for i := range 3 {
		f.get(t, "app.example.com", fmt.Sprintf("/%d", i), nil)
	}
	s.runClose(context.Background())
	// Someone cuts the tail of the log.
	segs, _ := filepath.Glob(filepath.Join(cfg.Audit.Dir, "segments", "*.jsonl"))
	b, _ := os.ReadFile(segs[len(segs)-1])
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(segs[len(segs)-1], []byte(strings.Join(lines[:len(lines)-3], "")), 0o640)

	s2, front2 := auditServer(t, cfg)
	before := len(*seen)
	if code := (&testFront{url: front2}).get(t, "app.example.com", "/x", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("request on a log that failed its tail check: %d", code)
	}
	if len(*seen) != before {
		t.Fatal("served unaudited")
	}
	s2.bound.Store(true)
	code, body := adminDo(t, s2.AdminHandler(), "GET", "/readyz", "")
	if code != 503 || !strings.Contains(body, "does not match its last checkpoint") {
		t.Fatalf("readyz: %d %s", code, body)
	}
}

func TestAuditRecordMapping(t *testing.T) {
	yes := true
	cases := []struct {
		ev   Event
		want func(r *audit.Record) bool
	}{
		{Event{Type: EventReload, Fields: map[string]any{"result": "failure", "error": "bad yaml", "file": "g.yaml"}},
			func(r *audit.Record) bool {
				return r.Result == "failed" && r.Error == "bad yaml" && r.Detail["file"] == "g.yaml"
			}},
		{Event{Type: EventAnomaly, Subject: "u", Outcome: "alert,block_session", Reasons: []string{"anomaly:bulk"}},
			func(r *audit.Record) bool { return r.Rule == "bulk" && len(r.Actions) == 2 }},
		{Event{Type: EventAnomaly, Subject: "u", Outcome: "alert", Reasons: []string{"anomaly:bulk"}, Fields: map[string]any{"flags": []string{"night", "bulk_download"}}},
			func(r *audit.Record) bool {
				return len(r.Flags) == 2 && r.Flags[1] == "bulk_download" && r.Detail["flags"] == nil
			}},
		{Event{Type: "login", Subject: "u", Outcome: "ok", Fields: map[string]any{"amr": []string{"pwd", "otp"}, "mfa": true}},
			func(r *audit.Record) bool {
				return r.MFA != nil && *r.MFA == yes && len(r.AMR) == 2 && r.Result == "ok"
			}},
		{Event{Type: "step_up", Subject: "u", Outcome: "no_mfa"},
			func(r *audit.Record) bool { return r.MFA != nil && !*r.MFA }},
		{Event{Type: EventDecision, Outcome: OutcomeDeny, Reasons: []string{"r"}, Input: map[string]any{
			"request": map[string]any{"headers": map[string]any{"Cookie": "s=1", "authorization": "Bearer x", "user-agent": "ua"}}}},
			func(r *audit.Record) bool {
				h := r.Input["request"].(map[string]any)["headers"].(map[string]any)
				return len(h) == 1 && h["user-agent"] == "ua" && r.Outcome == audit.OutcomeDeny
			}},
	}
	for i, tc := range cases {
		r, err := auditRecord(tc.ev)
		if err != nil || !tc.want(r) {
			t.Errorf("case %d: %+v %v", i, r, err)
		}
	}
	if _, err := auditRecord(Event{Type: "no_such_type"}); !errors.Is(err, audit.ErrInvalidRecord) {
		t.Fatalf("unknown event type: %v", err)
	}
}

// The crash test runs the proxy in a child process (this test binary, run
// as TestAuditCrashChild), loads it over loopback, SIGKILLs it, and checks
// that every request that got a response has its decision record.

const auditCrashEnv = "GATEHOUSE_AUDIT_CRASH_CHILD"

func TestAuditCrashChild(t *testing.T) {
	cfgDir := os.Getenv(auditCrashEnv)
	if cfgDir == "" {
		t.Skip("child process of TestAuditCrashKeepsRespondedRequests")
	}
	up := os.Getenv(auditCrashEnv + "_UPSTREAM")
	cfg := baseConfig(up)
	cfg.Audit = config.Audit{Dir: filepath.Join(cfgDir, "audit"), SigningKeyFile: filepath.Join(cfgDir, "audit.key"),
		Durability: "always", CheckpointInterval: config.Duration(20 * time.Millisecond), SegmentSize: 64 << 10}
	b := func(ctx context.Context, w *Wiring) error {
		w.Auth, w.Authz = &fakeAuth{id: alice}, allowAll()
		return buildAudit(ctx, w)
	}
	s, err := New(context.Background(), cfg, Options{Builders: []Builder{b}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	http.Serve(ln, s)
}

func TestAuditCrashKeepsRespondedRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a proxy process and kills it")
	}
	up, _ := echoUpstream(t, nil)
	cfg, base := auditTestConfig(t, up.URL, "always")
	var responded sync.Map
	total := 0
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAuditCrashChild$")
		cmd.Env = append(os.Environ(), auditCrashEnv+"="+base, auditCrashEnv+"_UPSTREAM="+up.URL)
		out, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var addr string
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				addr = a
				break
			}
		}
		if addr == "" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start: %s", stderr.String())
		}
		go func() {
			for sc.Scan() {
			}
		}()
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := 0
		stop := make(chan struct{})
		var once sync.Once
		for w := range 24 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					path := fmt.Sprintf("/r%d/w%d/%d", round, w, i)
					req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
					req.Host = "app.example.com"
					resp, err := client.Do(req)
					if err != nil {
						return // the proxy is gone
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						responded.Store(path, true)
						mu.Lock()
						count++
						if count == 400 {
							once.Do(func() { cmd.Process.Signal(syscall.SIGKILL) })
						}
						mu.Unlock()
					}
				}
			})
		}
		deadline := time.AfterFunc(30*time.Second, func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL) }) })
		cmd.Wait()
		close(stop)
		wg.Wait()
		deadline.Stop()
		if count < 400 {
			t.Fatalf("round %d: only %d responses before the kill: %s", round, count, stderr.String())
		}
		total += count
	}
	// A restart reopens the log (tail check), and the log verifies.
	key, err := audit.LoadSigningKey(cfg.Audit.SigningKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(context.Background(), audit.Options{Dir: filepath.Join(base, "audit"), Key: key})
	if err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	l.Close(context.Background())
	if _, err := audit.Verify(filepath.Join(base, "audit"), audit.VerifyOptions{Verifiers: []note.Verifier{auditVerifier(t, base)}}); err != nil {
		t.Fatalf("verify after SIGKILL: %v", err)
	}
	recorded := map[string]bool{}
	audit.Scan(filepath.Join(base, "audit"), nil, func(r *audit.Record) error {
		if r.Type == audit.TypeDecision && r.Outcome == audit.OutcomeAllow {
			recorded[r.Path] = true
		}
		return nil
	})
	missing := 0
	responded.Range(func(k, _ any) bool {
		if !recorded[k.(string)] {
			missing++
			t.Errorf("request %s got a response but has no decision record", k)
		}
		return missing < 5
	})
	t.Logf("%d responses across 2 SIGKILLs, every one has its decision record (%d decisions in the log)", total, len(recorded))
}

// testFront sends requests with a chosen Host to the front server.
type testFront struct{ url string }

func (f *testFront) get(t *testing.T, host, path string, hdr map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", f.url+path, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestAuditScheduledReport(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	cfg, base := auditTestConfig(t, up.URL, "batch")
	out := filepath.Join(base, "reports")
	cfg.Audit.Reports = []config.AuditReport{{Every: config.Duration(150 * time.Millisecond), Format: "csv", Deliver: config.AuditReportTarget{Dir: out}}}
	_, front := auditServer(t, cfg)
	(&testFront{url: front}).get(t, "app.example.com", "/scheduled", nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(out, "audit-report-*.csv"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if strings.Contains(string(b), "integrity,") && strings.Contains(string(b), ",verified,,,,true,") && strings.Contains(string(b), "route,,,decision,,app,,allow,1,") {
				return
			}
		}
		if time.Now().After(deadline) {
			if len(files) > 0 {
				b, _ := os.ReadFile(files[0])
				t.Logf("last report:\n%s", b)
			}
			t.Fatalf("no verified scheduled report listing the request among %d in %s", len(files), out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
