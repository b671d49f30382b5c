package main

import (
	"io"
	"os"
	"strings"
	"time"

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
		UsageText: "evstore bench [--duration D] [--clients N] [--json] [--baseline URL] [--nosync] [--db DIR] [WORKLOAD…]",
		Description: "Runs the named workloads (default: all) on a new store in a temporary directory, durable\n" +
			"(fsync before every acknowledgement) unless --nosync, and prints ops/s, events/s, latency\n" +
			"percentiles, retries, errors and the peak RSS of each. Workloads: " + strings.Join(benchWorkloads, ", ") + ".\n" +
			"With --baseline postgres://…, deposit and transfer also run against a plain PostgreSQL event store\n" +
			"(in a schema of its own, dropped afterwards) and the replicate-* workloads replicate to it.\n" +
			"See docs/benchmarks.md for what each workload does and the targets.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "db", Usage: "create the temporary stores under `DIR` (default: the system temp dir)"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long deposit and transfer run"},
			&cli.IntFlag{Name: "clients", Value: 64, Usage: "concurrent clients of deposit and transfer"},
			&cli.BoolFlag{Name: "json", Usage: "print the figures as one JSON document"},
			&cli.StringFlag{Name: "baseline", Usage: "PostgreSQL `URL` to compare deposit and transfer with, and to replicate to"},
			&cli.StringFlag{Name: "to", Usage: "PostgreSQL `URL` for replicate-rows and replicate-frames (default: --baseline)"},
			&cli.BoolFlag{Name: "nosync", Usage: "skip fsync (results are labelled NOSYNC)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run to `FILE`"},
			&cli.Float64Flag{Name: "scale", Value: 1, Hidden: true, Usage: "multiply every workload's size"},
			&cli.BoolFlag{Name: "smoke", Hidden: true, Usage: "tiny sizes and durations, for CI"},
			&cli.IntFlag{Name: "baseline-conns", Hidden: true, Usage: "PostgreSQL connections (default: one per client)"},
		},
		Action: func(c *cli.Context) error {
			cfg := benchConfig{
				Workloads:     c.Args().Slice(),
				Dir:           c.String("db"),
				Duration:      c.Duration("duration"),
				Clients:       c.Int("clients"),
				JSON:          c.Bool("json"),
				Baseline:      c.String("baseline"),
				To:            c.String("to"),
				NoSync:        c.Bool("nosync"),
				Scale:         c.Float64("scale"),
				CPUProfile:    c.String("cpuprofile"),
				BaselineConns: c.Int("baseline-conns"),
			}
			if c.Bool("smoke") {
				applySmoke(&cfg, c.IsSet("scale"), c.IsSet("duration"))
			}
			if err := checkBenchConfig(cfg); err != nil {
				return err
			}
			_, err := runBench(c.Context, cfg, c.App.Writer, benchProgress(c.App.ErrWriter))
			return err
		},
	}
}

// applySmoke shrinks a run to a few seconds: every code path, no
// meaningful numbers.
func applySmoke(cfg *benchConfig, scaleSet, durationSet bool) {
	if !scaleSet {
		cfg.Scale = 0.01
	}
	if !durationSet {
		cfg.Duration = 300 * time.Millisecond
	}
}

func checkBenchConfig(cfg benchConfig) error {
	for _, w := range cfg.Workloads {
		if !isBenchWorkload(w) {
			if strings.HasPrefix(w, "-") {
				return usageErrorf("bench: flag %s after the workloads: flags go first, as in 'evstore bench --json deposit'", w)
			}
			return usageErrorf("bench: unknown workload %q (known: %s)", w, strings.Join(benchWorkloads, ", "))
		}
	}
	switch {
	case cfg.Clients <= 0:
		return usageErrorf("bench: --clients must be at least 1, got %d", cfg.Clients)
	case cfg.Duration <= 0:
		return usageErrorf("bench: --duration must be positive, got %s", cfg.Duration)
	case cfg.Scale <= 0:
		return usageErrorf("bench: --scale must be positive, got %g", cfg.Scale)
	}
	return nil
}

func isBenchWorkload(w string) bool {
	for _, k := range benchWorkloads {
		if k == w {
			return true
		}
	}
	return false
}

// benchProgress is where a run reports which workload it is on: stderr if
// it is a terminal, so that a person waiting sees it while stdout holds only
// the table or the JSON, and scripts keep the rule that a command that
// succeeds writes nothing to stderr.
func benchProgress(stderr io.Writer) io.Writer {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return io.Discard
}
