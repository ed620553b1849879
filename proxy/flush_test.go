package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the writes made on its accepted connections.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// gateRecorder holds every completion record until released.
type gateRecorder struct {
	release chan struct{}
	once    sync.Once
	done    atomic.Int64
}

func (g *gateRecorder) Record(ctx context.Context, ev Event) error {
	if ev.Type == EventCompletion {
		select {
		case <-g.release:
		case <-time.After(5 * time.Second):
		}
		g.done.Add(1)
	}
	return nil
}

func (g *gateRecorder) open() { g.once.Do(func() { close(g.release) }) }

// The client has its whole answer before the completion is written down,
// and for a response of known length that costs no extra write: the
// response goes out in one write, as net/http would send it at the end.
func TestResponseFlushedBeforeCompletionInOneWrite(t *testing.T) {
	body := make([]byte, 1000)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(body)
	}))
	t.Cleanup(up.Close)
	rec := &gateRecorder{release: make(chan struct{})}
	t.Cleanup(rec.open)
	s, _ := newTestServer(t, baseConfig(up.URL), stages{authz: allowAll(), rec: rec})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	front := httptest.NewUnstartedServer(s)
	front.Listener = cl
	front.Start()
	t.Cleanup(front.Close)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET /page HTTP/1.1\r\nHost: public.example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("response not received while the completion record is pending: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || len(got) != len(body) || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %d bytes, err %v; want 200 and %d bytes before the completion is recorded", resp.StatusCode, len(got), err, len(body))
	}
	if n := rec.done.Load(); n != 0 {
		t.Fatalf("completion recorded before the client had the answer (%d)", n)
	}
	if n := cl.writes.Load(); n != 1 {
		t.Errorf("response sent in %d writes, want 1", n)
	}
	rec.open()
	eventually(t, func() bool { return rec.done.Load() == 1 })
	if n := cl.writes.Load(); n != 1 {
		t.Errorf("after the completion: %d writes, want 1", n)
	}
}
