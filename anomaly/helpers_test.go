package anomaly

import (
	"context"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	z, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// recorder collects hook calls.
type recorder struct {
	mu      sync.Mutex
	records []Record
	alerts  []AlertResult
	errs    []string
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		OnAnomaly: func(_ context.Context, rec Record) { r.mu.Lock(); r.records = append(r.records, rec); r.mu.Unlock() },
		OnAlert:   func(_ context.Context, a AlertResult) { r.mu.Lock(); r.alerts = append(r.alerts, a); r.mu.Unlock() },
		OnStoreError: func(op string, _ error) {
			r.mu.Lock()
			r.errs = append(r.errs, op)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

func (r *recorder) Alerts() []AlertResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]AlertResult(nil), r.alerts...)
}

func newDetector(t testing.TB, opts Options) *Detector {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// settle flushes the detector's buffer now (Redis: Observe only buffers),
// as the flusher would within SyncInterval.
func settle(d *Detector) {
	if d.sync != nil {
		d.sync.flush(context.Background())
	}
}
