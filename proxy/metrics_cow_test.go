package proxy

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRouteMetricsConcurrentSeries: series made while other requests count
// (the copy-on-write map) lose no count.
func TestRouteMetricsConcurrentSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, "test")
	rm := m.forRoute("files")
	codes := []int{200, 201, 204, 301, 302, 403, 404, 500}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				rm.observe(codes[(w+i)%len(codes)], OutcomeAllow, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "gatehouse_requests_total" {
			for _, s := range mf.GetMetric() {
				total += s.GetCounter().GetValue()
			}
		}
	}
	if total != 1600 {
		t.Errorf("%v requests counted, want 1600", total)
	}
}
