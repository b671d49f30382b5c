package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

const lineShape = `{"command": string, "args"?: object, "key"?: string}`

func execCommand(reg *commands.Registry) *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command, or a file of commands, and print what it appended",
		ArgsUsage: "NAME [ARGS-JSON]",
		UsageText: "evstore exec [--key KEY] [--json] NAME [ARGS-JSON]\n" +
			"evstore exec [--json] -f FILE   (- reads standard input)",
		Description: "Runs one built-in command (see 'evstore commands') with JSON arguments, creating the\n" +
			"database if needed. With -f, runs one command per line of FILE, each line\n" +
			lineShape + ", continues past failing lines and\n" +
			"exits 1 if any failed. A failed command writes nothing.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Usage: "run idempotently under `KEY`: running again with the same key appends nothing and prints the first result"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "run the newline-delimited JSON commands in `FILE` (- for standard input)"},
			&cli.BoolFlag{Name: "json", Usage: "print results as JSON"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) error {
			if c.IsSet("file") {
				return execFile(c, reg)
			}
			return execSingle(c, reg)
		},
	}
}

// outcome is one command's result as exec prints it.
type outcome struct {
	Line      int // in a file, from 1; 0 for a single command
	Command   string
	OK        bool
	Position  uint64
	Retries   int
	Duplicate bool   // the key was used before; events are the first run's
	Key       string // the idempotency key, if any
	Error     string
	ExitCode  int // for a failure: 2 bad input, 1 otherwise
	events    []format.Event
}

// MarshalJSON gives a success and a failure each only its own fields, so
// that a consumer can rely on "position", "retries" and "events" being
// present whenever "ok" is true.
func (o outcome) MarshalJSON() ([]byte, error) {
	type success struct {
		Line      int         `json:"line,omitempty"`
		Command   string      `json:"command"`
		OK        bool        `json:"ok"`
		Position  uint64      `json:"position"`
		Retries   int         `json:"retries"`
		Duplicate bool        `json:"duplicate"`
		Events    []jsonEvent `json:"events"`
	}
	type failure struct {
		Line     int    `json:"line,omitempty"`
		Command  string `json:"command,omitempty"`
		OK       bool   `json:"ok"`
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	if !o.OK {
		return json.Marshal(failure{o.Line, o.Command, false, o.Error, o.ExitCode})
	}
	return json.Marshal(success{o.Line, o.Command, true, o.Position, o.Retries, o.Duplicate, nonNil(o.events)})
}

func execSingle(c *cli.Context, reg *commands.Registry) error {
	const usage = "exec [--key KEY] [--json] NAME [ARGS-JSON]"
	if !c.Args().Present() {
		return usageErrorf("exec: missing the command name: usage is 'evstore %s'; 'evstore commands' lists the commands", usage)
	}
	if err := extraArgs(c, 2, usage); err != nil {
		return err
	}
	name, args := c.Args().Get(0), json.RawMessage(c.Args().Get(1))
	key := c.String("key")
	if c.IsSet("key") {
		if err := checkKey(key); err != nil {
			return usageErrorf("exec: --key %v", err)
		}
	}
	// Everything that can be checked without the database is checked before
	// opening it, because opening creates the file.
	if err := reg.Check(name, args); err != nil {
		return checkError(name, err)
	}
	b, err := openBackend(c, false, false)
	if err != nil {
		return err
	}
	defer b.close(&err)
	o := b.exec(c.Context, reg, name, args, key)
	if !o.OK {
		return o.err()
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, o)
	}
	printOutcome(c.App.Writer, "", o)
	return nil
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("must not be empty")
	case len(key) > local.MaxKeyBytes:
		return fmt.Errorf("is %d bytes, the limit is %d", len(key), local.MaxKeyBytes)
	case !utf8.ValidString(key):
		// Two different keys must never compare equal once stored.
		return errors.New("is not valid UTF-8")
	}
	return nil
}

// execute runs one command and never fails itself: the outcome carries
// the error, so a file of commands can go on past it.
func execute(ctx context.Context, ex *executor.Executor, reg *commands.Registry, name string, args json.RawMessage, key string) outcome {
	o := outcome{Command: name, Key: key}
	var opts []executor.ExecOption
	if key != "" {
		opts = append(opts, executor.Idempotent(key))
	}
	res, err := reg.Run(ctx, ex, name, args, opts...)
	if err != nil {
		return o.fail(name, err)
	}
	o.OK, o.Position, o.Retries, o.Duplicate, o.events = true, res.Position, res.Retries, res.Duplicate, res.Events
	return o
}

func (o outcome) fail(name string, err error) outcome {
	ce, ok := err.(*cliError)
	if !ok {
		ce = commandError(name, err).(*cliError)
	}
	o.OK, o.Error, o.ExitCode = false, ce.msg, ce.code
	return o
}

// checkError words a command's refusal of its arguments, found before
// anything runs: whatever it says (a malformed field, an amount of zero,
// a transfer to the same account), the input is wrong, which is a usage
// error.
func checkError(name string, err error) error {
	ce := commandError(name, err).(*cliError)
	if ce.code == exitFailure && !errors.Is(err, context.Canceled) {
		ce.code = exitUsage
		ce.msg = fmt.Sprintf("%s: %v: nothing was written", name, err)
	}
	return ce
}

func (o outcome) err() error {
	return &cliError{code: o.ExitCode, msg: o.Error}
}

// commandError words the failure of a named command for the user.
func commandError(name string, err error) error {
	switch {
	case errors.Is(err, commands.ErrUnknownCommand):
		return &cliError{code: exitUsage, err: err, msg: fmt.Sprintf("%v: run 'evstore commands' to see them with their arguments", err)}
	case isUsage(err):
		return &cliError{code: exitUsage, err: err, msg: fmt.Sprintf("%v: nothing was written", err)}
	case errors.Is(err, context.Canceled):
		return &cliError{code: exitFailure, err: err, msg: fmt.Sprintf("%s interrupted: nothing was written", name)}
	case errors.Is(err, executor.ErrKeyReused):
		return &cliError{code: exitFailure, err: err, msg: fmt.Sprintf("%s refused, nothing was written: %v", name, err)}
	case errors.Is(err, local.ErrWriteFailed):
		if _, refused := errors.AsType[*local.RefusedError](err); !refused {
			// The commit itself failed: it may be on disk after all.
			return &cliError{code: exitFailure, err: err, msg: fmt.Sprintf("%s failed: %v", name, err)}
		}
	}
	switch {
	case errors.Is(err, local.ErrConflict):
		return &cliError{code: exitFailure, err: err, msg: fmt.Sprintf("%s failed, nothing was written: %v: read the stream and retry against its current version", name, err)}
	}
	return &cliError{code: exitFailure, err: err, msg: fmt.Sprintf("%s failed, nothing was written: %v", name, err)}
}

// printOutcome writes the readable form: one line per appended event for a
// single command, one line in all for a line of a file (prefix non-empty).
func printOutcome(w io.Writer, prefix string, o outcome) {
	if !o.OK {
		fmt.Fprintf(w, "%sFAILED %s\n", prefix, o.Error)
		return
	}
	evs := make([]string, len(o.events))
	for i, ev := range o.events {
		evs[i] = appendedLine(ev)
	}
	retries := ""
	if o.Retries > 0 {
		retries = fmt.Sprintf(" (committed after %d retries on version conflicts)", o.Retries)
	}
	if prefix != "" {
		var what string
		switch {
		case o.Duplicate && len(evs) == 0:
			what = fmt.Sprintf("key %q already used, nothing appended (nor the first time)", o.Key)
		case o.Duplicate:
			what = fmt.Sprintf("key %q already used, nothing appended (the first run appended %s)", o.Key, strings.Join(evs, "; "))
		case len(evs) == 0:
			what = "nothing appended"
		default:
			what = "appended " + strings.Join(evs, "; ")
		}
		fmt.Fprintf(w, "%sok %s: %s%s\n", prefix, o.Command, what, retries)
		return
	}
	switch {
	case o.Duplicate && len(evs) == 0:
		fmt.Fprintf(w, "key %q already used: nothing appended, now or the first time\n", o.Key)
	case o.Duplicate:
		fmt.Fprintf(w, "key %q already used: nothing appended now; the first run appended:\n", o.Key)
		for _, e := range evs {
			fmt.Fprintf(w, "  %s\n", e)
		}
	case len(evs) == 0:
		fmt.Fprintln(w, "nothing appended")
	default:
		for _, e := range evs {
			fmt.Fprintf(w, "appended %s\n", e)
		}
	}
	if retries != "" {
		fmt.Fprintln(w, retries[1:])
	}
}

// execFile runs a file of commands. The database is opened at the first
// line that passes its argument check, so a file of only bad lines (or an
// empty one) creates nothing.
func execFile(c *cli.Context, reg *commands.Registry) (err error) {
	path := c.String("file")
	switch {
	case c.Args().Present():
		return usageErrorf("exec: -f takes no NAME or ARGS (got %q): each line of the file names its command", c.Args().First())
	case c.IsSet("key"):
		return usageErrorf("exec: --key applies to one command: with -f, give a line its own \"key\"")
	case path == "":
		return usageErrorf("exec: -f needs a FILE, or - for standard input")
	}
	ctx := c.Context
	in := c.App.Reader
	if path != "-" {
		f, err := openInput(ctx, path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	asJSON, w := c.Bool("json"), c.App.Writer
	var (
		b          backend
		ok, failed int
	)
	defer func() {
		if b != nil {
			b.close(&err)
		}
	}()
	// Lines are read on a goroutine of their own, so that a signal ends a
	// wait for input (a terminal, a pipe, a FIFO) as promptly as it ends a
	// running command. A read that never returns is left behind: the
	// process is about to exit.
	lines := make(chan inputLine)
	done := make(chan struct{})
	defer close(done)
	go readLines(in, maxLineBytes, lines, done)
	interrupted := false
read:
	for {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		var l inputLine
		select {
		case <-ctx.Done():
			interrupted = true
			break read
		case l = <-lines:
		}
		n := l.n
		if l.err != nil && l.err != io.EOF {
			return failuref(l.err, "exec: reading -f %s at line %d: %v", path, n, l.err)
		}
		if l.size > maxLineBytes {
			failed++
			o := outcome{Line: n, ExitCode: exitUsage, Error: fmt.Sprintf("line %d is %d bytes, the limit is %d (an event of at most %d bytes plus its command): refused, nothing was written", n, l.size, maxLineBytes, local.DefaultMaxEventBytes)}
			if err := report(w, asJSON, o); err != nil {
				return err
			}
		} else if len(bytes.TrimSpace(l.text)) > 0 {
			o := outcome{Line: n}
			name, args, key, perr := parseLine(l.text)
			o.Command = name
			if perr == nil {
				if perr = reg.Check(name, args); perr != nil {
					perr = checkError(name, perr)
				}
			}
			if perr == nil && b == nil {
				if b, err = openBackend(c, false, false); err != nil {
					return err
				}
			}
			switch {
			case perr != nil && name == "":
				o.Error, o.ExitCode = perr.Error(), exitUsage
			case perr != nil:
				o = o.fail(name, perr)
			default:
				o = b.exec(c.Context, reg, name, args, key)
				o.Line = n
			}
			if o.OK {
				ok++
			} else {
				failed++
			}
			if err := report(w, asJSON, o); err != nil {
				return err
			}
		}
		if l.err == io.EOF {
			break
		}
	}
	if asJSON {
		type summary struct {
			OK          int  `json:"ok"`
			Failed      int  `json:"failed"`
			Interrupted bool `json:"interrupted,omitempty"`
		}
		if err := writeJSON(w, map[string]summary{"summary": {ok, failed, interrupted}}); err != nil {
			return err
		}
	} else {
		suffix := ""
		if interrupted {
			suffix = " (interrupted)"
		}
		fmt.Fprintf(w, "%d ok, %d failed%s\n", ok, failed, suffix)
	}
	switch {
	case interrupted:
		return failuref(context.Canceled, "exec: interrupted after %d commands; the rest of %s was not run", ok+failed, path)
	case failed > 0:
		return failuref(nil, "exec: %d of %d commands failed; each failed one wrote nothing (see the lines above)", failed, ok+failed)
	}
	return nil
}

// maxLineBytes caps one line of an exec file: the largest event the store
// takes plus room for its command, stream, type and key. A longer line is
// refused without holding it in memory.
const maxLineBytes = local.DefaultMaxEventBytes + 64<<10

// report prints one line's outcome.
func report(w io.Writer, asJSON bool, o outcome) error {
	if asJSON {
		return writeJSON(w, o)
	}
	printOutcome(w, fmt.Sprintf("line %d: ", o.Line), o)
	return nil
}

// openInput opens the -f file. A directory is refused up front (reading it
// would fail later, as a different kind of error); the open runs aside
// because opening a FIFO waits for its writer, and a signal must still end
// the wait.
func openInput(ctx context.Context, path string) (*os.File, error) {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return nil, usageErrorf("exec: cannot read -f %s: it is a directory: name a file of commands, one JSON object per line", path)
	}
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, usageErrorf("exec: cannot read -f %s: %v", path, errors.Unwrap(o.err))
		}
		return o.f, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, failuref(context.Canceled, "exec: interrupted while opening -f %s (waiting for a writer?): nothing was run", path)
	}
}

// inputLine is one line of an exec file, numbered from 1. size is how
// long it was when longer than the limit (text is then empty); err is set
// on the last line (io.EOF at the end).
type inputLine struct {
	n    int
	text []byte
	size int
	err  error
}

// readLines sends the lines of in until the end, an error or done.
func readLines(in io.Reader, limit int, out chan<- inputLine, done <-chan struct{}) {
	r := bufio.NewReader(in)
	for n := 1; ; n++ {
		l := inputLine{n: n}
		for {
			chunk, err := r.ReadSlice('\n')
			if l.size += len(chunk); l.size <= limit {
				l.text = append(l.text, chunk...)
			} else {
				l.text = nil // refused: keep counting, stop keeping
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			l.err = err
			break
		}
		select {
		case out <- l:
		case <-done:
			return
		}
		if l.err != nil {
			return
		}
	}
}

// parseLine decodes one line of an exec file as strictly as command
// arguments are decoded, for the same reason: a misspelt "key" must not
// silently run a command without its idempotency key.
func parseLine(line []byte) (name string, args json.RawMessage, key string, err error) {
	bad := func(format string, v ...any) error {
		return fmt.Errorf("not a command line: %s; expected %s", fmt.Sprintf(format, v...), lineShape)
	}
	line = bytes.TrimSpace(line)
	if !utf8.Valid(line) {
		return "", nil, "", bad("not valid UTF-8")
	}
	if !json.Valid(line) {
		var v any
		return "", nil, "", bad("invalid JSON (%v)", json.Unmarshal(line, &v))
	}
	if line[0] != '{' {
		return "", nil, "", bad("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.Token() // the brace; json.Valid passed
	seen := map[string]bool{}
	gotName := false
	for dec.More() {
		tok, _ := dec.Token()
		field, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", nil, "", bad("%v", err)
		}
		if seen[field] {
			return "", nil, "", bad("field %q appears twice", field)
		}
		seen[field] = true
		switch field {
		case "command":
			if json.Unmarshal(v, &name) != nil || v[0] != '"' || name == "" {
				return "", nil, "", bad(`"command" must be a non-empty string`)
			}
			gotName = true
		case "args":
			if string(v) != "null" {
				args = v
			}
		case "key":
			if json.Unmarshal(v, &key) != nil || v[0] != '"' || checkKey(key) != nil || commands.HasLoneSurrogate(v) {
				return "", nil, "", bad(`"key" must be a non-empty string of at most %d bytes`, local.MaxKeyBytes)
			}
		default:
			return "", nil, "", bad("unknown field %q", field)
		}
	}
	if !gotName {
		return "", nil, "", bad(`"command" is missing`)
	}
	return name, args, key, nil
}
