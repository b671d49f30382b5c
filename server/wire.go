package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Event is a recorded event on the wire, in format.Event's own JSON form
// (data embedded as JSON when it is JSON, else a string with
// data_encoding "utf-8" or "base64").
type Event = format.Event

// encodeEvents is evs for a JSON body: [] rather than null when empty.
func encodeEvents(evs []format.Event) []Event {
	if evs == nil {
		return []Event{}
	}
	return evs
}

// AppendRequest is the body of POST /v1/append.
type AppendRequest struct {
	Events []NewEvent      `json:"events"`
	Expect []ExpectVersion `json:"expect,omitempty"`
	Key    string          `json:"key,omitempty"`
}

// NewEvent is one event to append. Data is any JSON value, stored as
// given; with DataEncoding "utf-8" or "base64" it is a string holding text
// or bytes that are not JSON.
type NewEvent struct {
	Stream       string            `json:"stream"`
	Type         string            `json:"type"`
	Data         json.RawMessage   `json:"data,omitempty"`
	DataEncoding string            `json:"data_encoding,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// ExpectVersion requires Stream to be at Version when the append commits;
// 0 means the stream must not exist.
type ExpectVersion struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
}

// AppendResult is the answer to an append or a command.
type AppendResult struct {
	Command   string  `json:"command,omitempty"`
	Position  uint64  `json:"position"` // of the last event appended, 0 if none
	Retries   int     `json:"retries"`
	Duplicate bool    `json:"duplicate"`
	Events    []Event `json:"events"`
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// For code "conflict": the stream, the version the request expected
	// and the version found.
	Stream   string  `json:"stream,omitempty"`
	Expected *uint64 `json:"expected,omitempty"`
	Actual   *uint64 `json:"actual,omitempty"`
}

// errBadRequest marks request bodies and parameters that cannot be
// understood; the message says what is wrong.
var errBadRequest = errors.New("bad request")

func badRequest(format string, v ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, v...))
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// anything after the value, so that a misspelt "expect" is an error rather
// than an append without its check.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(body, err))
	}
	if dec.More() {
		return badRequest("unexpected data after the JSON value")
	}
	return nil
}

func describeJSONError(body []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return "empty body: expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syn) && syn.Offset >= int64(len(body)):
		return "truncated JSON: the body ends before the value does"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", typ.Field, kindOf(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("expected a JSON object, got %s", typ.Value)
	}
	return "invalid JSON: " + err.Error()
}

func kindOf(k string) string {
	switch k {
	case "string":
		return "a string"
	case "uint64", "int", "int64", "uint":
		return "a non-negative integer"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return k
}

// decodeAppend turns the body of POST /v1/append into a store request.
// Stream names, types and sizes are checked by the store itself.
func decodeAppend(body []byte) (local.Request, error) {
	var ar AppendRequest
	if err := strictDecode(body, &ar); err != nil {
		return local.Request{}, err
	}
	if len(ar.Events) == 0 {
		return local.Request{}, badRequest(`"events" is empty or missing: give at least one {"stream", "type", "data"}`)
	}
	req := local.Request{Key: ar.Key, Events: make([]format.EventData, len(ar.Events))}
	if ar.Key == "" && bytes.Contains(body, []byte(`"key"`)) {
		// "key": "" is a mistake, not a request for no idempotency.
		var probe struct {
			Key *string `json:"key"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.Key != nil {
			return local.Request{}, badRequest(`"key" must not be empty: leave it out for a request without one`)
		}
	}
	if len(ar.Key) > local.MaxKeyBytes {
		return local.Request{}, badRequest(`"key" is %d bytes, the limit is %d`, len(ar.Key), local.MaxKeyBytes)
	}
	for i, e := range ar.Events {
		data, err := eventData(e)
		if err != nil {
			return local.Request{}, badRequest("events[%d]: %v", i, err)
		}
		req.Events[i] = format.EventData{Stream: e.Stream, Type: e.Type, Data: data, Metadata: e.Metadata}
	}
	for _, x := range ar.Expect {
		req.Expect = append(req.Expect, local.Expect{Stream: x.Stream, Version: x.Version})
	}
	return req, nil
}

func eventData(e NewEvent) ([]byte, error) {
	raw := bytes.TrimSpace(e.Data)
	switch e.DataEncoding {
	case "":
		if len(raw) == 0 || string(raw) == "null" {
			return nil, nil
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, fmt.Errorf("data: %v", err)
		}
		return b.Bytes(), nil
	case "utf-8", "base64":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("data_encoding %q needs data to be a JSON string", e.DataEncoding)
		}
		if e.DataEncoding == "utf-8" {
			return []byte(s), nil
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("data is not standard base64: %v", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("data_encoding %q is not one of \"utf-8\", \"base64\" (or absent for JSON data)", e.DataEncoding)
}

// decodeArgs checks the body of POST /v1/commands/{name}: a JSON object
// (the command's arguments), or nothing for a command that takes none.
func decodeArgs(body []byte) (json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	if !json.Valid(body) {
		var v any
		return nil, badRequest("%s", describeJSONError(body, json.Unmarshal(body, &v)))
	}
	if body[0] != '{' && string(body) != "null" {
		return nil, badRequest("the arguments must be a JSON object, as 'GET /v1/commands' shows")
	}
	return json.RawMessage(body), nil
}

// parseUint reads a non-negative integer query parameter; def when absent.
func parseUint(name, s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("%s=%q is not a non-negative integer", name, s)
	}
	return v, nil
}
