package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/format"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

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
		return ce.code, inFlagWords(ce.msg)
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitFailure, "interrupted"
	case isUsage(err):
		return exitUsage, inFlagWords(err.Error())
	}
	return exitFailure, inFlagWords(err.Error())
}

// flagWords maps the libraries' advice, which names Options fields because
// a Go program sets those, to the flags a CLI user sets instead. It is the
// one place where library wording meets flag names.
var flagWords = strings.NewReplacer(
	"set Options.NewSource", "run with --new-source",
	"set Options.TakeOver", "run with --take-over",
	"(Options.RetryFor)", "(--retry-for)",
	"Options.HeartbeatInterval", "--heartbeat",
	"Options.TakeOver", "--take-over",
	"Options.ActiveWindow", "the active window",
	"set Options.Layout to ", "pass --layout ",
	"FleetOptions.Schema", "--schema",
	"RestoreOptions.Source", "--source",
	"RestoreOptions.Schema", "--schema",
	"RestoreOptions.Path", "--db",
	"set Options.Socket", "pass --socket",
	"Options.Source", "--source",
	"LayoutFrames", "--layout frames",
	"the path names an evstore file", "--db names an evstore file",
	"open another path", "pass another --db",
	"set BackupOptions.Overwrite", "pass --force",
)

// inFlagWords rewrites a message from a library in the CLI's terms.
func inFlagWords(msg string) string { return flagWords.Replace(msg) }

// isUsage reports errors about the input itself, which no retry can fix.
func isUsage(err error) bool {
	return errors.Is(err, commands.ErrBadArgs) || errors.Is(err, commands.ErrUnknownCommand) || errors.Is(err, format.ErrInvalid)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", " ")), " ")
}
