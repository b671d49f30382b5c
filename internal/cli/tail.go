package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
)

func tailCommand() *cli.Command {
	return &cli.Command{
		Name:      "tail",
		Usage:     "print the log's events and follow it until interrupted",
		UsageText: "evstore tail [--from POSITION] [--stream-prefix P] [--type T] [--interval D] [--json]",
		Description: "Prints events from --from (default: only new ones) and then new events as other commands\n" +
			"commit them, until interrupted (Ctrl-C: exit 0). The database is opened read-only for a moment\n" +
			"every --interval and closed again, so that writers can go on; while another process holds it\n" +
			"(a running replicator), tail waits. Filters: --stream-prefix and --type.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Usage: "start at global `POSITION` (0: after the current head)"},
			&cli.StringFlag{Name: "stream-prefix", Usage: "only events of streams starting with `P`"},
			&cli.StringFlag{Name: "type", Usage: "only events of type `T`"},
			&cli.DurationFlag{Name: "interval", Value: 500 * time.Millisecond, Usage: "look for new events every `D`"},
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
	prefix, typ := c.String("stream-prefix"), c.String("type")
	next := c.Uint64("from")
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
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
		if !strings.HasPrefix(ev.Stream, prefix) || (typ != "" && ev.Type != typ) {
			continue
		}
		if c.Bool("json") {
			if err := writeJSON(w, ev); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(w, eventLine(ev))
		}
	}
	return nil
}
