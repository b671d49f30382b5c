package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const defaultDB = "./evstore.db"

// cliError is an error whose message is already written for the user and
// whose exit code is decided.
type cliError struct {
	code int
	msg  string
	err  error // the cause, for errors.Is in tests; may be nil
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

func usageErrorf(format string, v ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, v...)}
}

func failuref(cause error, format string, v ...any) error {
	return &cliError{code: exitFailure, msg: fmt.Sprintf(format, v...), err: cause}
}

// describeError picks the exit code and message for an error that reached
// run. Errors not made by the CLI are classified by their sentinels, so a
// command added later gets the right exit code without special cases.
func describeError(ctx context.Context, err error) (int, string) {
	if ce, ok := errors.AsType[*cliError](err); ok {
		return ce.code, ce.msg
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitFailure, "interrupted"
	case isUsage(err):
		return exitUsage, err.Error()
	}
	return exitFailure, err.Error()
}

// isUsage reports errors about the input itself, which no retry can fix.
func isUsage(err error) bool {
	return errors.Is(err, commands.ErrBadArgs) || errors.Is(err, commands.ErrUnknownCommand) || errors.Is(err, format.ErrInvalid)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", " ")), " ")
}

// dbFlag is the --db flag. The global one reads EVSTORE_DB and has the
// default; a command's own copy lets "evstore exec --db x" work too, where
// urfave would otherwise reject a global flag after the command name.
func dbFlag(global bool) cli.Flag {
	f := &cli.StringFlag{Name: "db", Usage: "database file `PATH`"}
	if global {
		f.EnvVars = []string{"EVSTORE_DB"}
		f.Value = defaultDB
	} else {
		f.DefaultText = "the global --db"
	}
	return f
}

// dbPath returns the innermost --db that was set (on the command line or,
// for the global flag, by EVSTORE_DB), else the default.
func dbPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc.Command != nil && slices.Contains(cc.LocalFlagNames(), "db") {
			if p := cc.String("db"); p != "" {
				return p
			}
		}
	}
	return defaultDB
}

// openStore opens the database named by --db. With mustExist it refuses a
// missing file instead of creating an empty database, so that a mistyped
// path in a read is reported rather than silently "fixed".
func openStore(c *cli.Context, mustExist bool) (*cliStore, error) {
	path := dbPath(c)
	info, statErr := os.Stat(path)
	if mustExist {
		if errors.Is(statErr, fs.ErrNotExist) {
			return nil, failuref(statErr, "database %s does not exist: pass --db PATH (or set EVSTORE_DB), or create it by running 'evstore exec'", path)
		}
		// Opening an empty file would make it a database; a reader must
		// not write.
		if statErr == nil && info.Mode().IsRegular() && info.Size() == 0 {
			return nil, failuref(local.ErrNotStore, "database %s is an empty file, not an evstore database: check --db", path)
		}
	}
	store, err := local.Open(path, local.Options{})
	switch {
	case err == nil:
		return &cliStore{Store: store, path: path, created: errors.Is(statErr, fs.ErrNotExist)}, nil
	case errors.Is(err, local.ErrLocked):
		return nil, failuref(err, "database %s is in use by another process: close it or pass another --db", path)
	}
	if _, ok := errors.AsType[*local.PathError](err); ok {
		return nil, failuref(err, "%v", err)
	}
	return nil, failuref(err, "cannot open database %s: %v", path, err)
}

// cliStore is a store the CLI opened, with what closeStore needs to know.
type cliStore struct {
	*local.Store
	path    string
	created bool // the file did not exist before this command
}

// closeStore closes store and reports a close failure only if nothing
// else failed, since the first error is the one to act on. A file this
// command created and wrote nothing to is removed again: a command that
// failed ("nothing was written") leaves no empty database behind.
func closeStore(store *cliStore, err *error) {
	if store.created && store.Head() == 0 {
		// Unlinked while we still hold the file's lock, so no other
		// process can have written to it in between.
		os.Remove(store.path)
	}
	if cerr := store.Close(); cerr != nil && *err == nil {
		*err = failuref(cerr, "closing the database: %v", cerr)
	}
}

// isFlagOf reports whether arg ("-x", "--x" or "--x=v") names a flag of cmd.
func isFlagOf(cmd *cli.Command, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	if !strings.HasPrefix(arg, "-") || name == "" {
		return false
	}
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// extraArgs rejects positional arguments beyond want. urfave stops parsing
// flags at the first argument, so "read STREAM --json" leaves --json as an
// argument; say so rather than "too many arguments".
func extraArgs(c *cli.Context, want int, usage string) error {
	args := c.Args().Slice()
	if len(args) <= want {
		return nil
	}
	// Any argument that names one of the command's flags was meant as one,
	// wherever it stands; past the expected arguments, anything that looks
	// like a flag was.
	for i, a := range args {
		if isFlagOf(c.Command, a) || (i >= want && strings.HasPrefix(a, "-") && len(a) > 1) {
			return usageErrorf("%s: flag %s after the arguments: flags go first, as in 'evstore %s'", c.Command.Name, a, usage)
		}
	}
	return usageErrorf("%s: too many arguments (%d): usage is 'evstore %s'", c.Command.Name, len(args), usage)
}

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
