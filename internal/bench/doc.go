// Package bench is `evstore bench`: the workloads of docs/benchmarks.md,
// run on fresh temporary stores, with an optional plain-PostgreSQL
// baseline and replication to PostgreSQL.
//
// # Basics
//
// Run executes a Config's workloads in order and writes a table (or one
// JSON document) of ops/s, events/s, latency percentiles, retries, errors
// and peak RSS per workload. Each workload gets its own store, removed
// afterwards.
//
// # Caveats
//
//   - Numbers depend on the disk's fsync latency more than on anything
//     else; the report starts with a measured fsync p50/p99 so runs on
//     different machines can be compared.
//   - Peak RSS is per workload on Linux (the kernel's counter is reset
//     between workloads), cumulative on macOS, and not measured elsewhere
//     (shown as 0).
//   - Smoke runs (Config.Smoke) prove every path runs; their numbers mean
//     nothing.
package bench
