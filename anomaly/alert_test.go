package anomaly

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookAlert: a firing rule posts one signed JSON alert to a real
// HTTP receiver, retrying a 503 first; Observe does not wait for it.
func TestWebhookAlert(t *testing.T) {
	secret := []byte("webhook-secret")
	var calls atomic.Int32
	got := make(chan Alert, 4)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		body, _ := io.ReadAll(r.Body)
		if !VerifySignature(secret, body, r.Header.Get(SignatureHeader)) {
			t.Errorf("bad signature %q", r.Header.Get(SignatureHeader))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if VerifySignature([]byte("other"), body, r.Header.Get(SignatureHeader)) {
			t.Error("signature verifies under the wrong secret")
		}
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Error(err)
		}
		got <- a
	}))
	defer srv.Close()
	rec := &recorder{}
	clk := newClock(hkNight2am(t))
	d := newDetector(t, Options{Clock: clk.Now, Zone: mustZone(t, "Asia/Hong_Kong"), Night: "22:00-06:00", Hooks: rec.hooks(),
		Sinks: []AlertSink{&Webhook{URL: srv.URL, Secret: secret, Backoff: 10 * time.Millisecond}},
		Rules: []Rule{{Name: "bulk", Night: true, Window: time.Hour, DownloadsOver: 2, Actions: []Action{ActionAlert, ActionBlockSession}}}})
	start := time.Now()
	for range 3 {
		if err := d.Observe(t.Context(), Subject{User: "ana", Session: "s1"}, Observation{Download: true, Path: "/x.pdf", Bytes: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el > 2*time.Second { // the webhook is held until release: waiting would never end
		t.Fatalf("Observe waited for the webhook: %v", el)
	}
	close(release)
	select {
	case a := <-got:
		if a.Type != "gatehouse.anomaly" || a.Record.Rule != "bulk" || a.Record.User != "ana" || a.Record.Counts.Downloads != 3 || !contains(a.Record.Flags, FlagNight) {
			t.Errorf("alert = %+v", a)
		}
		// The alert says what was done, the block included.
		if acts := a.Record.Actions; len(acts) != 2 || acts[0].Action != ActionAlert || !acts[0].OK ||
			acts[1].Action != ActionBlockSession || !acts[1].OK || acts[1].Until.IsZero() {
			t.Errorf("alert's actions = %+v, want alert and block_session with its until", acts)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert delivered")
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(rec.Alerts()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res := rec.Alerts()
	if len(res) != 1 || res[0].Err != nil || res[0].Attempts != 2 {
		t.Fatalf("alert results = %+v", res)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	wh := &Webhook{URL: srv.URL, Secret: []byte("k"), Backoff: time.Millisecond}
	attempts, err := wh.Deliver(t.Context(), Alert{Type: "gatehouse.anomaly"})
	if !errors.Is(err, ErrWebhookRejected) || attempts != 1 || n != 1 {
		t.Fatalf("400: attempts %d, calls %d, err %v", attempts, n, err)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	wh.MaxAttempts = 3
	attempts, err = wh.Deliver(t.Context(), Alert{})
	if err == nil || attempts != 3 {
		t.Fatalf("502: attempts %d err %v", attempts, err)
	}
}

func TestSignKnownVector(t *testing.T) {
	// RFC 4231 test case 2.
	got := Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Fatalf("Sign = %s", got)
	}
}
