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
			b, err := openBackend(c, true, true)
			if errors.Is(err, errEmptyDB) {
				fmt.Fprintf(c.App.ErrWriter, "evstore: stream %s has no events (%s is an empty file)\n", stream, dbPath(c))
				return nil
			}
			if err != nil {
				return err
			}
			defer b.close(&err)
			if c.Bool("skip-damaged") {
				store := b.store()
				if store == nil {
					return failuref(nil, "read --skip-damaged reads the file itself, and another process holds it: stop that process (evstore serve, a following replicate) and run it again")
				}
				return printSalvaged(c, "read", store.ReadStreamSalvage(stream, c.Uint64("from")), 0)
			}
			n, err := printEvents(c, b.readStream(c.Context, stream, c.Uint64("from")), 0)
			if errors.Is(err, format.ErrCorrupt) {
				return failuref(err, "%v: 'evstore read --skip-damaged' prints the stream's intact events around it; see docs/operations.md", err)
			}
			if err == nil && n == 0 {
				if c.Uint64("from") > 1 {
					fmt.Fprintf(c.App.ErrWriter, "evstore: stream %s has no events from version %d\n", stream, c.Uint64("from"))
				} else {
					fmt.Fprintf(c.App.ErrWriter, "evstore: stream %s has no events\n", stream)
				}
			}
			return err
		},
	}
}
