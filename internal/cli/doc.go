// Package cli is the evstore command line: one file per command
// (exec.go, read.go, log.go, replicate.go, …), each with its own test, plus
// the helpers they share — errors.go (exit codes and the mapping of library
// errors to flag wording), store.go (opening --db, read-only for readers),
// backend.go (the file, or the process that holds it), output.go (printing
// events), args.go (positional arguments), progress.go (progress bars on a
// terminal, plain lines otherwise).
//
// # Basics
//
// Run is main without the process: it takes the arguments and the three
// standard streams and returns the exit code, so tests run the whole CLI
// in-process.
//
// # Invariants
//
//   - Exit codes: 0 success, 1 failure, 2 usage error (bad flags, arguments
//     or input that no retry can fix).
//   - On failure stderr holds exactly one line, starting "evstore: ", that
//     names the problem and what to do; on success stderr stays empty but for
//     an "evstore: no events …" note from read or log, so stdout holds only
//     data.
//   - A command's own argument check (before anything is opened) failing is
//     a usage error, whatever it says: a malformed field, an amount of 0, a
//     transfer to the same account.
//   - exec -f reads its input aside, so SIGINT/SIGTERM end it at once, also
//     while it waits for a line; a line is at most maxLineBytes, a longer one
//     is refused by its number without being held in memory.
//   - Libraries speak of Options fields and methods; only this package
//     speaks of flags. errors.go translates.
//   - A command that reads or writes the log opens it through openBackend:
//     when another process holds the file and serves its socket, the command
//     runs through that owner and prints the same output, errors and exit
//     codes. Long-running holders (serve, replicate following, tail) serve
//     the socket.
//
// # Caveats
//
// urfave/cli keeps some flag state in package variables, so Run must not run
// concurrently in one process; tests of many commands at once start
// processes (integration/cli_lock_test.go).
//
// urfave/cli stops parsing flags at the first positional argument, so
// "read STREAM --json" leaves --json as an argument; args.go detects this
// and says so instead of "too many arguments".
//
// urfave/cli keeps global state (the help flag), so two Runs must not
// parse their flags at the same time in one process; tests that need an
// owner beside a CLI run serve the store with package server directly, or
// wait for a running tail's first line before starting another Run.
package cli
