package cli

import (
	"bufio"
	"fmt"

	"github.com/urfave/cli/v2"
)

func streamsCommand() *cli.Command {
	return &cli.Command{
		Name:      "streams",
		Usage:     "list streams with their version and last event",
		UsageText: "evstore streams [--prefix P] [--limit N] [--json]",
		Description: "Prints one stream per line in name order: name, version, position and time of its last event.\n" +
			"Opens the database read-only, or asks the process that holds it (evstore serve, a following\n" +
			"replicate, tail).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "prefix", Usage: "only streams whose names start with `P`"},
			&cli.Uint64Flag{Name: "limit", Usage: "print at most `N` streams (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per stream"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			if err := extraArgs(c, 0, "streams [--prefix P] [--limit N] [--json]"); err != nil {
				return err
			}
			b, err := openBackend(c, true, true)
			if err != nil {
				return err
			}
			defer b.close(&err)
			w := bufio.NewWriter(c.App.Writer)
			defer w.Flush()
			var n uint64
			for si, err := range b.streams(c.Context, c.String("prefix"), c.Uint64("limit")) {
				if err != nil {
					return failuref(err, "streams: %v", err)
				}
				if c.Bool("json") {
					if err := writeJSON(w, si); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(w, "%s  v%d  last at position %d, %s\n", si.Stream, si.Version, si.LastPosition, si.LastTime.Format("2006-01-02T15:04:05.000Z"))
				}
				n++
			}
			if n == 0 && !c.Bool("json") {
				if p := c.String("prefix"); p != "" {
					fmt.Fprintf(w, "no streams start with %q\n", p)
				} else {
					fmt.Fprintln(w, "no streams")
				}
			}
			return w.Flush()
		},
	}
}
