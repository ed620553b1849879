package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/atomicfile"
)

// wire_anomaly_state.go keeps the memory store's state in
// anomaly.state_file: counters, baselines and step-up requests are read
// back at start and saved every stateSaveEvery and at shutdown, so a
// single instance does not forget a week of baselines (and the first
// week of `above_baseline` silence that follows) on every restart. Blocks
// are not in it: they come back from the signed audit log
// (wire_anomaly_replay.go).

// stateSaveEvery is how often the state is saved while serving: at most
// that much counting is lost on a crash.
const stateSaveEvery = time.Minute

// stateKeeper loads and saves one memory store's state file.
type stateKeeper struct {
	path string
	ms   *anomaly.MemoryStore
	log  *zap.Logger
	// onErr counts a failed save (the store-error metric).
	onErr func(op string, err error)
	mu    sync.Mutex // one save at a time
	stop  chan struct{}
	done  chan struct{}
}

// load reads the state file into the store, then saves it back at once:
// a file that cannot be written (missing directory, read-only disk) stops
// the start rather than failing every minute unseen. A missing file is a
// first start. A file that is not a state is moved aside (kept for whoever
// wants to look) and the store starts empty: detection state must not keep
// the proxy down. Any other failure to read stops the start.
func (k *stateKeeper) load(now time.Time) error {
	if err := k.read(now); err != nil {
		return err
	}
	return k.save()
}

func (k *stateKeeper) read(now time.Time) error {
	f, err := os.Open(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		k.log.Info("no anomaly state yet: starting fresh", zap.String("state_file", k.path))
		return nil
	}
	if err != nil {
		return fmt.Errorf("read anomaly state %s: %w", k.path, err)
	}
	err = k.ms.LoadState(bufio.NewReader(f))
	f.Close()
	if errors.Is(err, anomaly.ErrState) {
		aside := k.path + ".unreadable-" + now.UTC().Format("20060102T150405.000000000Z")
		if rerr := os.Rename(k.path, aside); rerr != nil {
			return fmt.Errorf("anomaly state %s: %w (and it cannot be moved aside: %w)", k.path, err, rerr)
		}
		k.log.Error("anomaly state unreadable: moved aside, starting fresh",
			zap.String("state_file", k.path), zap.String("moved_to", aside), zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("read anomaly state %s: %w", k.path, err)
	}
	k.log.Info("anomaly state restored", zap.String("state_file", k.path))
	return nil
}

// save writes the state atomically.
func (k *stateKeeper) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var buf bytes.Buffer
	if err := k.ms.SaveState(&buf); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(k.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save anomaly state %s: %w", k.path, err)
	}
	return nil
}

// start saves every stateSaveEvery until close.
func (k *stateKeeper) start() {
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(k.done)
		t := time.NewTicker(stateSaveEvery)
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-t.C:
				if err := k.save(); err != nil {
					k.onErr("state_save", err)
				}
			}
		}
	}()
}

// close ends the loop and saves a last time.
func (k *stateKeeper) close(context.Context) error {
	if k.stop != nil {
		close(k.stop)
		<-k.done
	}
	if err := k.save(); err != nil {
		k.onErr("state_save", err)
		return err
	}
	return nil
}
