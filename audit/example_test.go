package audit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
)

// Write a few records, then verify the log with the public key and prove
// one record offline.
func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	skey, vkey, _ := note.GenerateKey(rand.Reader, "audit.example")
	key, _ := audit.ParseSigningKey(skey)

	ctx := context.Background()
	log, err := audit.Open(ctx, audit.Options{Dir: dir, Key: key, Durability: audit.DurabilityAlways})
	if err != nil {
		fmt.Println(err)
		return
	}
	idx, _ := log.Append(ctx, &audit.Record{Type: audit.TypeDecision, Subject: "u-ana", Route: "files",
		Path: "/report.pdf", Outcome: audit.OutcomeAllow, Time: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)})
	log.Close(ctx) // audit_stop and a final signed checkpoint

	v, _ := audit.ParseVerifierKey(vkey)
	sum, err := audit.Verify(dir, audit.VerifyOptions{Verifiers: []note.Verifier{v}})
	fmt.Println(sum.Records, sum.Latest.Size, err)

	proof, _ := audit.ProveInclusion(dir, idx, []note.Verifier{v}, true)
	res, err := audit.CheckProof(proof.Marshal(), []note.Verifier{v})
	fmt.Println(res.Record.Index, res.Record.Path, err)
	// Output:
	// 3 3 <nil>
	// 1 /report.pdf <nil>
}
