// Package executor runs event-sourcing commands over the local log.
//
// # Basics
//
// A [Command] declares the streams it reads, folds their events into a
// state with Apply, and decides with Handle which events to append. [Execute]
// reads the streams once (one consistent snapshot), folds, decides, and
// commits the new events with an expectation on the version of every stream
// it read, so no decision is ever made on stale state. On a conflict it
// re-reads only the streams that moved, from the version already folded,
// folds again from a zero state and decides again, with jittered
// exponential backoff.
//
// # Invariants
//
//   - Apply sees the events of all read streams in global position order,
//     from a zero state, on the first attempt and on every retry alike. A
//     command that implements [Snapshotter] opts into starting from a copy
//     of a state the executor folded earlier (from zero, over a consistent
//     prefix of the same streams) and folding only the events after it:
//     Handle sees the same state, and the cost of a command no longer grows
//     with the length of its streams.
//   - A command writes only streams it read ([ErrUndeclaredStream]).
//   - Versions come from the one read; events are never re-read to learn
//     them. The commit checks them against the log's versions bucket.
//   - With [Idempotent], the key is stored in the same transaction as the
//     events: the same key again returns the first Result and appends
//     nothing, across restarts.
//
// # Caveats
//
//   - Apply must not modify the event it is given: events are shared with a
//     per-stream cache (Options.CacheEvents, Options.CacheBytes) so later commands read only what
//     is new.
//   - Without [Snapshotter], every command folds its streams from their
//     first event; the event cache saves the reads, not the fold.
//   - Handle may run several times (retries, [ReadAlso]); it must not have
//     side effects outside its return value.
//   - A command on a hot stream that keeps losing races fails after
//     Options.MaxRetries with an error that matches local.ErrConflict.
package executor
