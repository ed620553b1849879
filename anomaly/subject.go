package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// subject.go: what the detector reads of one subject per request, without
// a map or a string per key. The keys of a Subject are cut from one
// string (one allocation per call), and the counters, markers and baseline
// read are held in a state value on the caller's stack: the MemoryStore
// fills it under its lock, the local view of a Batcher store under the
// syncer's; other reads' Snapshots are copied into it. judgeRisk then
// turns it into Assess's Risk, judge (detector.go) into firings.

// Counter slots: the counter keys of one subject, in the order Query.Keys
// lists them.
const (
	slotUser         = iota // "u:ID", or "ip:ADDR" for anonymous callers
	slotSession             // "s:ID"; only when a rule counts per session
	slotNightUser           // nightPrefix + user key; only at night when a rule is night-only
	slotNightSession        // nightPrefix + session key
	nSlots
)

// Marker indexes: the markers Assess reads for one subject.
const (
	markBlockUser = iota
	markStepUpUser
	markBlockSession
	markStepUpSession
	nMarks
)

// subjectKeys are the store keys of one Subject: counter keys by slot and
// marker names by index; the session ones are "" without a session.
type subjectKeys struct {
	counter [nSlots]string
	marks   [nMarks]string
}

// newSubjectKeys computes s's keys with a single allocation.
func newSubjectKeys(s Subject) subjectKeys {
	prefix, id := "u:", s.User
	if s.User == "" {
		prefix, id = "ip:", s.IP
	}
	const fixed = len(nightPrefix) + len("block:") + len("stepup:")
	ulen := len(prefix) + len(id)
	slen := 0
	if s.Session != "" {
		slen = len("s:") + len(s.Session)
	}
	n := fixed + 3*ulen
	if slen > 0 {
		n += fixed + 3*slen
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range [...]string{nightPrefix, "block:", "stepup:"} {
		b.WriteString(p)
		b.WriteString(prefix)
		b.WriteString(id)
	}
	if slen > 0 {
		for _, p := range [...]string{nightPrefix, "block:", "stepup:"} {
			b.WriteString(p)
			b.WriteString("s:")
			b.WriteString(s.Session)
		}
	}
	all, o := b.String(), 0
	cut := func(n int) string {
		v := all[o : o+n]
		o += n
		return v
	}
	var k subjectKeys
	k.counter[slotNightUser] = cut(len(nightPrefix) + ulen)
	k.counter[slotUser] = k.counter[slotNightUser][len(nightPrefix):]
	k.marks[markBlockUser] = cut(len("block:") + ulen)
	k.marks[markStepUpUser] = cut(len("stepup:") + ulen)
	if slen > 0 {
		k.counter[slotNightSession] = cut(len(nightPrefix) + slen)
		k.counter[slotSession] = k.counter[slotNightSession][len(nightPrefix):]
		k.marks[markBlockSession] = cut(len("block:") + slen)
		k.marks[markStepUpSession] = cut(len("stepup:") + slen)
	}
	return k
}

func (k *subjectKeys) user() string    { return k.counter[slotUser] }
func (k *subjectKeys) session() string { return k.counter[slotSession] }

// counterKeys are the counter keys of sk that are counted (by slot, ""
// for the others): the user; the session when a rule counts per session;
// at night also the night-only ones when a rule is night-only.
func (d *Detector) counterKeys(sk *subjectKeys, night bool) [nSlots]string {
	var ks [nSlots]string
	ks[slotUser] = sk.counter[slotUser]
	if d.perSess {
		ks[slotSession] = sk.counter[slotSession]
	}
	if night && d.nightly {
		ks[slotNightUser] = sk.counter[slotNightUser]
		if ks[slotSession] != "" {
			ks[slotNightSession] = sk.counter[slotNightSession]
		}
	}
	return ks
}

// compact appends the non-empty names of ks to dst.
func compact(dst []string, ks []string) []string {
	for _, k := range ks {
		if k != "" {
			dst = append(dst, k)
		}
	}
	return dst
}

// keys are the counter keys of s; at night also the night-only ones.
func (d *Detector) keys(s Subject, night bool) []string {
	sk := newSubjectKeys(s)
	ks := d.counterKeys(&sk, night)
	return compact(make([]string, 0, nSlots), ks[:])
}

// ruleSlot is the slot of the counters r judges for s.
func ruleSlot(r *Rule, s Subject) int {
	slot := slotUser
	if r.Per == PerSession && s.Session != "" {
		slot = slotSession
	}
	if r.Night {
		slot += slotNightUser
	}
	return slot
}

// stateInline is how many counters a state holds without allocating:
// every slot in four windows.
const stateInline = nSlots * 4

// state is what was read of one subject: the counters of its counted keys
// in every window of the detector (zero for keys not counted), its
// markers and its baseline.
type state struct {
	nw     int // windows per slot
	buf    [stateInline]Counts
	big    []Counts // instead of buf with more windows
	marks  [nMarks][]byte
	has    [nMarks]bool
	ext    *Baseline // the baseline, from a Snapshot or FoldBaseline
	bl     Baseline  // the baseline copied from the memory store
	haveBl bool
}

func (st *state) init(windows int) {
	st.nw = windows
	if nSlots*windows > stateInline {
		st.big = make([]Counts, nSlots*windows)
	}
}

// row is the counters of slot, one per window.
func (st *state) row(slot int) []Counts {
	if st.big != nil {
		return st.big[slot*st.nw : (slot+1)*st.nw]
	}
	return st.buf[slot*st.nw : (slot+1)*st.nw]
}

// at is the counters of slot in window index wi.
func (st *state) at(slot, wi int) Counts { return st.row(slot)[wi] }

// baseline is the subject's baseline; nil: none.
func (st *state) baseline() *Baseline {
	if st.ext != nil {
		return st.ext
	}
	if st.haveBl {
		return &st.bl
	}
	return nil
}

// fromSnapshot copies what snap holds of keys (by slot, "" skipped) in
// windows, of marks (by index, "" skipped) and of user's baseline ("":
// none) into st.
func (st *state) fromSnapshot(snap Snapshot, keys *[nSlots]string, windows []time.Duration, marks *[nMarks]string, user string) {
	for slot, k := range keys {
		if k == "" {
			continue
		}
		byW, row := snap.Counts[k], st.row(slot)
		for wi, w := range windows {
			row[wi] = byW[w]
		}
	}
	if marks != nil {
		for i, n := range marks {
			if n != "" {
				st.marks[i], st.has[i] = snap.Markers[n]
			}
		}
	}
	if user != "" {
		st.ext = snap.Baselines[user]
	}
}

// load reads what Assess needs from a store other than the MemoryStore
// (or from the local view of a Batcher store) into st, and reports
// whether it came from the view.
func (d *Detector) load(ctx context.Context, now time.Time, ks *[nSlots]string, marks *[nMarks]string, bu string, st *state) (bool, error) {
	if d.sync != nil && d.sync.viewState(ks, d.windows, marks, bu, st) {
		return true, nil
	}
	if d.storeHung() {
		return false, ErrStoreBackoff
	}
	q := Query{Keys: compact(nil, ks[:]), Windows: d.windows, Markers: compact(nil, marks[:])}
	if bu != "" {
		q.Baselines = []string{bu}
	}
	started := time.Now()
	sctx, cancel := d.bounded(ctx)
	snap, err := d.store.Load(sctx, now, q)
	cancel()
	if d.sync != nil && err == nil {
		d.sync.fill(q, snap, started)
	} else if d.sync != nil {
		d.sync.failed(fmt.Errorf("assess: %w", err))
	}
	if err != nil {
		return false, err
	}
	*st = state{}
	st.init(len(d.windows))
	st.fromSnapshot(snap, ks, d.windows, marks, bu)
	return false, nil
}

// judgeRisk turns what was read of s into risk: blocks, step-up requests,
// counters and the flags of every rule whose conditions hold. cached says
// st came from the local view, which may hold a block past its end.
func (d *Detector) judgeRisk(risk *Risk, s Subject, now time.Time, st *state, cached bool) {
	for _, i := range [...]int{markBlockSession, markBlockUser} {
		if !st.has[i] || risk.Blocked {
			continue
		}
		raw := st.marks[i]
		if cached && blockExpired(raw, now) {
			continue // over; the view has not re-read it yet
		}
		var b Block
		if json.Unmarshal(raw, &b) != nil || b.Reason == "" {
			b = Block{Reason: "anomaly_block"}
		}
		risk.Blocked, risk.Reason, risk.Block = true, b.Reason, &b
		risk.Flags = append(risk.Flags, FlagBlocked)
	}
	for _, i := range [...]int{markStepUpSession, markStepUpUser} {
		if !st.has[i] || risk.StepUp {
			continue
		}
		var m stepUpMark
		if json.Unmarshal(st.marks[i], &m) != nil || s.AuthTime.IsZero() || s.AuthTime.Before(m.At) {
			risk.StepUp = true
			risk.Flags = append(risk.Flags, FlagStepUp)
			if risk.Reason == "" {
				risk.Reason = "anomaly_step_up:" + m.Rule
			}
		}
	}
	risk.Counts = st.at(slotUser, d.riskIdx)
	if s.Session != "" {
		risk.Session = st.at(slotSession, d.riskIdx)
	}
	b := st.baseline()
	for i := range d.rules {
		r := &d.rules[i]
		if r.Night && !risk.Night {
			continue
		}
		if ok, _ := r.holds(st.at(ruleSlot(r, s), d.ruleWin[i]), b, now, d.opts.Zone); ok {
			risk.Flags = appendNew(risk.Flags, d.ruleFlags[i]...)
		}
	}
}
