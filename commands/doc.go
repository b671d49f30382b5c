// Package commands is evstore's registry of named commands whose arguments
// are JSON, and the built-in commands: a generic append, a small bank that
// shows multi-stream atomicity, and a counter used by the contention
// benchmark.
//
// # Basics
//
// A [Spec] names a command, documents the shape of its JSON arguments and
// runs it through an [executor.Executor]. [Builtin] returns a fresh
// [Registry] holding the built-in commands; callers may [Registry.Register]
// their own. Nothing is registered globally and importing the package has no
// side effects, so two registries never interfere (tests build their own).
//
// The built-in commands:
//
//   - append: one event on any stream, optionally only if the stream is at
//     an expected version ({"expect":0} means the stream must not exist).
//   - bank.open, bank.deposit, bank.withdraw, bank.transfer: accounts live in
//     streams "account-<id>" (see [AccountStream]); amounts are integer cents.
//     A transfer reads both accounts and writes one event to each in a single
//     Execute, so either both events are recorded or neither is.
//   - counter.increment: one event per call on stream "counter-<id>".
//
// Event data is JSON, for example {"amount":500,"balance":1500}, so that a
// SQL projection can query data->>'amount'. [ReadAccount] and [Balance] fold
// an account stream the same way the commands do. [Balances] is an in-store
// projection (package projection) of every account's balance, read with
// [ProjectedBalance]; it stops with an error if an account's events ever
// reach it out of order.
//
// The tests state the commands' rules with package evstoretest: given
// events, when a command, then events or an error.
//
// # Invariants
//
//   - Arguments are decoded strictly before anything is read: an unknown or
//     duplicated field, a wrong JSON type, a missing required field or an
//     invalid stream id, text that is not UTF-8 or a lone surrogate escape
//     (encoding/json would turn either into U+FFFD) is an error wrapping
//     [ErrBadArgs] (an [*ArgsError]
//     naming the field and showing the expected shape). Callers treat it as a
//     usage error.
//   - A command that fails, for bad arguments or a domain rule such as
//     [ErrInsufficientFunds], writes nothing. Domain failures carry a sentinel
//     for errors.Is and a structured type for errors.As.
//   - Commands decide only from the state folded from the streams they
//     declare, so the executor's optimistic concurrency check covers every
//     fact a decision depends on.
//
// # Caveats
//
// The bank and counter commands implement [executor.Snapshotter], so the
// executor keeps their folded states and folds only the events after them.
// bank.deposit, bank.withdraw and bank.transfer are one Go type and an
// [executor.StreamSnapshotter] whose state does not depend on the command
// that folded it: the executor keeps one state per account, shared by the
// three and by every pair of accounts, so a transfer between two accounts
// that never met reads and folds only what is new in each (a state per
// read set would fold both histories whole). The kept states cost memory
// per account (Options.CacheStates bounds them; past it, the least
// recently used account folds from its first event again).
// A command without it (the generic append) folds its streams from their
// first event on every call: its cost grows with the length of its streams.
// The generic append command can write any event to any stream, including
// an account stream: the bank fold ignores event types it does not know and
// reports an account event whose data it cannot decode as an error instead
// of guessing a balance.
package commands
