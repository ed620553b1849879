package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a writer process in always
// mode. The writer prints the index of each acknowledged record; the test
// SIGKILLs it mid-load, reopens the log and checks that every acknowledged
// record is there and the log verifies.

const crashEnv = "GATEHOUSE_AUDIT_CRASH_WRITER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashWriter(dir)
		return
	}
	os.Exit(m.Run())
}

func crashWriter(dir string) {
	key, err := ParseSigningKey(os.Getenv(crashEnv + "_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	l, err := Open(context.Background(), Options{Dir: dir, Key: key, Durability: DurabilityAlways, SegmentSize: 16 << 10,
		CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := decisionRec(w*1000000 + i)
				idx, err := l.Append(context.Background(), r)
				if err != nil {
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %s\n", idx, r.RequestID)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: crash test runs a writer process")
	}
	dir := t.TempDir()
	k := testKey(t, "audit.crash")
	skey := signingKeyString(t, k)
	acked := map[int64]string{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_KEY="+skey)
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		seen := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			idx, _ := strconv.ParseInt(f[0], 10, 64)
			acked[idx] = f[1]
			if seen++; seen == 300+round*200 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		go func() {
			for sc.Scan() {
			}
		}() // drain what was already printed
		cmd.Wait()
		if seen < 300 {
			t.Fatalf("round %d: writer acknowledged only %d records: %s", round, seen, stderr.String())
		}
	}
	// Reopen like a restarted proxy: the tail must check out.
	l, err := Open(t.Context(), Options{Dir: dir, Key: k, Durability: DurabilityAlways, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	l.Close(t.Context())
	if _, err := Verify(dir, VerifyOptions{Verifiers: nil}); err != nil {
		t.Fatalf("verify after crashes: %v", err)
	}
	got := map[int64]string{}
	for _, r := range readAll(t, dir, nil) {
		got[r.Index] = r.RequestID
	}
	for idx, id := range acked {
		if got[idx] != id {
			t.Fatalf("acknowledged record %d (%s) lost or changed after SIGKILL: found %q", idx, id, got[idx])
		}
	}
	t.Logf("%d acknowledged records across 3 SIGKILLs, all present; log has %d", len(acked), len(got))
}

// signingKeyString recovers the private key text for the child process.
func signingKeyString(t *testing.T, k *Key) string {
	t.Helper()
	s, ok := testKeys.Load(k)
	if !ok {
		t.Fatal("key not made by testKey")
	}
	return s.(string)
}
