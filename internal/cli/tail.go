package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/server"
)

func tailCommand() *cli.Command {
	return &cli.Command{
		Name:      "tail",
		Usage:     "print the log's events and follow it until interrupted",
		UsageText: "evstore tail [--from POSITION] [--stream-prefix P] [--type T] [--interval D] [--json]",
		Description: "Prints events from --from (default: only new ones) and then new events as they commit,\n" +
			"until interrupted (Ctrl-C: exit 0). While a process holds the database (evstore serve, a\n" +
			"following replicate, another tail), tail follows it through its socket, and goes on with the\n" +
			"file if that process stops. Otherwise tail holds the database itself and serves its socket, so\n" +
			"that evstore exec, read, log and the rest go on working beside it (commands that need the file\n" +
			"itself, such as compact, backup or replicate, wait until tail stops). On a file this user may only\n" +
			"read, tail opens it read-only for a moment every --interval instead, so that writers can go on.\n" +
			"Filters: --stream-prefix and --type.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Usage: "start at global `POSITION` (0: after the current head)"},
			&cli.StringFlag{Name: "stream-prefix", Usage: "only events of streams starting with `P`"},
			&cli.StringFlag{Name: "type", Usage: "only events of type `T`"},
			&cli.DurationFlag{Name: "interval", Value: 500 * time.Millisecond, Usage: "on a read-only file, look for new events every `D`"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event"},
			dbFlag(false),
		},
		Action: runTail,
	}
}

func runTail(c *cli.Context) error {
	if err := extraArgs(c, 0, "tail [--from POSITION] [--stream-prefix P] [--type T] [--json]"); err != nil {
		return err
	}
	if c.Duration("interval") <= 0 {
		return usageErrorf("tail: --interval must be positive")
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	next := c.Uint64("from")
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for attempt := 0; ; attempt++ {
		// Writable, so that holding the file this tail can serve it.
		b, err := openBackend(c, true, false)
		switch {
		case err != nil && c.Context.Err() != nil:
			return nil // interrupted while waiting for the file
		case errors.Is(err, fs.ErrPermission):
			return pollTail(c, w, next) // a file this user may only read
		case errors.Is(err, local.ErrLocked) && attempt > 0:
			// Between two owners, a process that serves nothing (a backup)
			// took the file: wait for it, as the first open did.
		case err != nil:
			return err
		default:
			progressed, err := followBackend(c, b, w, &next, logger)
			b.close(&err)
			switch {
			case c.Context.Err() != nil:
				return nil // interrupted: the normal end of a tail
			case err == nil:
				return nil
			case !ownerGone(err):
				return err
			}
			// The process that held the file stopped: go on from the
			// next position through its successor, or with the file.
			if progressed {
				attempt = 0
			}
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second)):
		}
	}
}

// ownerGone reports a failure that means the owner went away (stopped,
// killed, restarting), after which the file or a new owner takes over.
func ownerGone(err error) bool {
	return errors.Is(err, server.ErrUnreachable) || errors.Is(err, server.ErrNoOwner) || errors.Is(err, local.ErrClosed)
}

// followBackend prints b's events from *next on (0: after the head) until
// c's context ends or b fails. Holding the file, it serves it meanwhile,
// so that other evstore commands on it go on working. It reports whether
// it printed past where it started.
func followBackend(c *cli.Context, b backend, w *bufio.Writer, next *uint64, logger *slog.Logger) (progressed bool, err error) {
	if fb, ok := b.(*fileBackend); ok {
		defer serveOwner(c.Context, fb.s.Store, logger)()
	}
	if *next == 0 {
		_, h, err := b.status(c.Context)
		if err != nil {
			return false, err
		}
		*next = h + 1
	}
	start := *next
	prefix, typ := c.String("stream-prefix"), c.String("type")
	// A reader goroutine lets the printer flush exactly when it has caught
	// up, not once per event.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	events := make(chan format.Event, 64)
	errc := make(chan error, 1)
	go func() {
		defer close(events)
		for ev, err := range b.subscribe(ctx, *next) {
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	for ev := range events {
		*next = ev.Position + 1
		if err := printTailed(c, w, ev, prefix, typ); err != nil {
			return *next > start, err
		}
		if len(events) == 0 {
			if err := w.Flush(); err != nil {
				return *next > start, err
			}
		}
	}
	select {
	case err = <-errc:
		if !ownerGone(err) {
			err = failuref(err, "tail: reading the log: %v", err)
		}
	default:
	}
	if err == nil {
		err = w.Flush()
	}
	return *next > start, err
}

// pollTail follows a database this user may not write, and so cannot
// hold and serve: it opens it read-only for a moment every --interval and
// closes it again, so that writers can go on.
func pollTail(c *cli.Context, w *bufio.Writer, next uint64) error {
	prefix, typ := c.String("stream-prefix"), c.String("type")
	first := true
	tick := time.NewTicker(c.Duration("interval"))
	defer tick.Stop()
	for {
		err := tailOnce(c, w, &next, prefix, typ, first)
		if c.Context.Err() != nil {
			return nil // interrupted: the normal end of a tail
		}
		switch {
		case err == nil:
			first = false
		case errors.Is(err, local.ErrLocked) && !first:
			// A writer holds the file for longer than the lock timeout:
			// try again at the next tick.
		default:
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-tick.C:
		}
	}
}

// tailOnce opens the database, prints the events from *next on and closes
// it again. next 0 means "after the head" on the first call.
func tailOnce(c *cli.Context, w *bufio.Writer, next *uint64, prefix, typ string, first bool) (err error) {
	store, err := openReadOnly(c)
	if err != nil {
		return err
	}
	defer closeStore(store, &err)
	if *next == 0 {
		*next = store.Head() + 1
	}
	for ev, err := range store.ReadAll(*next) {
		if err != nil {
			return failuref(err, "tail: reading the log: %v", err)
		}
		if c.Context.Err() != nil {
			return nil
		}
		*next = ev.Position + 1
		if err := printTailed(c, w, ev, prefix, typ); err != nil {
			return err
		}
	}
	return nil
}

// printTailed prints ev if it passes tail's filters (stream prefix, type).
func printTailed(c *cli.Context, w io.Writer, ev format.Event, prefix, typ string) error {
	if !strings.HasPrefix(ev.Stream, prefix) || (typ != "" && ev.Type != typ) {
		return nil
	}
	if c.Bool("json") {
		return writeJSON(w, ev)
	}
	_, err := fmt.Fprintln(w, eventLine(ev))
	return err
}
