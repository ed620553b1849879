package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// memUpstream answers every request in memory like the bench's upstream
// (1000 bytes of text/html with a Content-Length), so a benchmark measures
// the proxies and nothing of a network.
type memUpstream struct{ body []byte }

func (m memUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/html"}, "Content-Length": {strconv.Itoa(len(m.body))}},
		Body:          io.NopCloser(bytes.NewReader(m.body)),
		ContentLength: int64(len(m.body)), Request: r,
	}, nil
}

// Zero-cost stages: what is left of a request's cost is the pipeline's own.
type benchAuth struct{ id Identity }

func (a benchAuth) Authenticate(http.ResponseWriter, *Request) (Identity, bool, error) {
	return a.id, false, nil
}
func (benchAuth) StepUp(http.ResponseWriter, *Request, Identity, string) {}

type benchAuthz struct{}

func (benchAuthz) Decide(context.Context, *Request, Identity, Risk) (Decision, error) {
	return Decision{Allow: true, Revision: "rev1"}, nil
}

// benchIdentityHeaders sets the five identity headers the authn stage
// sends upstream (values as long as the bench's real ones).
type benchIdentityHeaders struct{ vals [5][]string }

func newBenchIdentityHeaders() benchIdentityHeaders {
	var b benchIdentityHeaders
	for i, v := range []string{"alice", "alice@example.com", "staff,finance", "admin,staff", strings.Repeat("a", 680)} {
		b.vals[i] = []string{v}
	}
	return b
}

func (b benchIdentityHeaders) UpstreamHeaders(_ *Request, _ Identity, h http.Header) {
	for i, n := range []string{"X-Auth-User", "X-Auth-Email", "X-Auth-Groups", "X-Auth-Roles", "X-Identity-Assertion"} {
		h[n] = b.vals[i]
	}
}

// BenchmarkGlue is the cost of the pipeline itself (routing, request ids,
// guards, the reverse proxy's hooks, metrics) with stages that cost
// nothing and an in-memory upstream, against a bare httputil.ReverseProxy
// on the same upstream. Its ns/op and allocs/op are the glue the bench's
// rows pay on top of the stages' own work:
//
//	go test ./proxy -run XXX -bench Glue -benchmem
func BenchmarkGlue(b *testing.B) {
	up := memUpstream{body: bytes.Repeat([]byte("gatehouse benchmark body "), 40)}
	target, _ := url.Parse("http://upstream.internal")
	ih := newBenchIdentityHeaders()
	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			ih.UpstreamHeaders(nil, Identity{}, pr.Out.Header)
		},
		Transport:  up,
		BufferPool: &bufferPool{},
	}
	cfg := baseConfig(target.String())
	cfg.Log.Access = false
	s, err := New(context.Background(), cfg, Options{Logger: zap.NewNop(), Builders: []Builder{func(_ context.Context, w *Wiring) error {
		w.Auth, w.Authz, w.Recorder = benchAuth{id: alice}, benchAuthz{}, discardRecorder{}
		w.AddUpstreamHeaderer(newBenchIdentityHeaders())
		return nil
	}}})
	if err != nil {
		b.Fatal(err)
	}
	s.rp.Transport = up
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"gatehouse", s}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "https://app.example.com/a/b?x=1", nil)
			req.Header.Set("User-Agent", "Go-http-client/1.1")
			req.Header.Set("Accept-Encoding", "gzip")
			req.Header.Set("Cookie", "_gatehouse=AffyClYAAAAAaxI2jm77b07WX43np-tL2zXiUDWFvtFjG8akei9ABhM1o5o")
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
