// Package evstoretest tests commands the way they are specified: given
// these events, when this command runs, then these events (or this error).
//
// # Basics
//
//	evstoretest.Given(t, opened, deposited).
//		When(...)            // evstoretest.When(sc, cmd) for an executor.Command
//		Then(sent, received) // or ThenError(commands.ErrInsufficientFunds)
//
// [Given] opens a temporary store (removed when the test ends) whose clock
// is fixed at [Epoch], appends the given events, and returns a [Scenario].
// [When] runs an executor.Command on it, [Scenario.WhenRun] a named
// command of a registry such as commands.Builtin(). [Outcome.Then] compares
// what was appended with the expected events (JSON data compared as JSON,
// so key order and spacing do not matter); [Outcome.ThenError] checks the
// error with errors.Is and that nothing was written.
//
// [Fold] folds a command's state from events without a store, so Handle
// can be tested on its own.
//
// # Caveats
//
//   - The store is not synced (local.Options.NoSync): fast, and nothing a
//     test needs is lost since the process does not crash.
//   - Every event is stamped with the scenario's clock, [Epoch] until
//     [Scenario.At] moves it; ids are still random.
//   - A failing check stops the test (t.Fatalf) with what was expected
//     and what happened.
package evstoretest
