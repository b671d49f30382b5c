package cli

import (
	"errors"
	"fmt"

	"github.com/evstore/evstore/format"

	"github.com/urfave/cli/v2"
)

func logCommand() *cli.Command {
	return &cli.Command{
		Name:        "log",
		Usage:       "print the events of all streams in commit order",
		UsageText:   "evstore log [--from POSITION] [--limit N] [--json] [--skip-damaged]",
		Description: "Prints one event per line: position, time, stream, version, type, data (and metadata).\nWith --json, one JSON object per line. The database must exist.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Value: 1, Usage: "start at global `POSITION`"},
			&cli.Uint64Flag{Name: "limit", Usage: "print at most `N` events (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event"},
			&cli.BoolFlag{Name: "skip-damaged", Usage: "go on past damaged records (their positions are reported at the end, exit 1)"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			if err := extraArgs(c, 0, "log [--from POSITION] [--limit N] [--json]"); err != nil {
				return err
			}
			b, err := openBackend(c, true, true)
			if errors.Is(err, errEmptyDB) {
				fmt.Fprintf(c.App.ErrWriter, "evstore: no events from position %d (the log ends at 0; %s is an empty file)\n", max(c.Uint64("from"), 1), dbPath(c))
				return nil
			}
			if err != nil {
				return err
			}
			defer b.close(&err)
			if c.Bool("skip-damaged") {
				store := b.store()
				if store == nil {
					return failuref(nil, "log --skip-damaged reads the file itself, and another process holds it: stop that process (evstore serve, a following replicate) and run it again")
				}
				return printSalvaged(c, "log", store.ReadAllSalvage(c.Uint64("from")), c.Uint64("limit"))
			}
			n, err := printEvents(c, b.readAll(c.Context, c.Uint64("from")), c.Uint64("limit"))
			if errors.Is(err, format.ErrCorrupt) {
				return failuref(err, "%v: 'evstore log --skip-damaged' prints the intact events around it; see docs/operations.md", err)
			}
			if err == nil && n == 0 {
				_, head, herr := b.status(c.Context)
				if herr != nil {
					return herr
				}
				fmt.Fprintf(c.App.ErrWriter, "evstore: no events from position %d (the log ends at %d)\n", max(c.Uint64("from"), 1), head)
			}
			return err
		},
	}
}
