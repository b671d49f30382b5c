package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the local log and how far PostgreSQL has replicated it",
		UsageText: "evstore status [--to postgres://…] [--source NAME] [--schema S] [--json]",
		Description: "Prints the local head and store id and, with --to, the source's replicated position, its lag\n" +
			"in events and seconds (age of the oldest event PostgreSQL lacks) and the last successful batch.\n" +
			"Changes nothing. While a replicator holds the database, the local side is reported as unknown.\n" +
			"Exit 1 if replicate would refuse the source: it belongs to another log, is ahead of this one,\n" +
			"or has diverged from it.",
		Flags: []cli.Flag{
			toFlag(false),
			sourceFlag(),
			schemaFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			dbFlag(false),
		},
		Action: runStatus,
	}
}

func runStatus(c *cli.Context) (err error) {
	if err := extraArgs(c, 0, "status [--to postgres://…] [--json]"); err != nil {
		return err
	}
	if c.String("to") != "" {
		if _, err := pgURL(c, "status"); err != nil {
			return err
		}
	}
	b, err := openBackend(c, true, true)
	locked := errors.Is(err, local.ErrLocked) // held by a process that serves no socket
	var store *local.Store                    // nil when another process holds it
	switch {
	case locked:
	case err != nil:
		return err
	default:
		defer b.close(&err)
		store = b.store()
	}
	url := c.String("to")
	if url == "" {
		if b == nil {
			return err
		}
		id, head, err := b.status(c.Context)
		if err != nil {
			return err
		}
		info := replicate.StatusInfo{StoreID: id, LocalHead: head, Checked: time.Now().UTC()}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, info)
		}
		fmt.Fprintf(c.App.Writer, "store       %s\nlocal head  %d\nreplication not checked: pass --to postgres://… (or set %s)\n", info.StoreID, info.LocalHead, pgURLEnv)
		return nil
	}
	info, serr := replicate.Status(c.Context, store, url, c.String("schema"), c.String("source"))
	var rerr *replicate.Error
	if serr != nil && !errors.As(serr, &rerr) {
		return pgFailure("status", serr)
	}
	if b != nil && store == nil {
		if err := ownerStatus(c.Context, &info, b); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, info); err != nil {
			return err
		}
	} else {
		printStatus(c, info, locked)
	}
	if rerr != nil {
		return pgFailure("status", serr)
	}
	return nil
}

func printStatus(c *cli.Context, info replicate.StatusInfo, locked bool) {
	w := c.App.Writer
	fmt.Fprintf(w, "source      %s (schema %s", info.Source, info.Schema)
	if info.Layout != "" {
		fmt.Fprintf(w, ", layout %s", info.Layout)
	}
	fmt.Fprintln(w, ")")
	if locked {
		fmt.Fprintln(w, "local head  unknown: the database is in use (a replicator running?)")
	} else {
		fmt.Fprintf(w, "store       %s\nlocal head  %d\n", info.StoreID, info.LocalHead)
	}
	if !info.Exists {
		fmt.Fprintln(w, "replicated  nothing yet: run 'evstore replicate --to …'")
		return
	}
	switch {
	case info.RemoteStoreID != info.StoreID && !locked:
		fmt.Fprintf(w, "replicated  %d from store %s, not this log (see the error below)\n", info.Replicated, info.RemoteStoreID)
	case info.Problem != "":
		fmt.Fprintf(w, "replicated  %d, ahead of this log (see the error below)\n", info.Replicated)
	case locked:
		fmt.Fprintf(w, "replicated  %d\n", info.Replicated)
	default:
		fmt.Fprintf(w, "replicated  %d (lag %d events, %s)\n", info.Replicated, info.LagEvents, time.Duration(info.LagSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	if !info.LastSuccess.IsZero() {
		fmt.Fprintf(w, "last batch  %s (%s ago)\n", info.LastSuccess.Format(time.RFC3339), info.Checked.Sub(info.LastSuccess).Round(time.Second))
	}
	if info.Layout == replicate.LayoutFrames {
		if info.Expanded < info.Replicated {
			fmt.Fprintf(w, "expanded    %d (%d events only in frames yet: run 'evstore expand')\n", info.Expanded, info.Replicated-info.Expanded)
		} else {
			fmt.Fprintf(w, "expanded    %d (all)\n", info.Expanded)
		}
	}
}
