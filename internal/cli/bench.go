package cli

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/evstore/evstore/internal/bench"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// benchCommand is `evstore bench`: the workloads of docs/benchmarks.md on a
// fresh temporary store.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure throughput and latency on a fresh temporary store",
		ArgsUsage: "[WORKLOAD…]",
		UsageText: "evstore bench [--duration D] [--clients N] [--json] [--baseline URL] [--nosync] [--dir DIR] [WORKLOAD…]",
		Description: "Runs the named workloads (default: all) on a new store in a temporary directory, durable\n" +
			"(fsync before every acknowledgement) unless --nosync, and prints ops/s, events/s, latency\n" +
			"percentiles, retries, errors and the peak RSS of each. Workloads: " + strings.Join(bench.Workloads, ", ") + ".\n" +
			"With --baseline postgres://…, deposit and transfer also run against a plain PostgreSQL event store\n" +
			"(in a schema of its own, dropped afterwards) and the replicate-* workloads replicate to it.\n" +
			"See docs/benchmarks.md for what each workload does and the targets.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "create the temporary stores under `DIR` (default: the system temp dir)"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "run each timed workload for `D`"},
			&cli.IntFlag{Name: "clients", Value: 64, Usage: "`N` concurrent clients of deposit, transfer and deposit-socket"},
			&cli.BoolFlag{Name: "json", Usage: "print the figures as one JSON document"},
			&cli.StringFlag{Name: "baseline", Usage: "PostgreSQL `URL` to compare deposit and transfer with, and to replicate to"},
			&cli.StringFlag{Name: "to", Usage: "PostgreSQL `URL` for replicate-rows and replicate-frames (default: --baseline)"},
			&cli.StringFlag{Name: "fleet-via", Usage: "PgBouncer `URL` (transaction mode, in front of --to's server): the fleet workload runs through it instead of directly"},
			&cli.IntFlag{Name: "fleet-devices", Value: 1000, Usage: "`N` simulated devices of the fleet workload (a direct run needs a connection each, and is capped at the server's free ones)"},
			&cli.BoolFlag{Name: "nosync", Usage: "skip fsync (results are labelled NOSYNC)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run to `FILE`"},
			&cli.Float64Flag{Name: "scale", Value: 1, Hidden: true, Usage: "multiply every workload's size"},
			&cli.BoolFlag{Name: "smoke", Hidden: true, Usage: "tiny sizes and durations, for CI"},
			&cli.IntFlag{Name: "baseline-conns", Hidden: true, Usage: "PostgreSQL connections (default: one per client)"},
		},
		Action: func(c *cli.Context) error {
			cfg := bench.Config{
				Workloads:     c.Args().Slice(),
				Dir:           c.String("dir"),
				Duration:      c.Duration("duration"),
				Clients:       c.Int("clients"),
				JSON:          c.Bool("json"),
				Baseline:      c.String("baseline"),
				To:            c.String("to"),
				FleetVia:      c.String("fleet-via"),
				FleetDevices:  c.Int("fleet-devices"),
				NoSync:        c.Bool("nosync"),
				Scale:         c.Float64("scale"),
				CPUProfile:    c.String("cpuprofile"),
				BaselineConns: c.Int("baseline-conns"),
			}
			if c.Bool("smoke") {
				cfg.Smoke(c.IsSet("scale"), c.IsSet("duration"))
			}
			if err := cfg.Check(); err != nil {
				return usageErrorf("bench: %v", err)
			}
			_, err := bench.Run(c.Context, cfg, c.App.Writer, progressWriter(c.App.ErrWriter))
			return err
		},
	}
}

// progressWriter is where a run reports which workload it is on: stderr if
// it is a terminal, so that a person waiting sees it while stdout holds only
// the table or the JSON, and scripts keep the rule that a command that
// succeeds writes nothing to stderr.
func progressWriter(stderr io.Writer) io.Writer {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return io.Discard
}
