package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is one timed round against one server.
type result struct {
	requests int64
	errors   int64
	elapsed  time.Duration
	lat      []time.Duration
	cpu      time.Duration // server process CPU time spent in the round
	load     time.Duration // this process's CPU time (load generator and upstream)
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat)-1) * p)
	return r.lat[i]
}

func (r result) cpuPerReq() time.Duration { return r.perReq(r.cpu) }

// loadPerReq is the CPU the load generator and the upstream (this process)
// spent per request: the part of the machine neither proxy can use.
func (r result) loadPerReq() time.Duration { return r.perReq(r.load) }

func (r result) perReq(d time.Duration) time.Duration {
	if r.requests == 0 {
		return 0
	}
	return d / time.Duration(r.requests)
}

// target is what a round drives: a URL, the headers each request carries,
// and the server process whose CPU time is read.
type target struct {
	url     string
	headers http.Header
	pid     int
}

func newClient(caPEM []byte, conc int, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		DialContext:         loopbackDialer(),
		MaxIdleConns:        conc * 2,
		MaxIdleConnsPerHost: conc * 2,
		ForceAttemptHTTP2:   h2,
		IdleConnTimeout:     time.Minute,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// drive sends requests from conc workers for d and measures them. Bounded
// in time: every worker stops when d has passed.
func drive(ctx context.Context, c *http.Client, t target, conc int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n, errs atomic.Int64
	lats := make([][]time.Duration, conc)
	cpu0, load0 := procCPU(t.pid), procCPU(os.Getpid())
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", t.url, nil)
				for k, v := range t.headers {
					req.Header[k] = v
				}
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
				n.Add(1)
			}
		}(w)
	}
	wg.Wait()
	r := result{requests: n.Load(), errors: errs.Load(), elapsed: time.Since(start), cpu: procCPU(t.pid) - cpu0, load: procCPU(os.Getpid()) - load0}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	return r
}

// procCPU reads a process's user+system CPU time from /proc (0 if unknown).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}
