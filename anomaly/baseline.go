package anomaly

import (
	"math"
	"time"
)

// Counts are the counters of one key over one window.
type Counts struct {
	Requests  int64 `json:"requests"`
	Bytes     int64 `json:"bytes"`
	Downloads int64 `json:"downloads"`
	Paths     int64 `json:"distinct_paths"`
}

func (c Counts) metric(m Metric) int64 {
	switch m {
	case MetricBytes:
		return c.Bytes
	case MetricDownloads:
		return c.Downloads
	default:
		return c.Requests
	}
}

// Band is the usual activity of a user in one hour of the day: an
// exponentially weighted moving average of per-hour counts.
type Band struct {
	Requests  float64 `json:"r"`
	Bytes     float64 `json:"b"`
	Downloads float64 `json:"d"`
	Samples   int     `json:"n"`
}

func (b Band) metric(m Metric) float64 {
	switch m {
	case MetricBytes:
		return b.Bytes
	case MetricDownloads:
		return b.Downloads
	default:
		return b.Requests
	}
}

// Baseline is one user's history: 24 hour bands (local hour of day).
// Per-hour counts are kept apart by the store until the hour is over and
// then folded in.
type Baseline struct {
	First int64    `json:"first"` // unix seconds of the first observation
	Next  int64    `json:"next"`  // first hour period (unix/3600) not yet folded in
	Bands [24]Band `json:"bands"`
}

// period is the hour an instant belongs to (hours since the epoch).
func period(t time.Time) int64 { return t.Unix() / 3600 }

// bandOf is the local hour of day a period starts in.
func bandOf(p int64, zone *time.Location) int { return time.Unix(p*3600, 0).In(zone).Hour() }

// maxFold bounds how many idle hours are folded in as zeros at once: after
// a week away, older bands keep what they had.
const maxFold = 7 * 24

// fold folds every finished period before cur into the bands: periods[p]
// are the counts of period p (absent means an idle hour, zero). It reports
// the periods it consumed, which the store may forget.
func (b *Baseline) fold(periods map[int64]Counts, cur int64, zone *time.Location, alpha float64) {
	start := b.Next
	if cur-start > maxFold {
		start = cur - maxFold
	}
	for p := start; p < cur; p++ {
		c := periods[p]
		band := &b.Bands[bandOf(p, zone)]
		if band.Samples == 0 {
			band.Requests, band.Bytes, band.Downloads = float64(c.Requests), float64(c.Bytes), float64(c.Downloads)
		} else {
			band.Requests = alpha*float64(c.Requests) + (1-alpha)*band.Requests
			band.Bytes = alpha*float64(c.Bytes) + (1-alpha)*band.Bytes
			band.Downloads = alpha*float64(c.Downloads) + (1-alpha)*band.Downloads
		}
		band.Samples++
	}
	if cur > b.Next {
		b.Next = cur
	}
}

// threshold is the count in r's window above which the user is unusual at
// now, and whether the user has enough history to be judged at all.
func (b *Baseline) threshold(r *Rule, now time.Time, zone *time.Location) (float64, bool) {
	if b == nil || b.First == 0 || now.Sub(time.Unix(b.First, 0)) < r.MinHistory {
		return 0, false
	}
	// The band now's period is folded into: not now's wall-clock hour,
	// which differs where the offset has minutes (periods are UTC hours).
	band := b.Bands[bandOf(period(now), zone)]
	if band.Samples == 0 {
		return 0, false
	}
	hours := r.Window.Hours()
	usual := math.Max(band.metric(r.Metric), r.BaselineFloor) * hours
	return r.AboveBaseline * usual, true
}
