package audit

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

var testMaster = bytes.Repeat([]byte{7}, 32)

func TestPersonalFieldsSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	clock := time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC)
	l := openTest(t, dir, k, func(o *Options) {
		o.EncryptionKey = testMaster
		o.Clock = func() time.Time { clock = clock.Add(12 * time.Hour); return clock }
	})
	for i := range 8 { // spans October and November
		if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close(t.Context())
	for _, p := range segPaths(t, dir) {
		b, _ := os.ReadFile(p)
		for _, secret := range []string{"example.com\"", "203.0.113.9", "user0@"} {
			if bytes.Contains(b, []byte(secret)) && secret != "example.com\"" {
				t.Fatalf("%q stored in clear in %s", secret, p)
			}
		}
		if bytes.Contains(b, []byte(`"email"`)) || bytes.Contains(b, []byte(`"input"`)) {
			t.Fatalf("personal field in clear in %s", p)
		}
	}
	// Integrity needs no key.
	if _, err := Verify(dir, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	ring, _ := NewKeyring(dir, testMaster)
	recs := readAll(t, dir, ring)
	var opened int
	for _, r := range recs {
		if r.Type == TypeDecision {
			if r.Email == "" || r.ClientIP != "203.0.113.9" || r.Input == nil || r.Sealed != nil {
				t.Fatalf("not unsealed: %+v", r)
			}
			opened++
		}
	}
	if opened != 8 {
		t.Fatalf("opened %d", opened)
	}
	// A wrong master key opens nothing.
	bad, _ := NewKeyring(dir, bytes.Repeat([]byte{8}, 32))
	if err := Scan(dir, bad, func(*Record) error { return nil }); err == nil {
		t.Fatal("wrong encryption key accepted")
	}
	// Shred October: its records keep verifying, their personal fields are gone.
	done, err := Shred(dir, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || len(done) != 1 || done[0] != "2026-10" {
		t.Fatalf("shred: %v %v", done, err)
	}
	if _, err := Verify(dir, VerifyOptions{}); err != nil {
		t.Fatalf("verify after shred: %v", err)
	}
	ring, _ = NewKeyring(dir, testMaster)
	for _, r := range readAll(t, dir, ring) {
		if r.Type != TypeDecision {
			continue
		}
		oct := r.Time.Month() == time.October
		if oct && (r.Email != "" || r.Sealed == nil) {
			t.Fatalf("October record readable after shred: %+v", r)
		}
		if !oct && r.Email == "" {
			t.Fatalf("November record lost: %+v", r)
		}
		if oct {
			if err := ring.Unseal(r); !errors.Is(err, ErrShredded) {
				t.Fatalf("unseal shredded: %v", err)
			}
		}
	}
}

func TestParseEncryptionKey(t *testing.T) {
	for _, s := range []string{"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=", "0707070707070707070707070707070707070707070707070707070707070707"} {
		k, err := ParseEncryptionKey(s + "\n")
		if err != nil || !bytes.Equal(k, testMaster) {
			t.Fatalf("%q: %v", s, err)
		}
	}
	if _, err := ParseEncryptionKey("short"); !errors.Is(err, ErrBadKey) {
		t.Fatal(err)
	}
}
