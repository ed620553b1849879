package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestRecordEncodingStable(t *testing.T) {
	mfa := true
	r := &Record{Version: 1, Index: 7, Time: time.Date(2026, 12, 3, 1, 2, 3, 456789000, time.UTC), Type: TypeLogin,
		Subject: "u1", Email: "a<b>@example.com", MFA: &mfa, AMR: []string{"pwd", "otp"}}
	got, err := encode(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"index":7,"time":"2026-12-03T01:02:03.456789Z","type":"login","sub":"u1","email":"a<b>@example.com","mfa":true,"amr":["pwd","otp"]}`
	if string(got) != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	back, err := ParseRecord(got)
	if err != nil || back.Email != r.Email || !back.Time.Equal(r.Time) || *back.MFA != true {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestValidateRefusesBadRecords(t *testing.T) {
	for _, r := range []*Record{
		{Type: "nope"},
		{Type: TypeDecision, Outcome: "maybe"},
		{Type: TypeLogin},
		{Type: TypePolicyReload, Result: "perhaps"},
	} {
		if err := r.Validate(); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%+v: err = %v, want ErrInvalidRecord", r, err)
		}
	}
	l := openTest(t, t.TempDir(), testKey(t, "a"), nil)
	defer l.Close(t.Context())
	if _, err := l.Append(t.Context(), &Record{Type: "bogus"}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("append bogus: %v", err)
	}
}

func TestReopenContinues(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 25)
	l := openTest(t, dir, k, nil)
	n, _ := l.Size()
	if n != 28 { // 25 + start + stop + new start
		t.Fatalf("reopened size %d, want 28", n)
	}
	if _, err := l.Append(t.Context(), decisionRec(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}})
	if err != nil || sum.Records != 30 {
		t.Fatalf("verify after reopen: %+v %v", sum, err)
	}
}

func TestReopenRepairsTornTail(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 20)
	segs := segPaths(t, dir)
	last := segs[len(segs)-1]
	// A crash mid-write: half a line at the end, hashes file cut short, a
	// torn checkpoint.
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"v":1,"index":22,"time":"2026-`)
	f.Close()
	hp := filepath.Join(dir, hashesFile)
	st, _ := os.Stat(hp)
	os.Truncate(hp, st.Size()-3*32-5)
	cf, _ := os.OpenFile(filepath.Join(dir, checkpointsFile), os.O_WRONLY|os.O_APPEND, 0)
	cf.WriteString("audit.test\n23\nAAAA")
	cf.Close()

	l := openTest(t, dir, k, nil)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}})
	if err != nil || sum.Records != 24 {
		t.Fatalf("verify after repair: %+v %v", sum, err)
	}
}

func TestReopenRefusesMismatchedTail(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string){
		"truncated records": func(t *testing.T, dir string) {
			segs := segPaths(t, dir)
			last := segs[len(segs)-1]
			lines := readLines(t, last)
			writeLines(t, last, lines[:len(lines)-2])
		},
		"removed last segment": func(t *testing.T, dir string) {
			segs := segPaths(t, dir)
			os.Remove(segs[len(segs)-1])
		},
		"modified tail record": func(t *testing.T, dir string) {
			segs := segPaths(t, dir)
			last := segs[len(segs)-1]
			lines := readLines(t, last)
			lines[0] = []byte(string(lines[0][:len(lines[0])-2]) + " }\n")
			writeLines(t, last, lines)
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			k := testKey(t, "audit.test")
			writeLog(t, dir, k, 30)
			tamper(t, dir)
			l, err := Open(t.Context(), Options{Dir: dir, Key: k, SegmentSize: 2048})
			if !errors.Is(err, ErrTailMismatch) {
				if l != nil {
					l.Close(t.Context())
				}
				t.Fatalf("open tampered log: err = %v, want ErrTailMismatch", err)
			}
		})
	}
}

func TestWriteFailureRefusesAndAlerts(t *testing.T) {
	for _, d := range []Durability{DurabilityAlways, DurabilityBatch} {
		t.Run(string(d), func(t *testing.T) {
			var alerts atomic.Int32
			l := openTest(t, t.TempDir(), testKey(t, "a"), func(o *Options) {
				o.Durability = d
				o.GroupCommit = time.Millisecond
				o.OnAlert = func(error) { alerts.Add(1) }
			})
			l.mu.Lock()
			l.fault = func(op string) error {
				if op == "write" {
					return errors.New("no space left on device")
				}
				return nil
			}
			l.mu.Unlock()
			_, err := l.Append(t.Context(), decisionRec(1))
			if d == DurabilityBatch {
				// Batch mode learns of the failure at the next commit.
				l.Sync(t.Context())
				_, err = l.Append(t.Context(), decisionRec(2))
			}
			if !errors.Is(err, ErrWriteFailed) {
				t.Fatalf("append on failing disk: %v", err)
			}
			if !errors.Is(l.Err(), ErrWriteFailed) {
				t.Fatalf("Err() = %v", l.Err())
			}
			if alerts.Load() != 1 {
				t.Fatalf("alerts = %d, want 1", alerts.Load())
			}
			l.Close(t.Context())
		})
	}
}

func TestAlwaysModeGroupCommit(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	l := openTest(t, dir, k, func(o *Options) { o.Durability = DurabilityAlways; o.SegmentSize = 64 << 10 })
	var syncs atomic.Int32
	l.mu.Lock()
	l.fault = func(op string) error {
		if op == "sync" {
			syncs.Add(1)
		}
		return nil
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	const workers, each = 32, 20
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				idx, err := l.Append(context.Background(), decisionRec(w*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				// Acknowledged means durable.
				if _, durable := l.Size(); durable <= idx {
					t.Errorf("index %d acknowledged, durable %d", idx, durable)
				}
			}
		})
	}
	wg.Wait()
	if s := syncs.Load(); s >= workers*each {
		t.Fatalf("%d fsyncs for %d records: no group commit", s, workers*each)
	}
	t.Logf("%d records, %d fsyncs", workers*each, syncs.Load())
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestRotationByTime(t *testing.T) {
	dir := t.TempDir()
	clock := t0
	l := openTest(t, dir, testKey(t, "a"), func(o *Options) {
		o.SegmentSize = 1 << 20
		o.SegmentAge = time.Hour
		o.Clock = func() time.Time { clock = clock.Add(20 * time.Minute); return clock }
	})
	for i := range 10 {
		if _, err := l.Append(t.Context(), decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close(t.Context())
	if n := len(segPaths(t, dir)); n < 3 {
		t.Fatalf("%d segments after 4 hours with 1h rotation", n)
	}
	if _, err := Verify(dir, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointInterval(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, testKey(t, "a"), func(o *Options) { o.CheckpointInterval = 20 * time.Millisecond; o.Clock = time.Now })
	defer l.Close(t.Context())
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, ok := l.LatestCheckpoint()
		if ok && cp.Size >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within 5s at a 20ms interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishFile(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(t.TempDir(), "elsewhere", "checkpoint")
	k := testKey(t, "audit.test")
	l := openTest(t, dir, k, func(o *Options) { o.Publishers = []Publisher{FilePublisher{Path: pub}} })
	l.Append(t.Context(), decisionRec(1))
	l.Close(t.Context())
	b, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(b, verifierOf(t, k))
	if err != nil || cp.Size != 3 {
		t.Fatalf("published checkpoint: %+v %v", cp, err)
	}
}

func TestKeyChangeRecorded(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := testKey(t, "audit.test"), testKey(t, "audit.test")
	writeLog(t, dir, k1, 5)
	l := openTest(t, dir, k2, nil)
	l.Close(t.Context())
	recs := readAll(t, dir, nil)
	var saw bool
	for _, r := range recs {
		if r.Type == TypeKeyChange && r.KeyID == k2.Verifier && r.Detail["previous_key_id"] == k1.Verifier {
			saw = true
		}
	}
	if !saw {
		t.Fatal("no key_change record")
	}
	// Both keys are trusted together; either alone fails on the other's checkpoints.
	if _, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k2), verifierOf(t, k1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k2)}}); err == nil {
		t.Fatal("old checkpoints verified with the new key only")
	}
}

func TestSigningKeyNeverInErrors(t *testing.T) {
	skey := "PRIVATE+KEY+x+00000000+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ABCDEFGH"
	_, err := ParseSigningKey(skey)
	if err == nil || strings.Contains(err.Error(), "AbCdEf") {
		t.Fatalf("err = %v", err)
	}
	k := testKey(t, "n")
	if strings.Contains(k.String(), "PRIVATE") {
		t.Fatal("Key.String leaks")
	}
}

func readAll(t testing.TB, dir string, ring *Keyring) []*Record {
	t.Helper()
	var out []*Record
	if err := Scan(dir, ring, func(r *Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// After a power cut the hashes written since the last checkpoint may be
// lost or garbage (they are not fsynced per commit): restart rebuilds them
// from the records.
func TestReopenRebuildsUnsyncedHashes(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "audit.test")
	writeLog(t, dir, k, 25) // checkpoints at 11, 21 and the final one
	p := filepath.Join(dir, checkpointsFile)
	b, _ := os.ReadFile(p)
	notes, _ := SplitCheckpoints(b)
	os.WriteFile(p, b[:len(b)-len(notes[len(notes)-1])], 0o644) // the final checkpoint never made it
	os.Remove(filepath.Join(dir, latestFile))
	cp, _ := OpenCheckpoint(notes[len(notes)-2], verifierOf(t, k))
	hp := filepath.Join(dir, hashesFile)
	st, _ := os.Stat(hp)
	from := tlog.StoredHashCount(cp.Size) * tlog.HashSize
	f, _ := os.OpenFile(hp, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, st.Size()-from), from) // zeros where the unsynced hashes were
	f.Close()

	l := openTest(t, dir, k, nil)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, k)}})
	if err != nil || sum.Records != 29 {
		t.Fatalf("verify after rebuilding hashes: %+v %v", sum, err)
	}
}

func TestPublishWebhook(t *testing.T) {
	k := testKey(t, "audit.test")
	got := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- b
	}))
	defer srv.Close()
	var alerts atomic.Int32
	l := openTest(t, t.TempDir(), k, func(o *Options) {
		o.Publishers = []Publisher{WebhookPublisher{URL: srv.URL}, WebhookPublisher{URL: srv.URL + "/x", Client: &http.Client{Transport: failing{}}}}
		o.OnAlert = func(error) { alerts.Add(1) }
	})
	l.Append(t.Context(), decisionRec(1))
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var last []byte
	for len(got) > 0 {
		last = <-got
	}
	cp, err := OpenCheckpoint(last, verifierOf(t, k))
	if err != nil || cp.Size != 3 {
		t.Fatalf("webhook got %q: %+v %v", last, cp, err)
	}
	if alerts.Load() == 0 {
		t.Fatal("a failing publisher raised no alert")
	}
}

type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("unreachable")
}

// TestOpenLocksDir: one writer per directory. A second Open (another
// replica, a second serve) is refused with ErrLocked naming the holder,
// and succeeds once the first writer closed.
func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t, "lock-test")
	first, err := Open(context.Background(), Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), Options{Dir: dir, Key: key})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("held by pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%s)", err, want)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := Open(context.Background(), Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := again.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, VerifyOptions{Verifiers: []note.Verifier{verifierOf(t, key)}}); err != nil {
		t.Errorf("verify with the lock file present: %v", err)
	}
}
