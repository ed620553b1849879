package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// keyChangedFixture writes a log signed by one key, then reopens it with
// another (a key change) and appends more. It returns the directory, the
// two verifier key files (old, new) and the number of records the old key
// covered.
func keyChangedFixture(t *testing.T) (dir, oldPub, newPub string, oldSize int64) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "audit")
	var pubs []string
	for i := range 2 {
		skey, vkey, err := note.GenerateKey(rand.Reader, "audit.cli.test")
		if err != nil {
			t.Fatal(err)
		}
		k, err := audit.ParseSigningKey(skey)
		if err != nil {
			t.Fatal(err)
		}
		pub := filepath.Join(base, fmt.Sprintf("audit%d.pub", i))
		if err := os.WriteFile(pub, []byte(vkey+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
		ctx := context.Background()
		l, err := audit.Open(ctx, audit.Options{Dir: dir, Key: k})
		if err != nil {
			t.Fatal(err)
		}
		for j := range 5 {
			if _, err := l.Append(ctx, &audit.Record{Type: audit.TypeDecision, Subject: "u-ana", Route: "files",
				Method: "GET", Path: fmt.Sprintf("/k%d/%d", i, j), Outcome: audit.OutcomeAllow}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			sum, err := audit.Verify(dir, audit.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			oldSize = sum.Latest.Size
		}
	}
	return dir, pubs[0], pubs[1], oldSize
}

// audit prove works on both sides of a signing-key change: with every key
// of the log's key.pub when no --key is given, and with several --key.
func TestAuditProveAfterKeyChangeCLI(t *testing.T) {
	dir, oldPub, newPub, oldSize := keyChangedFixture(t)
	proof := filepath.Join(t.TempDir(), "p.json")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"old record, key.pub", []string{"--index", "2"}, "OK: record 2 "},
		{"new record, key.pub", []string{"--index", fmt.Sprint(oldSize + 2)}, fmt.Sprintf("OK: record %d ", oldSize+2)},
		{"old record, both --key", []string{"--index", "2", "--key", newPub, "--key", oldPub}, "OK: record 2 "},
		{"new record, both --key", []string{"--index", fmt.Sprint(oldSize + 2), "--key", oldPub, "--key", newPub}, fmt.Sprintf("OK: record %d ", oldSize+2)},
		{"consistency across the change", []string{"--consistency", fmt.Sprint(oldSize), "--key", oldPub, "--key", newPub}, fmt.Sprintf("extends checkpoint size %d ", oldSize)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"audit", "prove", dir, "--out", proof}, c.args...)
			if code, _, errs := runCLI(args...); code != 0 {
				t.Fatalf("prove %v: %d %s", c.args, code, errs)
			}
			code, out, _ := runCLI("audit", "check-proof", proof, "--key", oldPub, "--key", newPub)
			if code != 0 || !strings.Contains(out, c.want) {
				t.Fatalf("check-proof: %d %s", code, out)
			}
		})
	}
	// Only the old key: records signed only by the new one cannot be proved.
	if code, _, errs := runCLI("audit", "prove", dir, "--index", fmt.Sprint(oldSize+2), "--key", oldPub, "--out", proof); code != 1 || !strings.Contains(errs, "no checkpoint covers") {
		t.Fatalf("proved a record no checkpoint of the given key covers: %d %s", code, errs)
	}
}
