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
	return json.Marshal(success{o.Line, o.Command, true, o.Position, o.Retries, o.Duplicate, toJSONEvents(o.events)})
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
		return commandError(name, err)
	}
	b, err := openBackend(c, false)
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
	ce := commandError(name, err).(*cliError)
	o.OK, o.Error, o.ExitCode = false, ce.msg, ce.code
	return o
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
	in := c.App.Reader
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return usageErrorf("exec: cannot read -f %s: %v", path, errors.Unwrap(err))
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
	r := bufio.NewReader(in)
	interrupted := false
	for n := 1; ; n++ {
		if c.Context.Err() != nil {
			interrupted = true
			break
		}
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return failuref(rerr, "exec: reading -f %s at line %d: %v", path, n, rerr)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			o := outcome{Line: n}
			name, args, key, perr := parseLine(line)
			o.Command = name
			if perr == nil {
				perr = reg.Check(name, args)
			}
			if perr == nil && b == nil {
				if b, err = openBackend(c, false); err != nil {
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
			if asJSON {
				if err := writeJSON(w, o); err != nil {
					return err
				}
			} else {
				printOutcome(w, fmt.Sprintf("line %d: ", n), o)
			}
		}
		if rerr == io.EOF {
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

// parseLine decodes one line of an exec file as strictly as command
// arguments are decoded, for the same reason: a misspelt "key" must not
// silently run a command without its idempotency key.
func parseLine(line []byte) (name string, args json.RawMessage, key string, err error) {
	bad := func(format string, v ...any) error {
		return fmt.Errorf("not a command line: %s; expected %s", fmt.Sprintf(format, v...), lineShape)
	}
	line = bytes.TrimSpace(line)
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
			if json.Unmarshal(v, &key) != nil || v[0] != '"' || checkKey(key) != nil {
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
