// Package godebugprobe remembers a yes/no fact about the standard library
// that depends on the process's GODEBUG setting, such as whether a lowered
// limit (urlmaxqueryparams, httpcookiemaxnum) still lets a fast path's
// inputs through. The request path asks on every request; the fact is
// probed again only when GODEBUG changes (os.Setenv changes a setting
// live), so a fast path that must agree with the library never outlives
// the setting it was judged under.
package godebugprobe

import (
	"os"
	"sync/atomic"
)

// Probe caches the answer of a probe function per GODEBUG value.
type Probe struct {
	probe func() bool
	last  atomic.Pointer[result]
}

type result struct {
	godebug string
	ok      bool
}

// New returns a Probe asking probe, which exercises the standard library
// under the current setting.
func New(probe func() bool) *Probe { return &Probe{probe: probe} }

// OK is probe's answer under the current GODEBUG.
func (p *Probe) OK() bool {
	env := os.Getenv("GODEBUG")
	if r := p.last.Load(); r != nil && r.godebug == env {
		return r.ok
	}
	r := &result{godebug: env, ok: p.probe()}
	p.last.Store(r)
	return r.ok
}
