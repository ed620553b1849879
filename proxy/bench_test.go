package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"go.uber.org/zap"
)

type nopRecorder struct{}

func (nopRecorder) Record(context.Context, Event) error { return nil }

// BenchmarkProxy compares the pipeline (public route, allow-all policy,
// no-op recorder, access log off) with a bare httputil.ReverseProxy on the
// same upstream and transport settings. Run briefly:
//
//	go test ./proxy -run XXX -bench Proxy -benchtime 2s
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	bare := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: newTransport(baseConfig("").Timeouts),
	}
	cfg := baseConfig(up.URL)
	cfg.Log.Access = false
	s, err := New(context.Background(), cfg, Options{Logger: zap.NewNop(), Builders: []Builder{func(_ context.Context, w *Wiring) error {
		w.Authz, w.Recorder = allowAll(), nopRecorder{}
		return nil
	}}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"gatehouse", s}} {
		b.Run(bc.name, func(b *testing.B) {
			front := httptest.NewServer(bc.h)
			defer front.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", front.URL+"/a/b", nil)
					req.Host = "public.example.com"
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
