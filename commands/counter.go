package commands

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
)

// EventIncremented is the type of a counter-<id> event. Its data is
// {"count":N}, the counter's value after the increment.
const EventIncremented = "Incremented"

const counterShape = `{"counter": string}`

// CounterStream returns the stream id of a counter.
func CounterStream(id string) string { return "counter-" + id }

func counterSpec() Spec {
	return define("counter.increment", counterShape,
		"Add one to a counter (stream counter-<id>), one event per call; many writers on one counter contend.",
		parseCounter)
}

// counterCmd reads its stream before writing on purpose: the read is what
// makes concurrent increments conflict and retry, which the contention
// benchmark measures.
type counterCmd struct{ stream string }

type counterState struct{ count uint64 }

func parseCounter(raw json.RawMessage) (executor.Command[counterState], error) {
	a, err := parseArgs("counter.increment", counterShape, raw, "counter")
	if err != nil {
		return nil, err
	}
	id, err := a.text("counter")
	if err != nil {
		return nil, err
	}
	c := counterCmd{stream: CounterStream(id)}
	if err := a.stream("counter", c.stream); err != nil {
		return nil, err
	}
	return c, nil
}

func (c counterCmd) Streams() []string { return []string{c.stream} }

// Apply counts events rather than decoding them: every event in a counter
// stream is one increment, whoever wrote it.
func (c counterCmd) Apply(s *counterState, ev format.Event) { s.count = ev.Version }

var _ executor.Snapshotter[counterState] = counterCmd{}

// SnapshotKey lets the executor keep the count between increments.
func (c counterCmd) SnapshotKey() string { return "counter" }

// CloneState returns s: counterState is a plain number.
func (c counterCmd) CloneState(s counterState) counterState { return s }

func (c counterCmd) Handle(_ context.Context, s counterState) ([]format.EventData, error) {
	return []format.EventData{{
		Stream: c.stream,
		Type:   EventIncremented,
		Data:   fmt.Appendf(nil, `{"count":%d}`, s.count+1),
	}}, nil
}
