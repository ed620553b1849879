package proxy

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the proxy's own series, on the server's own registry.
type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	lastReload     prometheus.Gauge
	auditFailures  prometheus.Counter
	generation     prometheus.Gauge

	routesMu sync.RWMutex
	routes   map[string]*routeMetrics // by route name
}

func newMetrics(reg prometheus.Registerer, version string) *metrics {
	if version == "" {
		version = "dev"
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_total",
			Help: "Requests by route, status code and pipeline outcome (allow, deny, step_up, ...).",
		}, []string{"route", "code", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_request_duration_seconds",
			Help:    "Time from request arrival to the end of the response, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_errors_total",
			Help: "Upstream failures (connection refused, timeouts, broken responses), by route.",
		}, []string{"route"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Config reloads by result (success, failure).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_success_timestamp_seconds",
			Help: "When the config was last loaded successfully.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_record_failures_total",
			Help: "Events that could not be recorded in the audit log (the request was refused).",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_generation",
			Help: "Generation of the config serving now (1 at start, +1 per good reload).",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatehouse_build_info",
		Help: "Build information; always 1.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(m.requests, m.duration, m.upstreamErrors, m.reloads, m.lastReload, m.auditFailures, m.generation, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastReload.SetToCurrentTime()
	m.generation.Set(1)
	return m
}

// routeMetrics are one route's series, resolved from the vectors once: the
// hot path then skips hashing label values on every request.
type routeMetrics struct {
	m        *metrics
	route    string
	duration prometheus.Observer
	// requests is read per request without a lock (copy on write under
	// mu): a read lock taken per request still makes both cores trade
	// the lock's cache line.
	mu       sync.Mutex
	requests atomic.Pointer[map[codeOutcome]prometheus.Counter]
}

type codeOutcome struct {
	code    int
	outcome string
}

// forRoute returns the series of a route by name, creating them once.
func (m *metrics) forRoute(route string) *routeMetrics {
	m.routesMu.RLock()
	rm := m.routes[route]
	m.routesMu.RUnlock()
	if rm != nil {
		return rm
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if rm = m.routes[route]; rm == nil {
		rm = &routeMetrics{m: m, route: route, duration: m.duration.WithLabelValues(route)}
		if m.routes == nil {
			m.routes = map[string]*routeMetrics{}
		}
		m.routes[route] = rm
	}
	return rm
}

func (rm *routeMetrics) observe(status int, outcome string, d time.Duration) {
	if status == 0 {
		status = 200
	}
	k := codeOutcome{status, outcome}
	var c prometheus.Counter
	if p := rm.requests.Load(); p != nil {
		c = (*p)[k]
	}
	if c == nil {
		c = rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(status), outcome)
		rm.mu.Lock()
		next := map[codeOutcome]prometheus.Counter{k: c}
		if p := rm.requests.Load(); p != nil {
			for k2, c2 := range *p {
				next[k2] = c2
			}
		}
		rm.requests.Store(&next)
		rm.mu.Unlock()
	}
	c.Inc()
	rm.duration.Observe(d.Seconds())
}
