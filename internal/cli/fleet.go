package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/replicate"
)

func fleetCommand() *cli.Command {
	return &cli.Command{
		Name:      "fleet",
		Usage:     "list every source replicating into PostgreSQL: position, device head, lag, last seen",
		UsageText: "evstore fleet --to postgres://… [--schema S] [--json] [--silent-after D] [--archives]",
		Description: "The central view of a fleet of devices replicating into one PostgreSQL, read from the\n" +
			"sources table (no local log needed). For each source: the replicated position, the device's\n" +
			"head and lag at its last contact (a batch or a heartbeat), when it was last seen, its evstore\n" +
			"version, layout and store id. Sources silent for longer than --silent-after are flagged\n" +
			"SILENT; the exit code stays 0. Changes nothing.",
		Flags: []cli.Flag{
			toFlag(true),
			schemaFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print one JSON array"},
			&cli.DurationFlag{Name: "silent-after", Value: replicate.DefaultSilentAfter, Usage: "flag sources not seen for longer than `D` (keep it above the replicators' --heartbeat)"},
			&cli.BoolFlag{Name: "archives", Usage: "include archived sources (NAME@<time>)"},
		},
		Action: runFleet,
	}
}

func runFleet(c *cli.Context) error {
	if err := extraArgs(c, 0, "fleet --to postgres://… [--json]"); err != nil {
		return err
	}
	url, err := pgURL(c, "fleet")
	if err != nil {
		return err
	}
	if c.Duration("silent-after") <= 0 {
		return usageErrorf("fleet: --silent-after must be positive")
	}
	list, err := replicate.Fleet(c.Context, replicate.FleetOptions{URL: url, Schema: c.String("schema"),
		SilentAfter: c.Duration("silent-after"), Archives: c.Bool("archives")})
	if err != nil {
		return pgFailure("fleet", err)
	}
	if c.Bool("json") {
		if list == nil {
			list = []replicate.SourceInfo{}
		}
		return writeJSON(c.App.Writer, list)
	}
	printFleet(c, list)
	return nil
}

func printFleet(c *cli.Context, list []replicate.SourceInfo) {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SOURCE\tREPLICATED\tDEVICE HEAD\tLAG\tLAST SEEN\tVERSION\tLAYOUT\tSTORE\t")
	silent := 0
	for _, s := range list {
		head, lag := "-", "-"
		if s.DeviceHead > 0 || s.Version != "" {
			head = fmt.Sprint(s.DeviceHead)
			lag = fmt.Sprintf("%d ev, %s", s.LagEvents, ago(s.LagSeconds))
		}
		seen := ago(s.SilentFor) + " ago"
		if s.Silent {
			seen += " SILENT"
			silent++
		}
		version := s.Version
		if version == "" {
			version = "-"
		}
		layout := string(s.Layout)
		if s.Layout == replicate.LayoutFrames {
			layout += fmt.Sprintf(" (expanded %d)", s.Expanded)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Source, s.Replicated, head, lag, seen, version, layout, s.StoreID)
	}
	w.Flush()
	fmt.Fprintf(c.App.Writer, "%d sources, %d silent for longer than %v\n", len(list), silent, c.Duration("silent-after"))
}

// ago words a number of seconds for a person: 0s, 850ms, 42s, 3m12s, 5h3m.
func ago(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}
