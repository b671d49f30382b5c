// Package replicate copies a local event log to PostgreSQL, in order and
// exactly once, and keeps the copy current.
//
// # Basics
//
// [Run] ships the events of a [local.Store] to PostgreSQL under a source
// name (default: [DefaultSource], the host name and the store id's first 8
// hex digits), in batches of up to BatchEvents events or
// BatchBytes bytes, one transaction per batch. It catches up in large
// batches, then follows the log through [local.Store.Subscribe] and ships new
// events within FlushInterval of their commit. With Options.Once it returns
// when PostgreSQL holds everything the log held when it started.
//
// Two layouts exist. [LayoutRows] (the default) writes one row per event to
// the events table with COPY, ready for SQL (data->>'amount'). [LayoutFrames]
// writes one row per batch to the frames table: a format frame (zstd by
// default), several times fewer bytes sent and stored, byte-exact, but
// opaque to SQL until [Expand] turns frames into events rows.
//
// Many devices replicate into one database, directly or through PgBouncer
// in transaction mode (no session state is used); [Fleet] is the central
// view of all sources (docs/fleet.md).
//
// [Migrate] creates or upgrades the tables (Run and Expand call it too);
// [Status] reports the lag of a source for `evstore status`, and what Run
// would refuse; [Metrics] and Options.Progress feed progress bars and
// Prometheus ([NewCollector], [MetricsHandler]). Each batch also carries
// the idempotency keys of the requests whose events it holds, so that
// [Restore] can rebuild a lost device's log (same store id, events and
// keys) from which Run then continues the same source. The tables and the
// frame layout are described in docs/replication.md.
//
// # Invariants
//
//   - PostgreSQL is the only cursor. Each batch transaction locks the
//     source row, checks that its position is exactly the batch's first
//     position minus one, inserts the batch and advances the position. A
//     batch whose commit was lost in a failure is found committed, or not,
//     by the next session; none is applied twice, none skipped.
//   - In PostgreSQL a source holds positions 1..position with no gaps, in
//     log order: UNIQUE (source, position) and (source, stream, version).
//   - A source belongs to one store id. A log with another id, a log behind
//     PostgreSQL, or one whose event at the replicated position has another
//     id is refused ([ErrStoreMismatch], [ErrAhead], [ErrDiverged]) unless
//     Options.NewSource archives the old source first.
//   - Options.NewSource does not archive a source another log advanced
//     within Options.ActiveWindow (1h) unless Options.TakeOver is set
//     ([ErrSourceActive]): two devices under one name must not archive
//     each other in turn.
//   - One replicator per source, from what each transaction locks and
//     checks, with no session state (so it holds through PgBouncer in
//     transaction mode): a Run claims the source in its row (holder_id, a
//     lease renewed by every batch and heartbeat, lapsing after three
//     HeartbeatIntervals); every batch checks the claim under the row
//     lock. A second replicator waits LockWait for a live claim, then
//     fails with [ErrConcurrent]; a replicator that finds its claim taken
//     stops with it. An earlier run of the same log file on the same host
//     (which must be dead: the file lock admits one process) is taken
//     over at once, so a restart after a crash does not wait.
//   - No session state on the server at all: statements run as unnamed
//     statements (pgx's cache_describe mode) and settings are SET LOCAL.
//   - A follower with nothing to ship closes its connection after
//     IdleTimeout and reconnects for the next batch or heartbeat.
//   - An archive and an expansion batch of the same source exclude each
//     other: the archive locks the source row FOR UPDATE, each expansion
//     batch FOR KEY SHARE. No batch straddles an archive, so a source never
//     holds rows of two logs.
//   - Transient errors do not stop Run: it retries with exponential backoff
//     (1s to 5m, jittered), probing an unreachable server every
//     ProbeInterval to reconnect as soon as it answers, and logs a
//     repeating error at most every 30s. Without Once it retries forever;
//     with Once for RetryFor (2m), then returns [ErrGaveUp]. Permanent
//     ones (the sentinels, a corrupt local record, what the server refuses
//     for good: credentials, a missing database, an unknown setting, a
//     reserved schema) return at once.
//   - With Once, Run returns nil only when PostgreSQL holds everything;
//     ctx ending first returns [ErrInterrupted].
//   - Passwords in connection strings are never logged ([RedactURL]).
//
// # Caveats
//
//   - Rows layout stores the payload as jsonb when it is JSON that jsonb
//     accepts: PostgreSQL normalizes it (key order, whitespace, duplicate
//     keys). Other payloads go byte for byte to data_raw. recorded_at has
//     microsecond precision. For byte-exact copies use the frames layout.
//   - PostgreSQL text cannot hold U+0000: such characters in metadata are
//     stored as U+FFFD in the rows layout (frames keep them).
//   - Options.NewSource rewrites every row of the archived source (an
//     UPDATE of its source column): slow for big sources, but only on an
//     operator's request.
//   - A replicator that vanishes keeps its claim on the source until the
//     lease lapses (3 × HeartbeatInterval, 3 minutes by default) for any
//     replicator but a restart of the same log file on the same host.
//     Options.TakeOver ignores the claim.
//   - Two devices cloned from one image (same host name, log path and
//     store id) look like restarts of each other: each takes the source
//     from the other, which then stops with [ErrConcurrent]. Positions are
//     still checked in every batch, so nothing is duplicated; give each
//     its own host name or Options.Source.
//   - Expand polls every PollInterval; there is no notification.
//   - Restore from a rows source gives JSON-equal payloads and microsecond
//     times (what the rows layout stores); from a frames source, byte-exact
//     records. Events not yet replicated when a device was lost are gone.
package replicate
