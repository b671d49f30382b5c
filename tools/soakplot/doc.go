// Command soakplot draws the CSV of the soak suite (integration/soak_test.go)
// as one PNG of four panels sharing the time axis: memory, latency,
// throughput with the shared machine's load, and the file against the events
// it holds.
//
//	cd tools/soakplot && go run . ../../docs/soak.csv ../../docs/soak.png
//
// It is a module of its own so that the plotting library stays out of
// evstore's dependencies.
package main
