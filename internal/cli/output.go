package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"unicode/utf8"

	"github.com/evstore/evstore/local"

	"github.com/evstore/evstore/format"
	"github.com/urfave/cli/v2"
)

// jsonEvent is the JSON form of an event, shared by every command that
// prints events: format.Event's own (data embedded as JSON when it is
// JSON).
type jsonEvent = format.Event

// nonNil is evs for a JSON body: [] rather than null when empty.
func nonNil(evs []format.Event) []format.Event {
	if evs == nil {
		return []format.Event{}
	}
	return evs
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
			if err := writeJSON(w, ev); err != nil {
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

// writeJSON writes v as one line of JSON. Payload bytes such as "<" are
// kept as they are, not escaped for HTML.
func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// printSalvaged prints the intact events of a damaged log (from a salvage
// read) and fails at the end, naming the damaged positions.
func printSalvaged(c *cli.Context, cmd string, seq iter.Seq2[format.Event, error], limit uint64) error {
	var damaged []string
	events := func(yield func(format.Event, error) bool) {
		for ev, err := range seq {
			if ce, ok := errors.AsType[*format.CorruptError](err); ok && local.IsDamagedRecord(err) {
				if len(damaged) < 20 {
					damaged = append(damaged, fmt.Sprint(ce.Position))
				} else if len(damaged) == 20 {
					damaged = append(damaged, "…")
				}
				continue
			}
			if !yield(ev, err) {
				return
			}
		}
	}
	if _, err := printEvents(c, events, limit); err != nil {
		return err
	}
	if len(damaged) > 0 {
		return failuref(local.ErrCorruptStore, "%s: damaged records skipped at positions %s: run 'evstore verify' and see docs/operations.md", cmd, strings.Join(damaged, ", "))
	}
	return nil
}

// count is "1 event", "2 events".
func count[N int | uint64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
