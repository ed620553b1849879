package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Upstream defaults, used when the config leaves a timeout at zero.
const (
	defaultDialTimeout      = 10 * time.Second
	defaultResponseHeader   = 60 * time.Second
	defaultReadHeader       = 10 * time.Second
	defaultIdle             = 120 * time.Second
	defaultShutdown         = 30 * time.Second
	upstreamIdleConnsPerHos = 512 // >= expected concurrency: Go's default of 2 costs ~37% throughput
)

// newTransport is the one upstream transport of the process: shared by
// every route and every config generation so idle connections survive
// reloads.
func newTransport(t config.Timeouts) *http.Transport {
	dial := durOr(t.UpstreamDial.D(), defaultDialTimeout)
	return &http.Transport{
		Proxy:               nil, // never route upstream traffic through $HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4 * upstreamIdleConnsPerHos,
		MaxIdleConnsPerHost: upstreamIdleConnsPerHos,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: dial,
		// No ResponseHeaderTimeout: headerWatch enforces
		// timeouts.upstream_response_header without a timer per request,
		// and follows a reload.
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass bodies through exactly as the upstream sent them
	}
}

func durOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// copyBufferSize is the size of the reverse proxy's copy buffers.
const copyBufferSize = 32 << 10

// bufferPool recycles the 32 KiB copy buffers of the reverse proxy. It
// pools array pointers, so Put allocates nothing (a *[]byte would cost a
// slice header per request).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return // not one of ours
	}
	b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}

// newReverseProxy builds the reverse proxy. Bodies stream: responses of
// unknown length and text/event-stream are flushed on every write (the
// standard library's rule), everything else as the copy buffer fills.
func (s *Server) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    s.transport,
		BufferPool:   &bufferPool{},
		ErrorHandler: s.upstreamError,
		ErrorLog:     zap.NewStdLog(s.log.Named("upstream")),
		ModifyResponse: func(resp *http.Response) error {
			fl, ok := resp.Request.Context().(*flight)
			if !ok {
				fl, _ = resp.Request.Context().Value(flightKey{}).(*flight)
			}
			if fl != nil {
				s.headerWatch.done(&fl.x.hwait) // the headers came
				// Cut by the timeout after the transport had them but
				// before this done: the body cannot be read any more, so
				// it is the timeout's 502 (upstreamError), not a cut
				// answer recorded as allowed.
				if err := context.Cause(fl.guard); errors.Is(err, errUpstreamHeaderTimeout) {
					return errUpstreamHeaderTimeout
				}
			}
			s.state.Load().headers.stripSetCookies(resp.Header)
			return nil
		},
	}
}

// rewrite builds the outbound request from the one routing decision: the
// route's target, the normalised path, no client-sent identity or
// forwarding headers, then ours.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	fl, ok := pr.In.Context().(*flight)
	if !ok {
		fl, _ = pr.In.Context().Value(flightKey{}).(*flight)
	}
	out := pr.Out
	if fl == nil {
		// Not routed by the pipeline: send it nowhere (the transport fails, 502).
		out.URL.Scheme, out.URL.Host = "http", ""
		return
	}
	t := fl.x.route.Target
	out.URL.Scheme, out.URL.Host = t.Scheme, t.Host
	out.URL.Path, out.URL.RawPath = joinPath(t.Path, fl.x.req.Path), ""
	out.URL.RawQuery = pr.In.URL.RawQuery
	if fl.x.route.PreserveHost {
		out.Host = pr.In.Host
	} else {
		out.Host = ""
	}
	fl.st.headers.strip(out.Header)
	fl.st.headers.setForwarded(pr.In, out.Header, fl.x.peer, fl.x.req.ClientIP, fl.x.req.ClientIPText)
	fl.x.upIDHdr[0] = fl.x.id
	out.Header["X-Gatehouse-Request-Id"] = fl.x.upIDHdr[:]
	for _, h := range s.wiring.hdrs {
		h.UpstreamHeaders(fl.x.req, fl.x.ident, out.Header)
	}
}

// joinPath puts a normalised request path under the upstream's base path.
func joinPath(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	return strings.TrimSuffix(base, "/") + p
}

// upstreamError answers when the upstream cannot be reached or fails
// mid-way: a 502 page with the request id, unless the client is gone or a
// guard cut the request. r is the outbound request (the reverse proxy's
// contract), whose Host is the upstream's: pages name the client's host.
func (s *Server) upstreamError(rw http.ResponseWriter, r *http.Request, err error) {
	fl, _ := r.Context().Value(flightKey{}).(*flight)
	if fl == nil {
		renderPage(rw, r, pageData{Status: http.StatusBadGateway, Host: r.Host})
		return
	}
	x := fl.x
	x.upstreamErr = err
	switch {
	case fl.client.Err() != nil:
		// The client went away; nothing to answer.
		x.reason = "client_gone"
		if !fl.w.wroteHeader {
			fl.w.status = 499
		}
		return
	case errors.Is(context.Cause(fl.guard), errUpstreamHeaderTimeout):
		// Handled below as the upstream failing, with the cause as error.
		err = errUpstreamHeaderTimeout
		x.upstreamErr = err
	case fl.guard.Err() != nil:
		// A guard (an anomaly block) stopped the request.
		x.outcome, x.reason, x.guardCut = OutcomeDeny, ReasonGuardCut, true
		if !fl.w.wroteHeader {
			renderPage(rw, r, pageData{Status: http.StatusForbidden, RequestID: x.id, User: displayName(x.ident), Host: x.req.HTTP.Host})
		}
		return
	}
	s.metrics.upstreamErrors.WithLabelValues(x.route.Info.Name).Inc()
	s.log.Warn("upstream failed", zap.String("request_id", x.id), zap.String("route", x.route.Info.Name), zap.Error(err))
	x.outcome, x.reason = OutcomeUpstreamErr, ReasonUpstream
	if fl.w.wroteHeader {
		return // headers already sent: the connection is cut
	}
	renderPage(rw, r, pageData{Status: http.StatusBadGateway, RequestID: x.id, User: displayName(x.ident), Host: x.req.HTTP.Host})
}
