package proxy

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Wiring is what a package builder sees while the server is assembled: the
// validated config, shared services, and the slots it may fill. Builders run
// once at start, in order; each plugs its package into the pipeline.
type Wiring struct {
	Config  *config.Config
	Logger  *zap.Logger
	Metrics prometheus.Registerer
	// Clock is the one clock of the process (sessions, policy time,
	// anomaly windows, audit records).
	Clock func() time.Time
	// Zone, when set, is the time zone of the time of day in place of
	// anomaly.timezone (Options.Zone; `gatehouse demo --at`).
	Zone *time.Location

	// Stages; a builder sets the ones it provides.
	Auth      Authenticator
	Risk      RiskAssessor
	Authz     Authorizer
	Recorder  Recorder
	Observers []Observer

	mux       *http.ServeMux // /.gatehouse/* on every host
	adminMux  *http.ServeMux // admin API, behind the bearer token
	readiness []readinessCheck
	onReload  []func(ctx context.Context, cfg *config.Config) error
	// onReloadPrepare are two-phase reload hooks (OnReloadPrepare).
	onReloadPrepare []func(ctx context.Context, cfg *config.Config) (func(), error)
	onClose         []func(ctx context.Context) error
	hdrs            []UpstreamHeaderer
	// guards is read by every request without a lock (a shared mutex
	// taken per request makes both cores trade its cache line); AddGuard
	// replaces the slice under guardsMu.
	guards   atomic.Pointer[[]RequestGuard]
	guardsMu sync.Mutex
}

// guardList returns the registered guards (never modified in place).
func (w *Wiring) guardList() []RequestGuard {
	if p := w.guards.Load(); p != nil {
		return *p
	}
	return nil
}

// UpstreamHeaderer adds headers (identity headers, signed assertion) to the
// request sent upstream, after every client-sent one was stripped.
type UpstreamHeaderer interface {
	UpstreamHeaders(req *Request, id Identity, h http.Header)
}

// RequestGuard may cut a request while it is being served (an anomaly block
// closes live downloads and WebSockets). Guard calls cut, with the cause,
// when the request must stop, until the release func it returns (nil when
// there is nothing to release) is called. The pipeline makes one
// cancellable context per request for every guard and the upstream header
// timeout, so a guard needs no context or timer of its own.
type RequestGuard interface {
	Guard(req *Request, id Identity, cut context.CancelCauseFunc) (release func())
}

type readinessCheck struct {
	name  string
	check func(ctx context.Context) error
}

// Handle registers h under /.gatehouse/ (pattern as for http.ServeMux, e.g.
// "GET /.gatehouse/callback"). These handlers run before routing, on every host.
func (w *Wiring) Handle(pattern string, h http.Handler) { w.mux.Handle(pattern, h) }

// HandleAdmin registers h on the admin listener behind the admin token
// (pattern e.g. "POST /api/v1/sessions/revoke").
func (w *Wiring) HandleAdmin(pattern string, h http.Handler) { w.adminMux.Handle(pattern, h) }

// AddReadiness adds a check to /readyz; a non-nil error makes it not ready.
func (w *Wiring) AddReadiness(name string, check func(ctx context.Context) error) {
	w.readiness = append(w.readiness, readinessCheck{name, check})
}

// OnReload registers a hook run with a new, already validated config. An
// error keeps the old state serving and is reported as a failed reload.
func (w *Wiring) OnReload(f func(ctx context.Context, cfg *config.Config) error) {
	w.onReload = append(w.onReload, f)
}

// OnReloadPrepare registers a two-phase reload hook: prepare builds what
// the new config needs without changing anything that serves, and returns
// the commit that puts it in place (nil: nothing to do). Commits run only once every prepare
// and every OnReload hook succeeded, so a reload refused later (a policy
// that does not compile) leaves no half-applied stage behind.
func (w *Wiring) OnReloadPrepare(prepare func(ctx context.Context, cfg *config.Config) (commit func(), err error)) {
	w.onReloadPrepare = append(w.onReloadPrepare, prepare)
}

// OnClose registers a hook run at shutdown, in reverse order of registration.
func (w *Wiring) OnClose(f func(ctx context.Context) error) { w.onClose = append(w.onClose, f) }

// AddUpstreamHeaderer registers h to add headers to upstream requests.
func (w *Wiring) AddUpstreamHeaderer(h UpstreamHeaderer) { w.hdrs = append(w.hdrs, h) }

// AddGuard registers g to watch requests while they are served.
func (w *Wiring) AddGuard(g RequestGuard) {
	w.guardsMu.Lock()
	defer w.guardsMu.Unlock()
	gs := append(slices.Clip(w.guardList()), g) // a new array: readers keep theirs
	w.guards.Store(&gs)
}

// Builder plugs one package into the pipeline.
type Builder func(ctx context.Context, w *Wiring) error

type builderEntry struct {
	name  string
	order int
	build Builder
}

var builders []builderEntry

// Builder order: audit first (everyone records), then authn, anomaly, policy.
const (
	OrderAudit   = 10
	OrderAuthn   = 20
	OrderAnomaly = 30
	OrderPolicy  = 40
)

// RegisterBuilder registers a package builder; called from init in
// wire_<pkg>.go. Builders run by ascending order.
func RegisterBuilder(name string, order int, b Builder) {
	builders = append(builders, builderEntry{name, order, b})
	sort.SliceStable(builders, func(i, j int) bool { return builders[i].order < builders[j].order })
}
