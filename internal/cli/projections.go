package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/projection"
)

func projectionsCommand() *cli.Command {
	return &cli.Command{
		Name:      "projections",
		Usage:     "list the projections recorded in the database: position, lag, state",
		UsageText: "evstore projections [--json]",
		Description: "Projections are Go code run by the application that embeds the store (see docs/projections.md);\n" +
			"this command only reports what they recorded: the last position applied, the lag behind the\n" +
			"log's head in events and in seconds (age of the oldest event not applied), the state (caught up,\n" +
			"behind, failed) and, for a failed one, the event and the error that stopped it. Changes nothing.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per projection"},
			dbFlag(false),
		},
		Action: runProjections,
	}
}

func runProjections(c *cli.Context) (err error) {
	if err := extraArgs(c, 0, "projections [--json]"); err != nil {
		return err
	}
	store, err := openStore(c, true)
	if err != nil {
		return err
	}
	defer closeStore(store, &err)
	list, err := projection.List(store.Store)
	if err != nil {
		return failuref(err, "reading the projections: %v", err)
	}
	if c.Bool("json") {
		for _, in := range list {
			if err := writeJSON(c.App.Writer, in); err != nil {
				return err
			}
		}
		return nil
	}
	w := c.App.Writer
	if len(list) == 0 {
		fmt.Fprintf(w, "no projections in %s (log head %d): they are recorded when the application runs one\n", store.path, store.Head())
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tPOSITION\tLAG\tSTATE\tUPDATED")
	for _, in := range list {
		lag := "0"
		if in.Lag > 0 {
			unit := "events"
			if in.Lag == 1 {
				unit = "event"
			}
			lag = fmt.Sprintf("%d %s, %s", in.Lag, unit, time.Duration(in.LagSeconds*float64(time.Second)).Round(time.Millisecond))
		}
		state := in.State
		if in.State == projection.StateFailed {
			state = fmt.Sprintf("failed at %d: %s", in.ErrorPosition, oneLine(in.Error))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", in.Name, in.Kind, in.Position, lag, state, in.Updated.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "log head %d\n", store.Head())
	return err
}
