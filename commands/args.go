package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/evstore/evstore/format"
)

// ErrBadArgs is wrapped by every error about a command's arguments: they
// are wrong no matter what the store holds, so retrying cannot help.
var ErrBadArgs = errors.New("bad arguments")

// ArgsError says which argument was wrong and what shape was expected. It
// unwraps to [ErrBadArgs] and, for an invalid stream id, also to the
// [format.InvalidError] behind it.
type ArgsError struct {
	Command string // e.g. "bank.open"
	Field   string // the offending field; empty when the whole value is wrong
	Reason  string // e.g. "is missing", "must be a string, got number"
	Shape   string // the expected argument shape, e.g. {"account": string}
	Err     error  // the underlying cause, if any
}

func (e *ArgsError) Error() string {
	var b strings.Builder
	b.WriteString("bad arguments for ")
	b.WriteString(e.Command)
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q ", e.Field)
	}
	b.WriteString(e.Reason)
	if e.Shape != "" {
		b.WriteString("; expected ")
		b.WriteString(e.Shape)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrBadArgs) hold, and exposes the cause.
func (e *ArgsError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrBadArgs}
	}
	return []error{ErrBadArgs, e.Err}
}

// args holds the fields of one decoded argument object. encoding/json alone
// is too lenient for command input: it matches field names
// case-insensitively, keeps the last of duplicated keys and turns null into
// a zero value, any of which could run a command with arguments the caller
// did not mean.
type args struct {
	cmd, shape string
	fields     map[string]json.RawMessage
}

// parseArgs decodes raw as one JSON object whose keys are all in known.
// Empty input means {} so that a command without required fields can be run
// without arguments.
func parseArgs(cmd, shape string, raw json.RawMessage, known ...string) (*args, error) {
	a := &args{cmd: cmd, shape: shape, fields: make(map[string]json.RawMessage)}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return a, nil
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return nil, a.errorf("", err, "are not valid JSON (%v)", err)
	}
	// JSON text is UTF-8; encoding/json would quietly turn each bad byte
	// into U+FFFD, so two different ids could name one stream.
	if !utf8.Valid(raw) {
		return nil, a.errorf("", nil, "are not valid UTF-8 (at byte %d)", invalidUTF8At(raw))
	}
	if raw[0] != '{' {
		return nil, a.errorf("", nil, "must be a JSON object, got %s", jsonKind(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil, a.errorf("", err, "are not valid JSON (%v)", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, a.errorf("", err, "are not valid JSON (%v)", err)
		}
		key, _ := tok.(string) // json.Valid passed, so object keys are strings
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, a.errorf(key, err, "is not valid JSON (%v)", err)
		}
		if _, dup := a.fields[key]; dup {
			return nil, a.errorf(key, nil, "appears twice")
		}
		if !contains(known, key) {
			return nil, a.errorf(key, nil, "is not a known field (known: %s)", strings.Join(known, ", "))
		}
		a.fields[key] = val
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, a.errorf("", err, "are not valid JSON (%v)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, a.errorf("", nil, "must be a single JSON object")
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (a *args) errorf(field string, cause error, format string, v ...any) *ArgsError {
	return &ArgsError{Command: a.cmd, Field: field, Reason: fmt.Sprintf(format, v...), Shape: a.shape, Err: cause}
}

// get returns the raw value of a field; a null counts as absent because a
// caller who writes null has not supplied a value.
func (a *args) get(field string, required bool) (json.RawMessage, bool, error) {
	v, ok := a.fields[field]
	if ok && string(v) == "null" {
		ok = false
	}
	if !ok && required {
		return nil, false, a.errorf(field, nil, "is missing")
	}
	return v, ok, nil
}

// text returns a required, non-empty string field.
func (a *args) text(field string) (string, error) {
	v, _, err := a.get(field, true)
	if err != nil {
		return "", err
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", a.errorf(field, nil, "must be a string, got %s", jsonKind(v))
	}
	if loneSurrogate(v) {
		return "", a.errorf(field, nil, "has a \\u escape of half a UTF-16 surrogate pair, which is not a character")
	}
	if s == "" {
		return "", a.errorf(field, nil, "must not be empty")
	}
	return s, nil
}

// cents returns a required amount of money: an integer that fits in an
// int64. The sign is checked by the domain, which has a better message.
func (a *args) cents(field string) (int64, error) {
	v, _, err := a.get(field, true)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, a.errorf(field, nil, "must be an integer number of cents greater than 0 (at most %d), got %s", int64(math.MaxInt64), describe(v))
	}
	return n, nil
}

// version returns an optional non-negative integer field.
func (a *args) version(field string) (*uint64, error) {
	v, ok, err := a.get(field, false)
	if err != nil || !ok {
		return nil, err
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return nil, a.errorf(field, nil, "must be an integer from 0 to %d, got %s", uint64(math.MaxUint64), describe(v))
	}
	return &n, nil
}

// value returns a required field of any JSON type, compacted. Unlike the
// other fields, an explicit null is a value here: it is a valid payload.
func (a *args) value(field string) ([]byte, error) {
	v, ok := a.fields[field]
	if !ok {
		return nil, a.errorf(field, nil, "is missing")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, a.errorf(field, err, "is not valid JSON (%v)", err)
	}
	return buf.Bytes(), nil
}

// stream checks a stream id built from the arguments.
func (a *args) stream(field, stream string) error {
	if err := format.ValidateStream(stream); err != nil {
		return a.errorf(field, err, "gives an invalid stream id: %v", err)
	}
	return nil
}

// jsonKind names the JSON type of a valid JSON value.
func jsonKind(v json.RawMessage) string {
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// describe shows a number literally and any other value by its kind, short
// enough for a one-line error.
func describe(v json.RawMessage) string {
	if jsonKind(v) != "number" {
		return jsonKind(v)
	}
	s := string(v)
	if utf8.RuneCountInString(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// invalidUTF8At is the offset of the first byte of b that is not valid
// UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// HasLoneSurrogate reports whether the JSON string literal v holds a \\u
// escape that encoding/json would decode as U+FFFD (half a surrogate pair).
// Callers that decode identifiers (keys, names) refuse such strings, since
// two different literals would decode to the same text.
func HasLoneSurrogate(v []byte) bool { return loneSurrogate(v) }

// loneSurrogate reports whether the JSON string literal v holds a \u escape
// of a UTF-16 surrogate that is not part of a pair: encoding/json decodes it
// as U+FFFD, so it would silently stand for another character.
func loneSurrogate(v []byte) bool {
	for i := 0; i < len(v)-1; i++ {
		if v[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if v[i] != 'u' || i+4 >= len(v) {
			continue
		}
		r, err := strconv.ParseUint(string(v[i+1:i+5]), 16, 16)
		if err != nil {
			continue
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low half without a high half before it
		case r >= 0xD800 && r <= 0xDBFF:
			j := i + 5
			if j+5 >= len(v) || v[j] != '\\' || v[j+1] != 'u' {
				return true
			}
			lo, err := strconv.ParseUint(string(v[j+2:j+6]), 16, 16)
			if err != nil || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i = j + 5 // past the low half
		default:
			i += 4
		}
	}
	return false
}
