// Package executor runs event-sourcing commands over the local log.
//
// # Basics
//
// A [Command] declares the streams it reads, folds their events into a
// state with Apply, and decides with Handle which events to append. [Execute]
// reads the streams once (one consistent snapshot), folds, decides, and
// commits the new events with an expectation on the version of every stream
// it read, so no decision is ever made on stale state.
//
// Commands of one [Executor] on the same streams do not race each other:
// an execution holds its streams (in name order, so two never wait for each
// other in a cycle) from its read until its write is queued for the group
// commit, not until that write is durable. The next command on those
// streams folds the queued events on top of what is committed and queues
// its own write after them, built on them (local.Request.After): it is
// acknowledged only when its own commit is durable, and if a write it built
// on fails, it is rejected too and executed again. A hot stream therefore
// moves at group-commit speed with no retries. Conflicts remain only with
// writers the executor cannot see (another Executor on the same store,
// direct Store.Append calls); those are retried with jittered exponential
// backoff, up to Options.MaxRetries or the per-call [WithMaxRetries].
//
// # Cost and kept states
//
// Without help a command folds its streams from their first event on every
// execution, so its cost grows with its streams (the event cache saves the
// reads while the streams fit in it, never the fold). Two optional
// interfaces make the cost flat:
//
//   - [Snapshotter]: the executor keeps the folded state per command type,
//     SnapshotKey and read set, and the next execution starts from a copy of
//     it, reading (from the event cache or the store) and folding only the
//     events past it. It does not need the streams to stay in the event
//     cache. It helps a command that reads the same streams every time.
//   - [StreamSnapshotter]: a Snapshotter whose events change only their own
//     stream's part of the state. The executor keeps one state per stream and
//     merges the parts (MergeState), so a command that reads a fresh stream
//     next to long ones (a new basket and the stock of its SKUs, found with
//     [ReadAlso]) reuses every long stream's state whatever it is combined
//     with. This is the flat path for commands with discovered streams.
//
// Kept states cover committed events only; queued events are folded on top
// of a copy each time. Options.CacheStates bounds how many are kept.
//
// # Invariants
//
//   - Apply sees, from a zero state or from a kept state that a fold from
//     zero over a consistent prefix of the same streams produced, the
//     committed events of its streams in global position order, then the
//     events queued by this executor in queue order: only queued writes
//     that continue the streams and are built on nothing known to have
//     failed, so the state is one the log can still come to. Handle sees
//     the same state on the first attempt, on every retry and with or
//     without kept states. For a [StreamSnapshotter] each stream's part is
//     folded from that stream's events alone and the parts are merged in
//     read-set order; that equals the whole fold exactly when MergeState
//     copies each stream's part faithfully, which its contract asks.
//   - A command writes only streams it read ([ErrUndeclaredStream]).
//   - Versions come from the one read; events are never re-read to learn
//     them. The commit checks them against the log's versions bucket.
//   - With [Idempotent], the key is stored in the same transaction as the
//     events, with a fingerprint of the request: the command's Go type, the
//     streams it declares and what [WithFingerprint] adds (the commands
//     registry adds the command's name and arguments). The same request
//     again returns the first Result and appends nothing, across restarts
//     and however concurrent copies interleave: a copy whose Handle refuses
//     because the first copy already committed ("already checked out") gets
//     the first Result, not the error. The key with another fingerprint
//     fails with [ErrKeyReused] and appends nothing.
//   - A decision that writes nothing (Handle's error, no events) is
//     returned only once the queued writes it was built on are durable; if
//     one failed, the command runs again.
//
// # Caveats
//
//   - Apply must not modify the event it is given: events are shared with a
//     per-stream cache (Options.CacheEvents, Options.CacheBytes) and with
//     other commands folding the same queued write.
//   - An event that is queued but not yet committed has Position 0 and a
//     zero Time; its ID, Stream, Version, Type, Data and Metadata are final.
//     Queued writes on different streams are folded in the order this
//     executor queued them, which is their commit order for writes that
//     share a stream and may differ from it for writes that do not.
//   - Handle runs while the executor holds the command's streams. It must
//     not run another command of the same Executor on those streams: it
//     would wait for itself (with Handle's context, Execute detects this and
//     fails with [ErrReentrant]). A slow Handle delays the commands queued
//     behind it on those streams.
//   - Handle may run several times (retries, [ReadAlso]); it must not have
//     side effects outside its return value. It can ask [Read] whether a
//     stream is read and at which version; a ReadAlso that adds no stream
//     fails with [ErrAlreadyRead].
//   - Apply cannot fail; a command that must refuse an event (one it cannot
//     decode) implements [TryApplier], and the execution then fails with an
//     [ApplyError] naming the event.
//   - Kept states are keyed by the command's type, so a type that embeds a
//     Snapshotter (and so gets its SnapshotKey) never starts from the
//     embedded type's states; two types never share them. Snapshotter's
//     methods must be callable on the value passed to Execute: a command
//     passed by value whose SnapshotKey has a pointer receiver fails with
//     [ErrPointerSnapshotter] instead of silently folding from zero.
//   - A command on a stream that other processes or executors keep writing
//     fails after MaxRetries with an error that matches local.ErrConflict.
package executor
