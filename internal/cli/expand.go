package cli

import (
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/replicate"
)

func expandCommand() *cli.Command {
	return &cli.Command{
		Name:      "expand",
		Usage:     "turn replicated frames into rows of the events table, in PostgreSQL",
		UsageText: "evstore expand --to postgres://… [--source NAME] [--schema S] [--once] [--poll-interval D]",
		Description: "For sources replicated with --layout frames: decodes each frame and inserts its events into\n" +
			"the events table, exactly once (the expanded position advances in the same transaction).\n" +
			"Works on PostgreSQL alone, no local database. Runs until interrupted, polling for new frames,\n" +
			"or with --once until every frame present is expanded. Several may run at once.",
		Flags: []cli.Flag{
			toFlag(true),
			&cli.StringFlag{Name: "source", Usage: "expand only the source `NAME`", DefaultText: "every frames source"},
			schemaFlag(),
			&cli.BoolFlag{Name: "once", Usage: "stop when every frame present is expanded"},
			&cli.DurationFlag{Name: "poll-interval", Value: replicate.DefaultPollInterval, Usage: "look for new frames every `D`"},
		},
		Action: func(c *cli.Context) error {
			if err := extraArgs(c, 0, "expand --to postgres://… [flags]"); err != nil {
				return err
			}
			url, err := pgURL(c, "expand")
			if err != nil {
				return err
			}
			if c.Duration("poll-interval") <= 0 {
				return usageErrorf("expand: --poll-interval must be positive")
			}
			logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
			var events int
			last := time.Now()
			err = replicate.Expand(c.Context, replicate.ExpandOptions{
				URL: url, Schema: c.String("schema"), Source: c.String("source"),
				Once: c.Bool("once"), PollInterval: c.Duration("poll-interval"), Logger: logger,
				Progress: func(p replicate.ExpandProgress) {
					events += p.Events
					if time.Since(last) >= 5*time.Second {
						logger.Info("expansion progress", "source", p.Source, "position", p.Position, "events", events)
						last = time.Now()
					}
				},
			})
			if err != nil {
				return pgFailure("expand", err)
			}
			logger.Info("expansion finished", "events", events)
			return nil
		},
	}
}
