package cli

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/evstore/evstore/format"
	"github.com/urfave/cli/v2"
)

// jsonEvent is the JSON form of an event, shared by every command that
// prints events. Data is embedded as JSON when it is JSON; otherwise it is
// a string, with data_encoding saying how to read it.
type jsonEvent struct {
	Position     uint64            `json:"position"`
	Stream       string            `json:"stream"`
	Version      uint64            `json:"version"`
	Type         string            `json:"type"`
	Data         json.RawMessage   `json:"data"`
	DataEncoding string            `json:"data_encoding,omitempty"` // "utf-8" or "base64" when data is not JSON
	Metadata     map[string]string `json:"metadata"`                // {} when none
	ID           string            `json:"id"`
	Time         time.Time         `json:"time"`
}

func toJSONEvent(ev format.Event) jsonEvent {
	if ev.Metadata == nil {
		ev.Metadata = map[string]string{}
	}
	j := jsonEvent{
		Position: ev.Position, Stream: ev.Stream, Version: ev.Version, Type: ev.Type,
		Metadata: ev.Metadata, ID: ev.ID, Time: ev.Time,
	}
	switch {
	case len(ev.Data) == 0:
		j.Data = json.RawMessage("null")
		if ev.Data != nil {
			j.Data, j.DataEncoding = json.RawMessage(`""`), "utf-8"
		}
	case json.Valid(ev.Data):
		j.Data = ev.Data
	case utf8.Valid(ev.Data):
		j.Data, _ = json.Marshal(string(ev.Data))
		j.DataEncoding = "utf-8"
	default:
		j.Data, _ = json.Marshal(base64.StdEncoding.EncodeToString(ev.Data))
		j.DataEncoding = "base64"
	}
	return j
}

func toJSONEvents(evs []format.Event) []jsonEvent {
	out := make([]jsonEvent, len(evs)) // [] rather than null when empty
	for i, ev := range evs {
		out[i] = toJSONEvent(ev)
	}
	return out
}

// eventLine is the readable one-line form of an event:
// position, time, stream, version, type, data and metadata.
func eventLine(ev format.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d  %s  %s  v%d  %s  %s", ev.Position, ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Stream, ev.Version, ev.Type, dataText(ev.Data))
	if len(ev.Metadata) > 0 {
		md, _ := json.Marshal(ev.Metadata) // sorted keys
		fmt.Fprintf(&b, "  metadata=%s", md)
	}
	return b.String()
}

// dataText shows a payload on one line: compact JSON as is, other text
// quoted, binary by its size.
func dataText(data []byte) string {
	switch {
	case len(data) == 0:
		return "(no data)"
	case json.Valid(data):
		// Compact JSON is one line: raw line breaks cannot occur in JSON
		// strings.
		var b bytes.Buffer
		if json.Compact(&b, data) == nil {
			return b.String()
		}
	case utf8.Valid(data):
		return fmt.Sprintf("%q", data)
	}
	return fmt.Sprintf("(%d bytes of binary data)", len(data))
}

// appendedLine is the short form of an appended event in exec output.
func appendedLine(ev format.Event) string {
	return fmt.Sprintf("%s v%d %s at position %d", ev.Stream, ev.Version, ev.Type, ev.Position)
}

// printEvents writes events in the form --json asks for, up to limit (0:
// all), and returns how many it wrote.
func printEvents(c *cli.Context, events func(func(format.Event, error) bool), limit uint64) (uint64, error) {
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	asJSON := c.Bool("json")
	var n uint64
	for ev, err := range events {
		if err != nil {
			return n, failuref(err, "reading the log: %v", err)
		}
		if err := c.Context.Err(); err != nil {
			return n, err
		}
		if asJSON {
			if err := writeJSON(w, toJSONEvent(ev)); err != nil {
				return n, err
			}
		} else {
			fmt.Fprintln(w, eventLine(ev))
		}
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	return n, w.Flush()
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
