// Package audit is Gatehouse's append-only, signed audit log.
//
// # Design
//
// A Log is a directory of segment files holding one JSON Record per line
// (see docs/audit.md for every field). Each line is a leaf of a Merkle tree
// built with golang.org/x/mod/sumdb/tlog: the leaf hash is
// tlog.RecordHash(line) of the stored bytes, and the tlog stored hashes are
// kept in a side file so that appending, proving and restarting cost
// O(log n) hash reads, never a re-read of the log.
//
// Appending is split in two, as in transparency logs: Append sequences a
// record under a short lock; one committer goroutine writes whatever is
// pending and fsyncs it (group commit). Append encodes the record's fields
// (a hand-written encoder that produces exactly encoding/json's bytes, see
// encode.go) and the plaintext of its sealed fields before taking the lock;
// under it, it only assigns the index and time, writes the line's prefix
// ({"v":1,"index":…,"time":…) and seals, copies the encoded fields after
// it into the pending segment data and hashes that exact stored line into
// the tree (tlog.RecordHash, then the stored hashes), so indices stay
// gap-free and in file order. In DurabilityAlways, Append waits
// for that fsync, and every appender that arrived during one fsync shares
// the next; in DurabilityBatch it returns at once and the committer runs at
// most every GroupCommit. The committer also signs checkpoints (the
// checkpoint format: origin, size, root; golang.org/x/mod/sumdb/note,
// Ed25519) at least every CheckpointInterval and at Close, appends them to
// the history and hands them to Publishers (file, webhook) without waiting.
// A failed write makes every later Append fail (ErrWriteFailed) and calls
// OnAlert once: the proxy then refuses requests rather than serve them
// unaudited.
//
// Open repairs what a crash can leave (a torn last line, a torn last
// checkpoint, stored hashes behind the records) and refuses a log whose tail
// contradicts its last checkpoint (ErrTailMismatch) instead of forking
// history.
//
// Verify is the auditor's side: it trusts only the records, the signed
// checkpoints and the given keys; it recomputes the tree and names the first
// Problem (kind, segment, line, index). ProveInclusion, ProveConsistency and
// CheckProof give single records and log growth as proofs checkable offline.
//
// Personal fields can be sealed at rest under per-month data keys wrapped by
// a master key (Keyring); Shred destroys data keys of past periods while the
// records stay verifiable. Scan and Search read records back for reports
// (package audit/report) and policy replay.
//
// The package knows nothing of the proxy, config, authn, policy or anomaly:
// proxy/wire_audit.go adapts configuration and pipeline events to it.
package audit
