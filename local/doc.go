// Package local is evstore's local event log: one bbolt file holding every
// event, a per-stream index, the current version of each stream, and the
// idempotency keys of committed commands.
//
// # Basics
//
// [Open] a file, [Store.Append] events (optionally with [Expect]ations on
// stream versions), read them back with [Store.ReadStream], [Store.ReadAll]
// or [Store.Subscribe]. Commands (package executor) use [Store.ReadStreams]
// to read their streams once and [Store.Write] to commit with an Expect for
// every stream they read.
//
// Operations (docs/operations.md): [Store.Backup] and [Store.BackupFile]
// take a consistent, verified copy while the store is in use;
// [Store.Check] verifies every record and index and names each problem's
// location; [Store.Stats] and [Store.Streams] describe the store;
// [Store.CompactFile] writes a copy without free pages; [Store.Export],
// [Store.ImportExport] and [Store.Import] move events between logs with
// their positions, ids and times; [Store.ReadAllSalvage] reads past damaged
// records (and [Store.ReadStreamSalvage] a stream). Options.ReadOnly opens a file without writing anything to it;
// Options.StoreID gives a new file a known id (a restore).
//
// [Store.Enqueue] queues a request without waiting for it; requests are
// committed in the order their Enqueue returned, and [Request.After] makes
// a request depend on earlier queued ones (it is rejected unless they
// committed), which lets the executor build commands on writes that are not
// durable yet. An idempotency key is stored with a fingerprint of its
// request; the key coming back with another request fails with
// [ErrKeyReused].
//
// All writes go through one writer goroutine that groups whatever is queued
// into one bbolt transaction and one fsync (group commit). Each request in a
// group is checked on its own, against the versions bucket and against the
// requests before it in the group; one that fails is rejected alone. A caller
// is answered only after the transaction is durable.
//
// # Invariants
//
//   - Positions are 1..Head with no gaps, in commit order; each stream's
//     versions are 1..n with no gaps.
//   - A request is all or nothing across all its streams.
//   - Stream versions are read from the versions bucket once per transaction;
//     events are never re-read to learn a version.
//   - Every record carries a CRC-32C; a damaged one is reported as
//     format.ErrCorrupt with its position, never returned as data.
//   - Iterators never hold a read transaction while the caller's code runs:
//     they read in chunks, a fresh transaction each.
//
// Key spaces are named key/value maps in the same file, for read models
// (package projection): [Store.UpdateSpace] runs a function on one inside
// the writer's group transaction, so what it writes commits atomically with
// the group, and a failing or panicking function is undone and rejected
// alone. [Store.ViewSpace] reads one; [Store.DropSpace] removes one.
// [Store.ReadBatch] and [Store.WaitHead] let a consumer read the log in
// batches and wait for commits without polling.
//
// The layout is documented byte by byte in docs/format.md.
//
// # Caveats
//
//   - bbolt locks the file: one process (and one Store) at a time. A second
//     Open waits up to Options.LockTimeout, retrying every few milliseconds
//     with jitter (so a crowd of short-lived processes keeps the lock busy),
//     then fails with [ErrLocked]. On Unix, a waiter whose file was removed
//     or replaced meanwhile opens what the path names then.
//   - Open refuses a path that is a directory, a device, a FIFO or a
//     socket ([ErrNotStore], without opening it), tells a file whose two
//     meta pages are both damaged ([ErrCorruptStore]) from one that never
//     was a database, and one written by a newer evstore ([ErrNewerLayout])
//     from both.
//   - Options.NoSync trades durability of the last commits on power loss
//     for speed; the file stays consistent.
//   - A cancelled context stops a request only if the writer has not picked
//     it up yet; after that the commit completes and is reported.
//   - An event's time is its group commit's time from Options.Clock
//     (time.Now by default), not the time it was requested.
//   - The file never shrinks: deleted space is reused but not returned. CompactFile
//     writes a copy without free pages.
//   - Import runs beside the writer (bbolt orders their transactions); it is
//     meant for filling a new or restored log, where nothing else writes.
//   - Check's page-level part (bbolt's own structure) runs only on a store
//     opened read-only: bbolt's check is not safe beside a writer.
//   - An UpdateSpace function runs on the writer goroutine: while it runs no
//     append commits, and calling the store's write methods from it
//     deadlocks.
//   - After a commit fails (an fsync error, a full disk) the store refuses
//     every later write with a [RefusedError] (nothing of it was written;
//     it unwraps to ErrWriteFailed): what reached the disk is then unknown
//     to this process, and guessing could overwrite records. The failed
//     commit itself returns a [CommitError]: it may or may not be on disk,
//     which reopening shows. Close and reopen once the cause is fixed;
//     reads go on working.
//   - A damaged file (truncated, or a page overwritten) makes Open or a read
//     fail with ErrCorruptStore instead of crashing; a page damaged in a way
//     that makes bbolt read outside the file can still fault. Keep backups.
package local
