package testenv

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Redis is a throwaway redis-server on loopback, without persistence, for
// one test or benchmark.
type Redis struct {
	// Addr is host:port.
	Addr string
	// Pid is the server's process id.
	Pid int

	proc   *os.Process
	exited chan struct{}
	once   sync.Once
}

// StartRedis runs a redis-server on a free loopback port until the test
// ends and returns once it accepts connections. A server that exits
// before it listens (the free port was taken meanwhile) is replaced by one
// on another port, up to three attempts.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := NeedBinary(t, "redis-server")
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir())
		DieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Pid: cmd.Process.Pid,
			proc: cmd.Process, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(r.exited) }()
		t.Cleanup(r.Kill)
		if r.waitListening(30 * time.Second) {
			return r
		}
		r.Kill()
		if attempt == 3 {
			t.Fatalf("redis-server did not listen after %d attempts (last on %s)", attempt, r.Addr)
		}
	}
}

// waitListening reports whether the server accepts a connection within d;
// false at once when it exited.
func (r *Redis) waitListening(d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", r.Addr, 100*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		select {
		case <-r.exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// Kill stops the server and waits for it to exit; calling it again does
// nothing.
func (r *Redis) Kill() {
	r.once.Do(func() {
		_ = r.proc.Kill()
		<-r.exited
	})
}
