package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check every record and index of the database",
		UsageText: "evstore verify [--json]",
		Description: "Reads the whole database read-only and checks every record's checksum, that positions run\n" +
			"1..head without gaps, that each event has its index entry and each stream its versions entry,\n" +
			"that stream versions have no gaps, that idempotency keys point into the log, and bbolt's own\n" +
			"page structure. Prints each problem with its location and exits 1 if there is any.\n" +
			"See docs/operations.md for what to do about damage.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			if err := extraArgs(c, 0, "verify [--json]"); err != nil {
				return err
			}
			store, err := openReadOnly(c)
			if err != nil {
				return err
			}
			defer closeStore(store, &err)
			p := newProgress(c, "verify", false)
			rep, err := store.CheckProgress(c.Context, p.update)
			p.finish()
			if err != nil {
				return failuref(err, "verify: %v", err)
			}
			if err := printReport(c, store, rep); err != nil {
				return err
			}
			if !rep.OK() {
				return failuref(local.ErrCorruptStore, "verify: %s in %s, the first: %s: see docs/operations.md (damaged files)", count(len(rep.Problems), "problem"), store.path, rep.Problems[0])
			}
			return nil
		},
	}
}

func printReport(c *cli.Context, store *cliStore, rep local.Report) error {
	if c.Bool("json") {
		if rep.Problems == nil {
			rep.Problems = []local.Problem{}
		}
		return writeJSON(c.App.Writer, struct {
			StoreID string `json:"store_id"`
			OK      bool   `json:"ok"`
			local.Report
		}{store.ID(), rep.OK(), rep})
	}
	w := c.App.Writer
	for _, p := range rep.Problems {
		fmt.Fprintln(w, p)
	}
	if rep.Truncated {
		fmt.Fprintf(w, "(more problems not listed: the first %d are shown)\n", local.MaxProblems)
	}
	status := "OK"
	if !rep.OK() {
		status = count(len(rep.Problems), "problem")
	}
	fmt.Fprintf(w, "store %s: %s, %s, %s: %s\n", store.ID(), count(rep.Events, "event"), count(rep.Streams, "stream"), count(rep.Keys, "idempotency key"), status)
	return nil
}
