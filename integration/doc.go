// Package integration holds end-to-end tests across packages: the CLI
// binary as a user runs it (the README's quick start), the bank example
// under concurrency, a projection killed at random instants, and
// replication into a real PostgreSQL server.
//
// # Basics
//
// Run with `go test -race ./integration/`. Tests that need PostgreSQL read
// EVSTORE_TEST_POSTGRES (a postgres:// URL) and skip, saying so, without it;
// each uses its own schema and drops it afterwards.
//
// The replication fault suite (replication_faults_test.go: SIGKILLed
// replicators and expanders, connection cuts, archive/expand races, cloned
// devices) runs a short version by default, a few seconds; EVSTORE_LONG=1
// runs the long one (tens of rounds, minutes):
//
//	EVSTORE_LONG=1 go test -run TestFault -v -timeout 60m ./integration/
//
// The counts are in docs/reliability.md.
//
// # Caveats
//
// The tests build the evstore binary with `go build`, so they need the Go
// toolchain on PATH, and they take seconds, not milliseconds. The
// projection kill test SIGKILLs its child 10 times; EVSTORE_LONG=1 makes it
// 50 (about 20 s).
package integration
