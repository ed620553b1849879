package audit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestBatchWindowCommitsLateRecords: in batch mode the committer does not
// listen for appends while a group-commit window is open; a record
// appended during a window, or while the window's commit is writing, is
// still durable within the next window, never left to the hourly ticker.
func TestBatchWindowCommitsLateRecords(t *testing.T) {
	const window = 30 * time.Millisecond
	l := openTest(t, t.TempDir(), testKey(t, "audit.test"), func(o *Options) {
		o.Durability, o.GroupCommit, o.SegmentSize = DurabilityBatch, window, 1<<20
	})
	defer l.Close(context.Background())
	var during atomic.Int64
	during.Store(-1)
	var once atomic.Bool
	l.mu.Lock()
	l.fault = func(op string) error {
		// While a commit writes: one more record, after the snapshot.
		if op == "write" && once.CompareAndSwap(false, true) {
			idx, err := l.Append(context.Background(), decisionRec(1000))
			if err != nil {
				t.Error(err)
			}
			during.Store(idx)
		}
		return nil
	}
	l.mu.Unlock()
	durableWithin := func(idx int64, d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if _, durable := l.Size(); durable > idx {
				return true
			}
		}
		return false
	}
	for i := range 5 { // a burst inside one window
		if _, err := l.Append(context.Background(), decisionRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := l.Append(context.Background(), decisionRec(5))
	if err != nil {
		t.Fatal(err)
	}
	if !durableWithin(idx, 20*window) {
		t.Fatalf("record %d not durable after %v", idx, 20*window)
	}
	for during.Load() < 0 {
		time.Sleep(time.Millisecond)
	}
	if late := during.Load(); !durableWithin(late, 20*window) {
		t.Fatalf("record %d, appended while a commit wrote, not durable after %v", late, 20*window)
	}
	// A record after a quiet spell opens a window of its own.
	time.Sleep(3 * window)
	idx, err = l.Append(context.Background(), decisionRec(6))
	if err != nil {
		t.Fatal(err)
	}
	if !durableWithin(idx, 20*window) {
		t.Fatalf("record %d after a quiet spell not durable after %v", idx, 20*window)
	}
}
