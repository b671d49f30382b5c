package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/evstore/evstore/replicate"
)

// pgURLEnv lets the PostgreSQL URL (and its password) stay out of the
// process list and shell history.
const pgURLEnv = "EVSTORE_PG_URL"

func toFlag(required bool) cli.Flag {
	usage := "PostgreSQL connection `URL` (postgres://user:pass@host/db); its password is never printed"
	if !required {
		usage += "; without it only the local log is shown"
	}
	return &cli.StringFlag{Name: "to", EnvVars: []string{pgURLEnv}, Usage: usage}
}

func sourceFlag() cli.Flag {
	return &cli.StringFlag{Name: "source", Usage: "`NAME` of this log in PostgreSQL", DefaultText: "HOST-xxxxxxxx: the host name and the store id's first 8 hex digits"}
}

func schemaFlag() cli.Flag {
	return &cli.StringFlag{Name: "schema", Value: replicate.DefaultSchema, Usage: "PostgreSQL `SCHEMA` holding evstore's tables"}
}

func pgURL(c *cli.Context, cmd string) (string, error) { return pgURLFlag(c, cmd, "to") }

// pgURLFlag is the PostgreSQL URL of flag (--to, --from, --replicate-to),
// required and checked.
func pgURLFlag(c *cli.Context, cmd, flag string) (string, error) {
	u := c.String(flag)
	if u == "" {
		return "", usageErrorf("%s: --%s postgres://… is required (or set %s)", cmd, flag, pgURLEnv)
	}
	// A malformed URL is the caller's typo, not a failure: say so before
	// anything is opened.
	if _, err := pgx.ParseConfig(u); err != nil {
		return "", usageErrorf("%s: --%s is not a usable PostgreSQL URL (%v): expected postgres://user:password@host:port/database", cmd, flag, err)
	}
	return u, nil
}

// layoutFlag is --layout of replicate and serve.
func layoutFlag() cli.Flag {
	return &cli.StringFlag{Name: "layout", Value: string(replicate.LayoutRows), Usage: "`rows` (one row per event) or frames (compressed batches); fixed when a source is created"}
}

func replicateCommand() *cli.Command {
	return &cli.Command{
		Name:  "replicate",
		Usage: "copy the log to PostgreSQL, exactly once and in order, and keep following it",
		UsageText: "evstore replicate --to postgres://… [--source NAME] [--once [--retry-for D]] [--layout rows|frames] [--schema S]\n" +
			"   [--batch-events N] [--batch-bytes N] [--flush-interval D] [--metrics-addr :9464] [--new-source [--take-over]]",
		Description: "Ships every event to PostgreSQL under a source name (default: the host name and the store id's\n" +
			"first 8 hex digits), catching up in large batches, then following the log and shipping new events\n" +
			"within --flush-interval. Runs until interrupted (SIGINT/SIGTERM end it cleanly, exit 0) or, with\n" +
			"--once, until caught up (exit 0), interrupted (exit 1) or failing for --retry-for (exit 1).\n" +
			"Network and server failures are retried with backoff (1s to 5m), the server probed every second,\n" +
			"without losing or repeating an event; errors no retry can fix exit 1 at once. A source owned by\n" +
			"another log, or ahead of this one, is refused: --new-source then archives the old rows as\n" +
			"NAME@<time> and starts afresh, unless another log advanced the source within the last hour\n" +
			"(--take-over archives it anyway). Layout rows: one row per event, ready for SQL; frames:\n" +
			"compressed batches, far smaller, turned into rows by 'evstore expand'. See docs/replication.md.",
		Flags: append([]cli.Flag{
			toFlag(true),
			sourceFlag(),
			schemaFlag(),
			&cli.BoolFlag{Name: "once", Usage: "stop when PostgreSQL holds everything the log held at start"},
			&cli.DurationFlag{Name: "retry-for", Value: replicate.DefaultRetryFor, Usage: "with --once, give up (exit 1) after failing for `D`; 0: retry forever"},
			layoutFlag(),
			&cli.IntFlag{Name: "batch-events", Value: replicate.DefaultBatchEvents, Usage: "at most `N` events per transaction"},
			&cli.IntFlag{Name: "batch-bytes", Value: replicate.DefaultBatchBytes, Usage: "at most about `N` bytes per transaction"},
			&cli.DurationFlag{Name: "flush-interval", Value: replicate.DefaultFlushInterval, Usage: "send a partial batch after `D`"},
			&cli.DurationFlag{Name: "idle-timeout", Value: replicate.DefaultIdleTimeout, Usage: "close the PostgreSQL connection after `D` with nothing to ship (reconnect for the next batch); 0: keep it open"},
			&cli.DurationFlag{Name: "heartbeat", Value: replicate.DefaultHeartbeat, Usage: "while idle, record the device's head and the time in the source row every `D` (evstore fleet)"},
			&cli.BoolFlag{Name: "new-source", Usage: "if the source belongs to another log or is ahead of this one, archive it and start afresh"},
			&cli.BoolFlag{Name: "take-over", Usage: "with --new-source, archive the source even if another log advanced it within the last hour"},
			dbFlag(false),
		}, metricsFlags()...),
		Action: runReplicate,
	}
}

func runReplicate(c *cli.Context) (err error) {
	const usage = "replicate --to postgres://… [flags]"
	if err := extraArgs(c, 0, usage); err != nil {
		return err
	}
	url, err := pgURL(c, "replicate")
	if err != nil {
		return err
	}
	layout, err := replicate.ParseLayout(c.String("layout"))
	if err != nil {
		return usageErrorf("replicate: %v", err)
	}
	if c.Int("batch-events") <= 0 || c.Int("batch-bytes") <= 0 || c.Duration("flush-interval") <= 0 {
		return usageErrorf("replicate: --batch-events, --batch-bytes and --flush-interval must be positive")
	}
	if c.Duration("idle-timeout") < 0 || c.Duration("heartbeat") <= 0 {
		return usageErrorf("replicate: --heartbeat must be positive and --idle-timeout not negative (0 keeps the connection open)")
	}
	if c.Duration("retry-for") < 0 {
		return usageErrorf("replicate: --retry-for must not be negative (0 retries forever)")
	}
	if c.IsSet("retry-for") && !c.Bool("once") {
		return usageErrorf("replicate: --retry-for only applies with --once (following the log retries forever)")
	}
	if c.Bool("take-over") && !c.Bool("new-source") {
		return usageErrorf("replicate: --take-over only applies with --new-source")
	}
	retryFor := c.Duration("retry-for")
	if retryFor == 0 {
		retryFor = -1 // the library's "forever"
	}
	store, err := openStore(c, true)
	if err != nil {
		return err
	}
	defer closeStore(store, &err)

	stderr := c.App.ErrWriter
	tty := isTerminal(stderr)
	level := slog.LevelInfo
	if tty {
		level = slog.LevelWarn // the progress bar says the rest
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var m replicate.Metrics
	opts := replicate.Options{
		URL: url, Source: c.String("source"), Schema: c.String("schema"), Layout: layout,
		BatchEvents: c.Int("batch-events"), BatchBytes: c.Int("batch-bytes"), FlushInterval: c.Duration("flush-interval"),
		Once: c.Bool("once"), NewSource: c.Bool("new-source"), TakeOver: c.Bool("take-over"),
		Logger: logger, Metrics: &m, HeartbeatInterval: c.Duration("heartbeat"), IdleTimeout: c.Duration("idle-timeout"),
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = -1 // the library's "keep it open"
	}
	if opts.Once {
		opts.RetryFor = retryFor
	}
	stopMetrics, err := startMetrics(c, "replicate", store.Store, &m)
	if err != nil {
		return err
	}
	defer stopMetrics()
	if !opts.Once {
		// Following holds the file for long: serve it to other processes.
		defer serveOwner(c.Context, store.Store, logger)()
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	var wg sync.WaitGroup
	if tty {
		bar := newReplicateBar(stderr)
		opts.Progress = bar.update
		defer bar.finish()
	} else {
		wg.Go(func() { logProgress(ctx, logger, &m, 5*time.Second) })
	}
	err = replicate.Run(ctx, store.Store, opts)
	cancel()
	wg.Wait()
	if err != nil {
		return pgFailure("replicate", err)
	}
	return nil
}

// pgFailure words a failure of a PostgreSQL-facing command; a server that
// cannot be reached gets a hint, since that is the usual operator mistake.
func pgFailure(cmd string, err error) error {
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return failuref(err, "%s: cannot connect to PostgreSQL: %v: check that the server is running and that --to is right", cmd, err)
	}
	return failuref(err, "%s: %v", cmd, err)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// replicateBar draws catch-up progress on a terminal: events, rate, ETA.
// Its total grows with the log, so in follow mode it keeps tracking.
type replicateBar struct {
	w   io.Writer
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newReplicateBar(w io.Writer) *replicateBar { return &replicateBar{w: w} }

func (b *replicateBar) update(p replicate.ProgressInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	total, done := int64(p.Head-p.Start), int64(p.Position-p.Start)
	if p.Head < p.Start || p.Position < p.Start {
		total, done = 0, 0
	}
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(max(total, 1),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription("replicating "+p.Source),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
	}
	if total > b.bar.GetMax64() {
		b.bar.ChangeMax64(total)
	}
	b.bar.Set64(done)
}

func (b *replicateBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.Exit()
		fmt.Fprintln(b.w)
	}
}

// logProgress writes one line every interval while there is something to
// report, for logs and pipes where a progress bar would be noise.
func logProgress(ctx context.Context, log *slog.Logger, m *replicate.Metrics, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := m.ReplicatedPosition.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			pos := m.ReplicatedPosition.Load()
			lag := m.LagEvents()
			if pos == last && lag == 0 {
				continue // idle and caught up: nothing to say
			}
			rate := float64(pos-last) / now.Sub(lastAt).Seconds()
			log.Info("replication progress", "position", pos, "head", m.HeadPosition.Load(),
				"lag_events", lag, "lag_seconds", fmt.Sprintf("%.1f", m.LagSeconds(now)), "events_per_second", fmt.Sprintf("%.0f", rate))
			last, lastAt = pos, now
		}
	}
}
