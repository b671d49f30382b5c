package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func logCommand() *cli.Command {
	return &cli.Command{
		Name:        "log",
		Usage:       "print the events of all streams in commit order",
		UsageText:   "evstore log [--from POSITION] [--limit N] [--json]",
		Description: "Prints one event per line: position, time, stream, version, type, data (and metadata).\nWith --json, one JSON object per line. The database must exist.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Value: 1, Usage: "start at global `POSITION`"},
			&cli.Uint64Flag{Name: "limit", Usage: "print at most `N` events (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			if err := extraArgs(c, 0, "log [--from POSITION] [--limit N] [--json]"); err != nil {
				return err
			}
			b, err := openBackend(c, true)
			if err != nil {
				return err
			}
			defer b.close(&err)
			n, err := printEvents(c, b.readAll(c.Context, c.Uint64("from")), c.Uint64("limit"))
			if err == nil && n == 0 && !c.Bool("json") {
				_, head, herr := b.status(c.Context)
				if herr != nil {
					return herr
				}
				fmt.Fprintf(c.App.Writer, "no events from position %d (the log ends at %d)\n", max(c.Uint64("from"), 1), head)
			}
			return err
		},
	}
}
