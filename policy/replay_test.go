package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeAudit records decisions of set for inputs, as the audit log does.
func writeAudit(t *testing.T, set *Set, inputs []Input, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	var lines []string
	for i, in := range inputs {
		d, _ := set.Decide(context.Background(), in)
		rec := map[string]any{"v": 1, "index": i, "type": "decision", "request_id": in.Request.ID,
			"outcome": string(d.Outcome), "reasons": d.Reasons, "revision": d.Revision, "input": in.AuditMap()}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	lines = append(lines, extra...)
	if err := os.MkdirAll(filepath.Join(dir, "segments"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "segments", "00000000000000000000.jsonl"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReplay(t *testing.T) {
	live := mustCompile(t, map[string]string{"p.rego": combo}, CompileOptions{})
	var inputs []Input
	for i, h := range []string{"1", "0", "1"} {
		in := baseInput()
		in.Request.ID = []string{"a", "b", "c"}[i]
		in.Request.Headers["x-allow"] = h
		if i == 2 {
			in.Request.Method = "DELETE"
		}
		inputs = append(inputs, in)
	}
	audit := writeAudit(t, live, inputs,
		`{"type":"completion","request_id":"a","status":200}`,
		`{"type":"decision","outcome":"deny","reasons":["risk_blocked"]}`, // no input: policy not consulted
		`{"type":"decision","outcome":"allow","sealed":{"period":"2026-12"}}`,
		`{"type":"decision","outcome":"al`, // torn last line
	)

	// The live policy itself changes nothing.
	st, err := Replay(context.Background(), audit, live, func(c ReplayChange) { t.Errorf("unexpected change %+v", c) })
	if err != nil || st.Decisions != 3 || st.Changed != 0 || st.Skipped != 2 || st.Unreadable != 1 {
		t.Fatalf("same policy: %+v %v", st, err)
	}

	// A draft that refuses DELETE changes exactly request c.
	draft := mustCompile(t, map[string]string{"p.rego": combo + "\ndeny contains \"no_delete\" if input.request.method == \"DELETE\"\n"}, CompileOptions{})
	var changes []ReplayChange
	st, err = Replay(context.Background(), audit, draft, func(c ReplayChange) { changes = append(changes, c) })
	if err != nil || st.Changed != 1 || len(changes) != 1 {
		t.Fatalf("draft: %+v %v %+v", st, err, changes)
	}
	c := changes[0]
	if c.Record.RequestID != "c" || c.Record.Outcome != OutcomeAllow || c.New.Outcome != OutcomeDeny ||
		c.New.Reasons[0] != "no_delete" || c.Record.Line != 3 || !strings.HasSuffix(c.Record.File, ".jsonl") {
		t.Fatalf("change %+v", c)
	}
}

func TestReplayMissingDir(t *testing.T) {
	set := mustCompile(t, map[string]string{"p.rego": allowAll}, CompileOptions{})
	if _, err := Replay(context.Background(), filepath.Join(t.TempDir(), "nope"), set, nil); err == nil {
		t.Fatal("missing audit dir accepted")
	}
}
