package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The hijacked client connection is wrapped (tunnelConn, counting bytes);
// it must keep CloseWrite: when the upstream half-closes an upgraded
// stream, httputil.ReverseProxy passes the half-close on and keeps the
// other direction open for what the client still sends.
func TestTunnelHalfClose(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nbye\n")
		brw.Flush()
		conn.(*net.TCPConn).CloseWrite() // done sending; still reading
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(brw)
		got <- string(b)
	}))
	defer up.Close()
	cfg := baseConfig(up.URL)
	_, front := newTestServer(t, cfg, stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{}})
	c, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, err := io.ReadAll(br) // until the upstream's EOF
	t.Logf("client read %q (err %v)", rest, err)
	_, werr := io.WriteString(c, "ack\n")
	c.(*net.TCPConn).CloseWrite()
	select {
	case s := <-got:
		t.Logf("upstream got %q after its half-close (client write err %v)", s, werr)
		if s != "ack\n" {
			t.Errorf("the client's data after the upstream's half-close was lost: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream never finished")
	}
}
