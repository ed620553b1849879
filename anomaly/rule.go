package anomaly

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Action is what a rule does when it fires.
type Action string

// The actions a rule may name.
const (
	ActionAlert        Action = "alert"         // queue an alert for every sink (and log + metric via Hooks)
	ActionStepUp       Action = "step_up"       // the subject's next request must redo MFA
	ActionBlockSession Action = "block_session" // refuse the session for BlockFor and cut its live requests
	ActionBlockUser    Action = "block_user"    // refuse the user (all sessions) for BlockFor and cut live requests
	ActionRevoke       Action = "revoke"        // end the session (per-session rule) or all the user's sessions
)

// Scope says whose counters a rule judges.
type Scope string

// Scopes.
const (
	PerUser    Scope = "user"
	PerSession Scope = "session"
)

// Metric is a counter a baseline rule compares.
type Metric string

// Metrics for above_baseline.
const (
	MetricRequests  Metric = "requests"
	MetricBytes     Metric = "bytes"
	MetricDownloads Metric = "downloads"
)

// Flag names set in Risk.Flags besides a firing rule's own name.
const (
	FlagNight          = "night"
	FlagBulkDownload   = "bulk_download"
	FlagBulkBytes      = "bulk_bytes"
	FlagRequestBurst   = "request_burst"
	FlagManyPaths      = "many_paths"
	FlagUnusualVolume  = "unusual_volume"
	FlagBlocked        = "blocked"
	FlagStepUp         = "step_up"
	FlagStoreUnavail   = "store_unavailable"
	ReasonStoreUnavail = "store_unavailable"
)

// ErrBadRule reports an invalid rule.
var ErrBadRule = errors.New("invalid anomaly rule")

// Rule is one detector: conditions over a sliding window and the actions to
// take when all of them hold. Zero thresholds are not conditions.
type Rule struct {
	Name   string
	Night  bool          // only while the Night window is on
	Window time.Duration // sliding window the counters cover
	Per    Scope         // "" means PerUser

	DownloadsOver     int64
	BytesOver         int64
	RequestsOver      int64
	DistinctPathsOver int64

	// AboveBaseline N: the Metric's count in the window exceeds N times the
	// user's own usual count for this hour band (scaled to the window).
	AboveBaseline float64
	Metric        Metric        // "" means MetricRequests
	BaselineFloor float64       // least usual rate per hour assumed; 0: a per-metric default
	MinHistory    time.Duration // users first seen more recently are not judged; 0: 7 days

	Actions  []Action
	BlockFor time.Duration // 0: Options.BlockFor
}

// Default baseline floors per hour: below these a user is never "unusual",
// so that someone who is normally idle at 03:00 is not flagged for opening
// one page.
const (
	DefaultFloorRequests  = 60
	DefaultFloorDownloads = 10
	DefaultFloorBytes     = 50 << 20
	DefaultMinHistory     = 7 * 24 * time.Hour
)

func (r *Rule) validate(hasNight bool, hasRevoker bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("rule %q: %s: %w", r.Name, fmt.Sprintf(format, a...), ErrBadRule)
	}
	if r.Name == "" {
		return bad("name is required")
	}
	if r.Window <= 0 {
		return bad("window must be positive")
	}
	if r.Per == "" {
		r.Per = PerUser
	}
	if r.Per != PerUser && r.Per != PerSession {
		return bad("per must be user or session, not %q", r.Per)
	}
	if r.Night && !hasNight {
		return bad("when: night needs anomaly.night")
	}
	if r.DownloadsOver < 0 || r.BytesOver < 0 || r.RequestsOver < 0 || r.DistinctPathsOver < 0 || r.AboveBaseline < 0 || math.IsNaN(r.AboveBaseline) || math.IsInf(r.AboveBaseline, 0) {
		return bad("thresholds must not be negative")
	}
	if r.DownloadsOver == 0 && r.BytesOver == 0 && r.RequestsOver == 0 && r.DistinctPathsOver == 0 && r.AboveBaseline == 0 {
		return bad("no condition (downloads_over, bytes_over, requests_over, distinct_paths_over, above_baseline)")
	}
	if r.Metric == "" {
		r.Metric = MetricRequests
	}
	switch r.Metric {
	case MetricRequests, MetricBytes, MetricDownloads:
	default:
		return bad("unknown baseline metric %q", r.Metric)
	}
	if r.BaselineFloor < 0 {
		return bad("baseline floor must not be negative")
	}
	if r.BaselineFloor == 0 {
		switch r.Metric {
		case MetricBytes:
			r.BaselineFloor = DefaultFloorBytes
		case MetricDownloads:
			r.BaselineFloor = DefaultFloorDownloads
		default:
			r.BaselineFloor = DefaultFloorRequests
		}
	}
	if r.MinHistory == 0 {
		r.MinHistory = DefaultMinHistory
	}
	if len(r.Actions) == 0 {
		return bad("no action")
	}
	seen := map[Action]bool{}
	for _, a := range r.Actions {
		switch a {
		case ActionAlert, ActionStepUp, ActionBlockSession, ActionBlockUser:
		case ActionRevoke:
			if !hasRevoker {
				return bad("action revoke needs session revocation (no revoker available)")
			}
		default:
			return bad("unknown action %q", a)
		}
		if seen[a] {
			return bad("action %q listed twice", a)
		}
		seen[a] = true
	}
	if r.BlockFor < 0 {
		return bad("block_for must not be negative")
	}
	return nil
}

func (r *Rule) blocks() bool {
	for _, a := range r.Actions {
		if a == ActionBlockSession || a == ActionBlockUser {
			return true
		}
	}
	return false
}

// holds reports whether every condition of r holds for c (b may be nil)
// and, for baseline rules, the threshold it compared against.
func (r *Rule) holds(c Counts, b *Baseline, now time.Time, zone *time.Location) (ok bool, threshold float64) {
	if r.DownloadsOver > 0 && c.Downloads <= r.DownloadsOver {
		return false, 0
	}
	if r.BytesOver > 0 && c.Bytes <= r.BytesOver {
		return false, 0
	}
	if r.RequestsOver > 0 && c.Requests <= r.RequestsOver {
		return false, 0
	}
	if r.DistinctPathsOver > 0 && c.Paths <= r.DistinctPathsOver {
		return false, 0
	}
	if r.AboveBaseline > 0 {
		th, eligible := b.threshold(r, now, zone)
		if !eligible || float64(c.metric(r.Metric)) <= th {
			return false, 0
		}
		threshold = th
	}
	return true, threshold
}

// flags are the flags r contributes when it fires: its name, then the
// kind of each of its conditions.
func (r *Rule) flags() []string {
	flags := []string{r.Name}
	if r.DownloadsOver > 0 {
		flags = append(flags, FlagBulkDownload)
	}
	if r.BytesOver > 0 {
		flags = append(flags, FlagBulkBytes)
	}
	if r.RequestsOver > 0 {
		flags = append(flags, FlagRequestBurst)
	}
	if r.DistinctPathsOver > 0 {
		flags = append(flags, FlagManyPaths)
	}
	if r.AboveBaseline > 0 {
		flags = append(flags, FlagUnusualVolume)
	}
	return flags
}
