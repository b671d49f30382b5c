package format

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes is the longest stream id or event type, in bytes. The record
// layout stores both lengths in one byte.
const MaxNameBytes = 255

// EventData is an event to append.
type EventData struct {
	Stream   string
	Type     string
	Data     []byte            // opaque payload, JSON by convention
	Metadata map[string]string // e.g. correlation-id, causation-id; may be nil
}

// Event is a recorded event.
type Event struct {
	Position uint64 // global position in the local log, gapless, from 1
	Stream   string
	Version  uint64 // position within its stream, gapless, from 1
	Type     string
	Data     []byte
	Metadata map[string]string
	ID       string    // unique id assigned at append (UUIDv7 text form)
	Time     time.Time // UTC time of the commit
}

// ErrInvalid is returned for input that can never be stored: a malformed
// stream id, an empty type, an oversized payload.
var ErrInvalid = errors.New("invalid input")

// InvalidError names the field that failed validation and why. It unwraps to
// [ErrInvalid].
type InvalidError struct {
	Field  string // "stream", "type", "data", "metadata"
	Value  string // the offending value, shortened for display
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	// Cut on a rune boundary so the message itself stays valid UTF-8.
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ValidateStream reports whether s can be used as a stream id: 1 to 255 bytes
// of valid UTF-8 without control characters.
func ValidateStream(s string) error {
	return ValidateName("stream", s, MaxNameBytes)
}

// ValidateName checks a name of field (a stream id, an event type, a
// projection's name): 1 to maxBytes bytes of valid UTF-8 without control
// characters. The error is an *InvalidError naming field.
func ValidateName(field, s string, maxBytes int) error {
	switch {
	case s == "":
		return &InvalidError{Field: field, Reason: "must not be empty"}
	case len(s) > maxBytes:
		return &InvalidError{Field: field, Value: shorten(s), Reason: fmt.Sprintf("is %d bytes, the limit is %d", len(s), maxBytes)}
	case !utf8.ValidString(s):
		return &InvalidError{Field: field, Value: shorten(s), Reason: "is not valid UTF-8"}
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return &InvalidError{Field: field, Value: shorten(s), Reason: "contains a control character"}
		}
	}
	return nil
}

// ValidateEventData checks one event against the limits of the record layout
// and a payload limit of maxDataBytes (data plus metadata).
func ValidateEventData(ev *EventData, maxDataBytes int) error {
	if err := ValidateStream(ev.Stream); err != nil {
		return err
	}
	if err := ValidateName("type", ev.Type, MaxNameBytes); err != nil {
		return err
	}
	size := len(ev.Data)
	for k, v := range ev.Metadata {
		if k == "" {
			return &InvalidError{Field: "metadata", Reason: "keys must not be empty"}
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return &InvalidError{Field: "metadata", Value: shorten(k), Reason: "keys and values must be valid UTF-8"}
		}
		size += len(k) + len(v)
	}
	if size > maxDataBytes {
		return &InvalidError{Field: "data", Value: ev.Stream, Reason: fmt.Sprintf("event is %d bytes of data and metadata, the limit is %d", size, maxDataBytes)}
	}
	return nil
}
