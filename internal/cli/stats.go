package cli

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show the database's counts and sizes",
		UsageText: "evstore stats [--json]",
		Description: "Prints the store id, when it was created, events and head, streams, idempotency keys, the\n" +
			"time of the last commit, the file's size and its free pages (which 'evstore compact' drops).\n" +
			"Opens the database read-only, or asks the process that holds it (evstore serve, a following\n" +
			"replicate, tail).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			if err := extraArgs(c, 0, "stats [--json]"); err != nil {
				return err
			}
			b, err := openBackend(c, true, true)
			if err != nil {
				return err
			}
			defer b.close(&err)
			st, err := b.stats(c.Context)
			if err != nil {
				return failuref(err, "stats: %v", err)
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, st)
			}
			last := "never"
			if !st.LastCommit.IsZero() {
				last = st.LastCommit.Format(time.RFC3339Nano)
			}
			fmt.Fprintf(c.App.Writer, "store        %s\ncreated      %s\nevents       %d (head %d)\nstreams      %d\nkeys         %d idempotency keys\nlast commit  %s\nfile         %s, %d free pages of %d bytes\n",
				st.StoreID, st.Created.Format(time.RFC3339), st.Events, st.Head, st.Streams, st.Keys, last, byteSize(st.FileBytes), st.FreePages, st.PageSize)
			return nil
		},
	}
}
