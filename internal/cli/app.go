package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/commands"
)

// Run is main without the process: it returns the exit code (0 success, 1
// failure, 2 usage error) so tests can call it in-process. Every error is
// reported on stderr as one line.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		// A bug must still end in one line and an exit code, not a trace
		// that buries what the user was doing.
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "evstore: internal error: %v (please report this with the command you ran)\n", p)
			code = exitFailure
		}
	}()
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, args)
	if name, ok := app.Metadata[metaNotFound].(string); ok && err == nil {
		err = usageErrorf("no help topic %q: run 'evstore help' for the list of commands", name)
	}
	if err == nil {
		return exitOK
	}
	code, msg := describeError(ctx, err)
	fmt.Fprintf(stderr, "evstore: %s\n", oneLine(msg))
	return code
}

// metaNotFound is where CommandNotFound leaves the unknown name: urfave
// calls it without a way to return an error.
const metaNotFound = "evstore.notFound"

// newApp builds the CLI. Every subcommand is defined in its own file as
// xxxCommand(...) *cli.Command and listed here.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	reg := commands.Builtin()
	app := &cli.App{
		Name:        "evstore",
		Usage:       "an embedded event store",
		UsageText:   "evstore [--db PATH] [--lock-timeout D] COMMAND [flags] [args]",
		Description: "Runs commands that append events to a local log, and reads the log back.\nExit codes: 0 success, 1 failure, 2 usage error.",
		HideVersion: true,
		Reader:      stdin,
		Writer:      stdout,
		ErrWriter:   stderr,
		Flags:       []cli.Flag{dbFlag(true), lockTimeoutFlag()},
		Commands: []*cli.Command{
			execCommand(reg),
			readCommand(),
			logCommand(),
			commandsCommand(reg),
			replicateCommand(),
			serveCommand(),
			statusCommand(),
			fleetCommand(),
			projectionsCommand(),
			expandCommand(),
			benchCommand(),
			backupCommand(),
			verifyCommand(),
			statsCommand(),
			streamsCommand(),
			tailCommand(),
			exportCommand(),
			importCommand(),
			compactCommand(),
			restoreCommand(),
		},
	}
	// The root action runs only when no subcommand matched.
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usageErrorf("unknown command %q: run 'evstore help' for the list of commands (%s)", c.Args().First(), commandNames(c.App))
		}
		return usageErrorf("no command given: run 'evstore help' for the list of commands (%s)", commandNames(c.App))
	}
	app.CommandNotFound = func(c *cli.Context, name string) { c.App.Metadata[metaNotFound] = name }
	// urfave would otherwise print "Incorrect Usage" plus the whole help, and
	// call os.Exit from inside the library for errors that carry a code.
	app.OnUsageError = onUsageError
	app.ExitErrHandler = func(*cli.Context, error) {}
	for _, cmd := range app.Commands {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = onUsageError
		}
	}
	app.Metadata = map[string]any{}
	return app
}

func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	if !isSubcommand {
		return usageErrorf("%v: run 'evstore help' for usage", err)
	}
	name := c.Command.Name
	return usageErrorf("%s: %v: run 'evstore %s --help' for usage", name, err, name)
}

func commandNames(app *cli.App) string {
	var names []string
	for _, c := range app.VisibleCommands() {
		if c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}
