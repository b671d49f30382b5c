// Package integration holds end-to-end tests across packages: the CLI
// binary as a user runs it (the README's quick start), the bank example
// under concurrency, and replication into a real PostgreSQL server.
//
// # Basics
//
// Run with `go test -race ./integration/`. Tests that need PostgreSQL read
// EVSTORE_TEST_POSTGRES (a postgres:// URL) and skip, saying so, without it;
// each uses its own schema and drops it afterwards.
//
// # Caveats
//
// The tests build the evstore binary with `go build`, so they need the Go
// toolchain on PATH, and they take seconds, not milliseconds.
package integration
