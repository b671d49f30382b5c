// Package projection keeps read models of the log up to date: durable
// projections with a checkpoint, batching, filters, rebuilds and status.
//
// # Basics
//
// A [Projection] has a stable Name and an Apply that folds one event into
// its own key space through a [Tx] (Get, Put, Delete). [Run] catches it up
// from its checkpoint and then follows new commits until the context ends
// (or, with Options.Once, returns once caught up). Read the model with
// [Get]; [Position] is the last event applied, [Status] and [List] report
// position, lag, state and the last error, as `evstore projections` does.
//
// Each batch's writes and the checkpoint commit in one transaction of the
// log's file, through the store's group-commit writer
// ([local.Store.UpdateSpace]): one fsync shared with concurrent appends,
// and after a crash at any instant every event has been applied exactly
// once. Options.StreamPrefixes and Options.Types drop events before Apply
// is called; the checkpoint still moves past them. [Rebuild] drops the key
// space and checkpoint together and runs from position 1.
//
// An external read model (a SQL table, a search index) implements
// [Handler] and runs with [RunHandler]: the same reading, filters and
// batches, delivered at least once; the handler commits its own checkpoint
// (ideally with its writes) and deduplicates by position.
//
// # Invariants
//
//   - Events reach Apply in position order, each once; a batch's writes
//     and checkpoint are one commit.
//   - An error or panic in Apply stops that projection with an
//     [*ApplyError] naming the event's position; that event's writes are
//     undone, those of the events before it commit with the checkpoint just
//     before it. The store and other projections go on.
//   - A projection's keys are its own: another projection's Tx cannot see
//     them.
//
// # Caveats
//
//   - Apply runs on the store's writer goroutine, inside the transaction
//     every append waits on: keep it to computing and Tx calls (no I/O, no
//     calls to the store's write methods, which would deadlock). A slow
//     Apply delays every writer.
//   - Run each projection once per store at a time; a second runner stops
//     with [ErrRunTwice] rather than apply twice. Stop it before [Rebuild]
//     or [Drop].
//   - Once caught up, a projection commits one small transaction per batch
//     of new events; under load these ride in other writers' group commits,
//     when idle each costs an fsync.
//   - Name changes start a new projection from position 1; the old one's
//     key space stays until dropped.
package projection
