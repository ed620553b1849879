package proxy

import (
	"context"
	"net"
	"net/http"
	"testing"
)

// TestConnPeer: the peer read when a connection is accepted is what
// parsing each request's RemoteAddr gives, and a request whose RemoteAddr
// names another peer is parsed as before.
func TestConnPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			<-t.Context().Done()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client side's view is enough: its RemoteAddr is a *net.TCPAddr
	// as on the server's accepted connections.
	ctx := withConnPeer(context.Background(), c)
	r, _ := http.NewRequestWithContext(ctx, "GET", "https://app.example.com/", nil)
	r.RemoteAddr = c.RemoteAddr().String()
	addr, text := peerOf(r)
	if want := remoteAddr(r); addr != want || text != want.String() {
		t.Errorf("peerOf = %v %q, want %v %q", addr, text, want, want.String())
	}
	r.RemoteAddr = "192.0.2.7:4242" // not the connection's: parsed, no text
	if addr, text := peerOf(r); addr.String() != "192.0.2.7" || text != "" {
		t.Errorf("another RemoteAddr: peerOf = %v %q", addr, text)
	}
	r = r.WithContext(context.Background()) // no connection peer (httptest, ServeHTTP)
	if addr, text := peerOf(r); addr.String() != "192.0.2.7" || text != "" {
		t.Errorf("without ConnContext: peerOf = %v %q", addr, text)
	}
}
