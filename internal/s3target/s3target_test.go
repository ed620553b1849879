package s3target

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Options
		err  bool
	}{
		{"s3://audit-backup", Options{Bucket: "audit-backup", Endpoint: "s3.amazonaws.com"}, false},
		{"s3://b/gatehouse/eu-1/?region=eu-west-1", Options{Bucket: "b", Prefix: "gatehouse/eu-1/", Endpoint: "s3.amazonaws.com", Region: "eu-west-1"}, false},
		{"s3://b?endpoint=127.0.0.1:9000&insecure=true", Options{Bucket: "b", Endpoint: "127.0.0.1:9000", Insecure: true}, false},
		{"s3://key:secret@b", Options{}, true},
		{"s3:///nobucket", Options{}, true},
		{"s3://b?endpoint=http://x/y", Options{}, true},
		{"s3://b?insecure=maybe", Options{}, true},
		{"s3://b?acl=public-read", Options{}, true},
		{"file:///x", Options{}, true},
		{"s3://AKIA:s3cr3t@/x%zz", Options{}, true},
	} {
		got, err := ParseURL(tc.raw)
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseURL(%q): the error shows the secret: %v", tc.raw, err)
		}
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("ParseURL(%q) = %+v, %v", tc.raw, got, err)
		}
		if err != nil && !errors.Is(err, ErrURL) {
			t.Errorf("ParseURL(%q): %v is not ErrURL", tc.raw, err)
		}
	}
}

func writeLog(t *testing.T, dir string, key *audit.Key, n int) {
	t.Helper()
	ctx := context.Background()
	l, err := audit.Open(ctx, audit.Options{Dir: dir, Key: key, SegmentSize: 4096, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		rec := &audit.Record{Type: audit.TypeDecision, Subject: "ana", RequestID: fmt.Sprintf("req-%d", i), Route: "files",
			Method: "GET", Host: "files.example.com", Path: fmt.Sprintf("/doc/%d", i), Outcome: audit.OutcomeAllow}
		if _, err := l.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// download copies every object under the target's prefix into dir.
func download(t *testing.T, tg *Target, dir string) {
	t.Helper()
	ctx := context.Background()
	for _, folder := range []string{"", "segments/", "keys/"} {
		names, err := tg.List(ctx, folder)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			b, ok, err := tg.Read(ctx, n)
			if err != nil || !ok {
				t.Fatalf("read %s: %v %v", n, ok, err)
			}
			p := filepath.Join(dir, filepath.FromSlash(n))
			os.MkdirAll(filepath.Dir(p), 0o750)
			if err := os.WriteFile(p, b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBackupToS3: a log backed up to a real S3-compatible server (s3rver)
// verifies after download; a second run uploads only what grew; a fresh
// log does not overwrite the copy.
func TestBackupToS3(t *testing.T) {
	addr := testenv.StartS3(t, "backup")
	skey, _, err := note.GenerateKey(rand.Reader, "audit.s3.test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.ParseSigningKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeLog(t, dir, key, 60)
	tg, err := Open("s3://backup/site-a?endpoint=" + addr + "&insecure=true")
	if err != nil {
		t.Fatal(err)
	}
	b := audit.NewBackup(dir, tg)
	st, err := b.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Uploaded < 4 {
		t.Fatalf("first run: %+v", st)
	}
	again, err := b.Run(t.Context())
	if err != nil || again.Uploaded != 1 {
		t.Fatalf("idle run uploaded %d (%v), want the latest checkpoint only", again.Uploaded, err)
	}
	got := t.TempDir()
	download(t, tg, got)
	sum, err := audit.Verify(got, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify the downloaded backup: %v", err)
	}
	local, _ := audit.Verify(dir, audit.VerifyOptions{})
	if sum.Records != local.Records || sum.Latest != local.Latest {
		t.Fatalf("backup %+v, log %+v", sum, local)
	}
	fresh := t.TempDir()
	writeLog(t, fresh, key, 2)
	if _, err := audit.NewBackup(fresh, tg).Run(t.Context()); !errors.Is(err, audit.ErrBackupDiverged) {
		t.Fatalf("a fresh log over the S3 copy: %v, want ErrBackupDiverged", err)
	}
	// A missing object is "absent", not an error.
	if _, ok, err := tg.Size(t.Context(), "segments/nope"); ok || err != nil {
		t.Fatalf("Size of a missing object: %v %v", ok, err)
	}
	if err := tg.Delete(t.Context(), "keys/nope.key"); err != nil {
		t.Fatalf("Delete of a missing object: %v", err)
	}
}
