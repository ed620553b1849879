// Package godebugprobe remembers a yes/no fact about the standard library
// that depends on the process's GODEBUG setting, such as whether a lowered
// limit (urlmaxqueryparams, httpcookiemaxnum) still lets a fast path's
// inputs through. The request path asks on every request; the probe runs
// once, at the first question, and its answer is a single atomic load from
// then on.
//
// GODEBUG comes from the environment at start (or the binary's //go:debug
// defaults, which the probe sees as well). The standard library re-reads it
// only when the process itself calls os.Setenv("GODEBUG", ...), which
// Gatehouse never does; a test that does calls Reset after it, so a fast
// path that must agree with the library is judged under the setting that
// test runs with. (Asking os.Getenv on every request instead cost ≈ 0.4 µs
// under load: its lock is shared by both cores.)
package godebugprobe

import "sync/atomic"

// Probe caches the answer of a probe function.
type Probe struct {
	probe func() bool
	state atomic.Int32 // 0 not probed, 1 no, 2 yes
}

// New returns a Probe asking probe, which exercises the standard library
// under the current setting.
func New(probe func() bool) *Probe { return &Probe{probe: probe} }

// OK is probe's answer, probed at the first call after New or Reset.
func (p *Probe) OK() bool {
	switch p.state.Load() {
	case 1:
		return false
	case 2:
		return true
	}
	ok := p.probe()
	v := int32(1)
	if ok {
		v = 2
	}
	p.state.Store(v)
	return ok
}

// Reset makes the next OK probe again: for a test that changed GODEBUG.
func (p *Probe) Reset() { p.state.Store(0) }
