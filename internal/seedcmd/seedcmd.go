// Package seedcmd is the command of the seed workloads, shared by
// `evstore bench` and the executor's Go benchmarks so both measure the same
// thing: it reads one or two streams and appends one event to each, like
// the registry's append for one stream and a transfer for two, but without
// encoding/json, so it measures the executor and the log.
//
// # Caveats
//
// It supports at most two streams; its state is their versions.
package seedcmd

import (
	"context"
	"strconv"

	"github.com/evstore/evstore/format"
)

// Cmd is the command over its streams (one or two). It folds from the
// first event on every call.
type Cmd []string

// State is the version of each stream.
type State [2]uint64

// Streams implements executor.Command.
func (c Cmd) Streams() []string { return c }

// Apply implements executor.Command.
func (c Cmd) Apply(s *State, ev format.Event) {
	if ev.Stream == c[0] {
		s[0] = ev.Version
	} else {
		s[1] = ev.Version
	}
}

// Handle implements executor.Command: one "Seeded" event per stream.
func (c Cmd) Handle(_ context.Context, s State) ([]format.EventData, error) {
	out := make([]format.EventData, len(c))
	for i, st := range c {
		out[i] = format.EventData{Stream: st, Type: "Seeded", Data: append(strconv.AppendUint([]byte(`{"n":`), s[i]+1, 10), '}')}
	}
	return out, nil
}

// Kept is Cmd with executor.Snapshotter: the executor keeps its folded
// state and folds only what is new in its streams.
type Kept struct{ Cmd }

// SnapshotKey implements executor.Snapshotter.
func (Kept) SnapshotKey() string { return "seed" }

// CloneState implements executor.Snapshotter; State holds no references.
func (Kept) CloneState(s State) State { return s }
