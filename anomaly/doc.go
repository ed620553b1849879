// Package anomaly watches the request stream for behaviour that does not
// fit a user — bulk downloads at night, volume far above the user's own
// baseline — and responds: it alerts, asks for step-up MFA, blocks the
// session or user, revokes sessions and cuts live connections.
//
// # Design
//
// The package knows nothing of HTTP servers, configuration files, sessions
// or policies. It sees a Subject (user, session, client address) and
// Observations (one per finished request: bytes actually sent, whether it
// was a download, the path), and answers Assess with a Risk. The proxy's
// wire_anomaly.go adapts its own types to these.
//
//   - Counting happens in Observe, on completion, from the bytes really
//     sent. Each counter key (the user, and the session when a rule is per
//     session) has, per configured window, a ring of Buckets time buckets
//     (window/Buckets wide): the sliding window sum is exact to one bucket.
//     Distinct paths are kept as path → last-seen time.
//   - Rules are evaluated on the counters read back from the store (so two
//     replicas sharing Redis judge the same sums): after each observation
//     with the memory store, after each flush with a Batcher store.
//     A rule whose conditions all hold fires once per subject until its
//     "fired" marker expires (the rule's window, or its block duration if
//     shorter): actions are idempotent, even across replicas (SET NX).
//     Every firing produces exactly one Record carrying the counters that
//     triggered it and the outcome of every action.
//   - Baselines are exponentially weighted averages per user and hour band
//     (local hour of day in the configured time zone). Each hour's counts
//     are folded into its band once the hour is over, hours without
//     activity count as zero, and a rule using above_baseline only fires
//     for users first seen at least MinHistory ago.
//   - Assess reads blocks, step-up markers and counters (one round trip,
//     or the local view below) and turns them into Risk flags ("night", the rule's name and its
//     kind: bulk_download, bulk_bytes, request_burst, many_paths,
//     unusual_volume). When the store cannot be read, Assess fails closed
//     (Blocked, reason store_unavailable) unless FailOpen is set.
//   - A shared store that is a Batcher (RedisStore) is kept off the
//     request path (sync.go): Observe only buffers; a flusher sends the
//     buffer every SyncInterval in one pipelined round trip, reads the
//     totals back and judges the rules on them. Assess answers from a
//     local view of recent subjects' counters, markers and baselines,
//     read from the store once per new subject. Every flush also reads
//     MarkerGeneration, which the store increments on each change of a
//     block or step-up marker: when it moved the whole view is re-read at
//     once, and every ResyncInterval anyway. The view is trusted only
//     while the flusher's last round trip succeeded and is under a second
//     old; otherwise Assess goes to the store and fails closed as above.
//   - Blocks cut live requests: Guard calls the request's cancel func (Watch
//     returns a context cancelled) as soon as a block covering its
//     subject is made on this instance, or when it
//     was made by another instance sharing the store, within one flush
//     (Batcher stores) or PollInterval (others).
//   - Alerts are queued and delivered by background workers with retries;
//     the request path never waits for a webhook.
//   - The request path is kept cheap (subject.go): a subject's keys are
//     cut from one string, and what Assess and Observe read is copied
//     into a value on the stack. The MemoryStore is read in place under
//     its lock, without a Snapshot and without a StoreTimeout context (it
//     cannot block); with a Batcher store Assess copies from the local
//     view. When no rule fires a request allocates little more than its
//     keys and Guard's release func (the proxy passes its own cancel
//     func, so no context is made here).
//
// All time comes from the injected Clock, so tests (and the demo) can run
// at 02:00 Hong Kong time.
package anomaly
