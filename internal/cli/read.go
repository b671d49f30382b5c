package cli

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/format"
)

func readCommand() *cli.Command {
	return &cli.Command{
		Name:        "read",
		Usage:       "print the events of one stream",
		ArgsUsage:   "STREAM",
		UsageText:   "evstore read [--from VERSION] [--json] [--skip-damaged] STREAM",
		Description: "Prints one event per line: position, time, stream, version, type, data (and metadata).\nWith --json, one JSON object per line. The database must exist.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Value: 1, Usage: "start at stream `VERSION`"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event"},
			&cli.BoolFlag{Name: "skip-damaged", Usage: "go on past damaged records (their positions are reported at the end, exit 1)"},
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
			store, err := openReadOnly(c)
			if err != nil {
				return err
			}
			defer closeStore(store, &err)
			if c.Bool("skip-damaged") {
				return printSalvaged(c, "read", store.ReadStreamSalvage(stream, c.Uint64("from")), 0)
			}
			n, err := printEvents(c, store.ReadStream(stream, c.Uint64("from")), 0)
			if errors.Is(err, format.ErrCorrupt) {
				return failuref(err, "%v: 'evstore read --skip-damaged' prints the stream's intact events around it; see docs/operations.md", err)
			}
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
