package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func wsEcho(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWebSockets(t *testing.T) {
	up := wsEcho(t)
	cfg := baseConfig(up.URL)
	rec := &fakeRecorder{}
	_, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: rec})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(front.URL, "http") + "/socket"

	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Host: "ws.example.com"})
	if err != nil {
		t.Fatalf("dial allowed route: %v (%v)", err, resp)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != "echo: hi" {
		t.Fatalf("read %q, %v", msg, err)
	}
	// What the tunnel carried counts as sent to the client.
	big := strings.Repeat("x", 16<<10)
	if err := c.Write(ctx, websocket.MessageText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err = c.Read(ctx); err != nil || len(msg) != len("echo: ")+len(big) {
		t.Fatalf("read %d bytes, %v", len(msg), err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	eventually(t, func() bool { return len(rec.Events()) == 2 })
	if ev := rec.Events()[1]; ev.Type != EventCompletion || ev.Status != http.StatusSwitchingProtocols || ev.Bytes < int64(len(big)) {
		t.Fatalf("completion %s status %d bytes %d, want 101 and at least %d bytes", ev.Type, ev.Status, ev.Bytes, len(big))
	}

	_, resp, err = websocket.Dial(ctx, wsURL, &websocket.DialOptions{Host: "app.example.com"})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("websocket on a route without websockets: err %v, resp %v; want 403", err, resp)
	}
	// Other upgrades (h2c smuggling) are refused even where WebSockets are on.
	code, _ := rawUpgrade(t, hostOnly(front.URL), "ws.example.com", "h2c")
	if code != http.StatusBadRequest {
		t.Fatalf("h2c upgrade: %d, want 400", code)
	}
}

func rawUpgrade(t *testing.T, addr, host, proto string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "+proto+"\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

func TestUpstreamDown502(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	rec := &fakeRecorder{}
	s, front := newTestServer(t, baseConfig(dead), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: rec})
	resp, body := get(t, front, "app.example.com", "/", nil)
	rid := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusBadGateway || rid == "" || !strings.Contains(body, rid) || !strings.Contains(body, "not answering") {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	eventually(t, func() bool { return len(rec.Events()) == 2 })
	if evs := rec.Events(); len(evs) != 2 || evs[1].Status != http.StatusBadGateway {
		t.Errorf("events = %+v", evs)
	}
	if got := seriesValue(t, s, "gatehouse_upstream_errors_total", map[string]string{"route": "app"}); got != 1 {
		t.Errorf("upstream errors metric = %v", got)
	}
}

func TestServerSentEventsStream(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	}))
	defer up.Close()
	defer close(release)
	_, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}})
	req, _ := http.NewRequest("GET", front.URL+"/events", nil)
	req.Host = "app.example.com"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := front.Client().Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event not streamed before the upstream finished: %q, %v", line, err)
	}
}

// zeroReader is an endless source of zero bytes.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestLargeBodyStreamsInBoundedMemory(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	// GATEHOUSE_STREAM_MIB=2048 checks the 2 GB download.
	if v, err := strconv.ParseInt(os.Getenv("GATEHOUSE_STREAM_MIB"), 10, 64); err == nil && v > 0 {
		size = v << 20
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		_, _ = io.CopyN(w, zeroReader{}, size)
	}))
	defer up.Close()
	obs := &fakeObserver{}
	cfg := baseConfig(up.URL)
	cfg.Log.Access = false
	_, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}, obs: []Observer{obs}})

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	peakc := make(chan uint64, 1)
	go func() {
		var m runtime.MemStats
		peak := before.HeapInuse
		for {
			select {
			case <-done:
				peakc <- peak
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	req, _ := http.NewRequest("GET", front.URL+"/big.bin", nil)
	req.Host = "files.example.com"
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(done)
	peak := <-peakc
	if err != nil || n != size {
		t.Fatalf("copied %d of %d: %v", n, size, err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("%d MiB through the proxy: heap in use grew by at most %d KiB, %d KiB allocated in all", size>>20, growth>>10, alloc>>10)
	if growth > 16<<20 || alloc > uint64(size/8) {
		t.Errorf("body was buffered: heap grew %d bytes, %d bytes allocated for a %d byte body", growth, alloc, size)
	}
	eventually(t, func() bool { return len(obs.all()) == 1 })
	if cs := obs.all(); len(cs) != 1 || cs[0].Bytes != size || !cs[0].Download {
		t.Errorf("completion = %+v", cs)
	}
}
