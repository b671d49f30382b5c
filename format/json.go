package format

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// eventJSON is the JSON form of an [Event]. Data is embedded as JSON when
// it is JSON; otherwise it is a string, with data_encoding saying how to
// read it ("utf-8" or "base64").
type eventJSON struct {
	Position     uint64            `json:"position"`
	Stream       string            `json:"stream"`
	Version      uint64            `json:"version"`
	Type         string            `json:"type"`
	Data         json.RawMessage   `json:"data"`
	DataEncoding string            `json:"data_encoding,omitempty"`
	Metadata     map[string]string `json:"metadata"` // {} when none
	ID           string            `json:"id"`
	Time         time.Time         `json:"time"`
}

// MarshalJSON writes the event as one JSON object: position, stream,
// version, type, data, metadata ({} when none), id and time (RFC 3339,
// nanoseconds). A JSON payload is embedded as JSON (compacted); other
// payloads are a string with data_encoding "utf-8" or "base64"; no payload
// is null. json.Marshal escapes <, > and & in what this returns; an
// Encoder with SetEscapeHTML(false) keeps the payload's bytes.
func (ev Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{
		Position: ev.Position, Stream: ev.Stream, Version: ev.Version, Type: ev.Type,
		Metadata: ev.Metadata, ID: ev.ID, Time: ev.Time,
	}
	if j.Metadata == nil {
		j.Metadata = map[string]string{}
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
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads the form MarshalJSON writes. A JSON payload comes
// back compacted, which is byte-exact for payloads that were compact JSON
// to begin with; strings and base64 come back exactly.
func (ev *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*ev = Event{Position: j.Position, Stream: j.Stream, Version: j.Version, Type: j.Type, ID: j.ID, Time: j.Time}
	if len(j.Metadata) > 0 {
		ev.Metadata = j.Metadata
	}
	switch j.DataEncoding {
	case "":
		if string(j.Data) != "null" && len(j.Data) > 0 {
			ev.Data = append([]byte(nil), j.Data...)
		}
	case "utf-8", "base64":
		var s string
		if err := json.Unmarshal(j.Data, &s); err != nil {
			return &InvalidError{Field: "data", Reason: fmt.Sprintf("with data_encoding %q it must be a string", j.DataEncoding)}
		}
		if j.DataEncoding == "utf-8" {
			ev.Data = []byte(s)
			break
		}
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return &InvalidError{Field: "data", Reason: "invalid base64: " + err.Error()}
		}
		ev.Data = d
	default:
		return &InvalidError{Field: "data_encoding", Value: shorten(j.DataEncoding), Reason: `must be "utf-8" or "base64"`}
	}
	return nil
}
