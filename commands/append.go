package commands

import (
	"context"
	"encoding/json"
	"math"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

const appendShape = `{"stream": string, "type": string, "data": any JSON value, "expect"?: integer >= 0}`

func appendSpec() Spec {
	return define("append", appendShape,
		"Append one event to a stream; with expect, only if the stream is at that version (0: the stream must not exist).",
		parseAppend)
}

// appendCmd appends one event. It folds its stream only to learn the
// current version, which makes the expect check part of the executor's
// optimistic concurrency: if the stream moves between read and write, the
// executor re-reads and the check runs again against the new version.
type appendCmd struct {
	stream, typ string
	data        []byte
	expect      *uint64
}

type streamVersion struct{ version uint64 }

func parseAppend(raw json.RawMessage) (executor.Command[streamVersion], error) {
	a, err := parseArgs("append", appendShape, raw, "stream", "type", "data", "expect")
	if err != nil {
		return nil, err
	}
	var c appendCmd
	if c.stream, err = a.text("stream"); err != nil {
		return nil, err
	}
	if err := a.stream("stream", c.stream); err != nil {
		return nil, err
	}
	if c.typ, err = a.text("type"); err != nil {
		return nil, err
	}
	// The payload limit depends on the store's options, so only the names
	// are checked here; the store reports an oversized payload itself.
	if err := format.ValidateEventData(&format.EventData{Stream: c.stream, Type: c.typ}, math.MaxInt); err != nil {
		return nil, a.errorf("type", err, "is invalid: %v", err)
	}
	if c.data, err = a.value("data"); err != nil {
		return nil, err
	}
	if c.expect, err = a.version("expect"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c appendCmd) Streams() []string { return []string{c.stream} }

func (c appendCmd) Apply(s *streamVersion, ev format.Event) { s.version = ev.Version }

func (c appendCmd) Handle(_ context.Context, s streamVersion) ([]format.EventData, error) {
	if c.expect != nil && *c.expect != s.version {
		return nil, &local.ConflictError{Stream: c.stream, Expected: *c.expect, Actual: s.version}
	}
	return []format.EventData{{Stream: c.stream, Type: c.typ, Data: c.data}}, nil
}
