package anomaly

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// AlertSink delivers one alert somewhere, retrying as it sees fit, and
// returns once it was delivered or it gave up (or ctx ended).
type AlertSink interface {
	Name() string
	Deliver(ctx context.Context, a Alert) (attempts int, err error)
}

// Alert is the JSON body sent to alert sinks.
type Alert struct {
	Type   string `json:"type"` // "gatehouse.anomaly"
	Record Record `json:"anomaly"`
	Sent   string `json:"sent_at,omitempty"`
}

// AlertResult is the outcome of delivering one alert to one sink.
type AlertResult struct {
	Sink     string
	Record   Record
	Attempts int
	Err      error
}

// ErrAlertQueueFull is returned when alerts arrive faster than they are
// delivered; the alert is dropped (the anomaly record is still written).
var ErrAlertQueueFull = errors.New("alert queue full")

// SignatureHeader carries the webhook body's HMAC-SHA256, "sha256=<hex>".
const SignatureHeader = "X-Gatehouse-Signature"

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a SignatureHeader value in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Webhook POSTs alerts as JSON signed with HMAC-SHA256 over the body, and
// retries network errors, 429 and 5xx with exponential backoff and jitter.
type Webhook struct {
	URL         string
	Secret      []byte
	Client      *http.Client  // nil: a client with a 10s timeout
	MaxAttempts int           // 0: 6
	Backoff     time.Duration // first retry delay, doubled each time; 0: 500ms
	MaxBackoff  time.Duration // 0: 30s
}

// Name identifies the sink in results and metrics.
func (w *Webhook) Name() string { return "webhook" }

// ErrWebhookRejected reports a 4xx answer other than 429: not retried.
var ErrWebhookRejected = errors.New("webhook rejected the alert")

// Deliver sends a, retrying until delivered, rejected, out of attempts or
// ctx is done.
func (w *Webhook) Deliver(ctx context.Context, a Alert) (int, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return 0, fmt.Errorf("encode alert: %w", err)
	}
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	attempts := w.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	delay := w.Backoff
	if delay <= 0 {
		delay = 500 * time.Millisecond
	}
	maxDelay := w.MaxBackoff
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	sig := Sign(w.Secret, body)
	var last error
	for i := 1; i <= attempts; i++ {
		last = w.post(ctx, client, body, sig, a.Record.ID)
		if last == nil {
			return i, nil
		}
		if errors.Is(last, ErrWebhookRejected) || i == attempts {
			return i, last
		}
		jitter := time.Duration(rand.Int64N(int64(delay)/2 + 1))
		select {
		case <-ctx.Done():
			return i, fmt.Errorf("webhook %s: %w (last: %w)", w.URL, ctx.Err(), last)
		case <-time.After(delay + jitter):
		}
		delay = min(delay*2, maxDelay)
	}
	return attempts, last
}

func (w *Webhook) post(ctx context.Context, client *http.Client, body []byte, sig, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w: %w", w.URL, ErrWebhookRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, sig)
	req.Header.Set("X-Gatehouse-Event", "anomaly")
	req.Header.Set("X-Gatehouse-Delivery", id)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook %s: status %d", w.URL, resp.StatusCode)
	default:
		return fmt.Errorf("webhook %s: status %d: %w", w.URL, resp.StatusCode, ErrWebhookRejected)
	}
}

// dispatcher delivers alerts in the background: enqueue never blocks.
type dispatcher struct {
	sinks   []AlertSink
	timeout time.Duration
	onDone  func(context.Context, AlertResult)
	queue   chan Record

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

const alertWorkers = 2

func newDispatcher(sinks []AlertSink, size int, timeout time.Duration, onDone func(context.Context, AlertResult)) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{sinks: sinks, timeout: timeout, onDone: onDone, queue: make(chan Record, size), ctx: ctx, cancel: cancel}
	for range alertWorkers {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

func (d *dispatcher) enqueue(r Record) error {
	if len(d.sinks) == 0 {
		return nil // alert means log + metric only (through Hooks)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrAlertQueueFull
	}
	select {
	case d.queue <- r:
		return nil
	default:
		return ErrAlertQueueFull
	}
}

func (d *dispatcher) work() {
	defer d.wg.Done()
	for r := range d.queue {
		for _, s := range d.sinks {
			ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
			n, err := s.Deliver(ctx, Alert{Type: "gatehouse.anomaly", Record: r, Sent: time.Now().UTC().Format(time.RFC3339Nano)})
			cancel()
			if d.onDone != nil {
				d.onDone(context.Background(), AlertResult{Sink: s.Name(), Record: r, Attempts: n, Err: err})
			}
		}
	}
}

// close stops accepting alerts and waits for queued ones until ctx ends,
// then abandons the rest.
func (d *dispatcher) close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.queue)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel()
		<-done
		return fmt.Errorf("alerts not delivered before shutdown: %w", ctx.Err())
	}
}
