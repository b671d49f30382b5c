package main

import (
	"bufio"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/format"
)

func readCommand() *cli.Command {
	return &cli.Command{
		Name:        "read",
		Usage:       "print the events of one stream",
		ArgsUsage:   "STREAM",
		UsageText:   "evstore read [--from VERSION] [--json] STREAM",
		Description: "Prints one event per line: position, time, stream, version, type, data (and metadata).\nWith --json, one JSON object per line. The database must exist.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Value: 1, Usage: "start at stream `VERSION`"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			const usage = "read [--from VERSION] [--json] STREAM"
			if !c.Args().Present() {
				return usageErrorf("read: missing the STREAM: usage is 'evstore %s'", usage)
			}
			if err := extraArgs(c, 1, usage); err != nil {
				return err
			}
			stream := c.Args().First()
			if err := format.ValidateStream(stream); err != nil {
				return usageErrorf("read: %v", err)
			}
			store, err := openStore(c, true)
			if err != nil {
				return err
			}
			defer closeStore(store, &err)
			n, err := printEvents(c, store.ReadStream(stream, c.Uint64("from")), 0)
			if err == nil && n == 0 && !c.Bool("json") {
				if c.Uint64("from") > 1 {
					fmt.Fprintf(c.App.Writer, "stream %s has no events from version %d\n", stream, c.Uint64("from"))
				} else {
					fmt.Fprintf(c.App.Writer, "stream %s has no events\n", stream)
				}
			}
			return err
		},
	}
}

// printEvents writes events in the form --json asks for, up to limit (0:
// all), and returns how many it wrote.
func printEvents(c *cli.Context, events func(func(format.Event, error) bool), limit uint64) (uint64, error) {
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	asJSON := c.Bool("json")
	var n uint64
	for ev, err := range events {
		if err != nil {
			return n, failuref(err, "reading the log: %v", err)
		}
		if err := c.Context.Err(); err != nil {
			return n, err
		}
		if asJSON {
			if err := writeJSON(w, toJSONEvent(ev)); err != nil {
				return n, err
			}
		} else {
			fmt.Fprintln(w, eventLine(ev))
		}
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	return n, w.Flush()
}
