package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	return &cli.StringFlag{Name: "source", Usage: "`NAME` of this log in PostgreSQL", DefaultText: "the host name"}
}

func schemaFlag() cli.Flag {
	return &cli.StringFlag{Name: "schema", Value: replicate.DefaultSchema, Usage: "PostgreSQL `SCHEMA` holding evstore's tables"}
}

func pgURL(c *cli.Context, cmd string) (string, error) {
	u := c.String("to")
	if u == "" {
		return "", usageErrorf("%s: --to postgres://… is required (or set %s)", cmd, pgURLEnv)
	}
	// A malformed URL is the caller's typo, not a failure: say so before
	// anything is opened.
	if _, err := pgx.ParseConfig(u); err != nil {
		return "", usageErrorf("%s: --to is not a usable PostgreSQL URL (%v): expected postgres://user:password@host:port/database", cmd, err)
	}
	return u, nil
}

func replicateCommand() *cli.Command {
	return &cli.Command{
		Name:  "replicate",
		Usage: "copy the log to PostgreSQL, exactly once and in order, and keep following it",
		UsageText: "evstore replicate --to postgres://… [--source NAME] [--once] [--layout rows|frames] [--schema S]\n" +
			"   [--batch-events N] [--batch-bytes N] [--flush-interval D] [--metrics-addr :9464] [--new-source]",
		Description: "Ships every event to PostgreSQL under a source name (default: the host name), catching up in\n" +
			"large batches, then following the log and shipping new events within --flush-interval.\n" +
			"Runs until interrupted (SIGINT/SIGTERM end it cleanly, exit 0) or, with --once, until caught up.\n" +
			"Network and server failures are retried with backoff (1s to 5m) without losing or repeating\n" +
			"an event. A source owned by another log, or ahead of this one, is refused: --new-source then\n" +
			"archives the old rows as NAME@<time> and starts afresh. Layout rows: one row per event, ready\n" +
			"for SQL; frames: compressed batches, far smaller, turned into rows by 'evstore expand'.\n" +
			"See docs/replication.md.",
		Flags: []cli.Flag{
			toFlag(true),
			sourceFlag(),
			schemaFlag(),
			&cli.BoolFlag{Name: "once", Usage: "stop when PostgreSQL holds everything the log held at start"},
			&cli.StringFlag{Name: "layout", Value: string(replicate.LayoutRows), Usage: "`rows` (one row per event) or frames (compressed batches); fixed when a source is created"},
			&cli.IntFlag{Name: "batch-events", Value: replicate.DefaultBatchEvents, Usage: "at most `N` events per transaction"},
			&cli.IntFlag{Name: "batch-bytes", Value: replicate.DefaultBatchBytes, Usage: "at most about `N` bytes per transaction"},
			&cli.DurationFlag{Name: "flush-interval", Value: replicate.DefaultFlushInterval, Usage: "send a partial batch after `D`"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics on `ADDR` (e.g. :9464) at /metrics"},
			&cli.BoolFlag{Name: "new-source", Usage: "if the source belongs to another log or is ahead of this one, archive it and start afresh"},
			dbFlag(false),
		},
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
		Once: c.Bool("once"), NewSource: c.Bool("new-source"),
		Logger: logger, Metrics: &m,
	}
	if opts.Source == "" {
		if opts.Source, err = os.Hostname(); err != nil {
			return usageErrorf("replicate: no host name to use as the source name: pass --source NAME")
		}
	}
	if addr := c.String("metrics-addr"); addr != "" {
		stop, err := serveMetrics(addr, opts.Source, &m)
		if err != nil {
			return failuref(err, "replicate: metrics on %s: %v", addr, err)
		}
		defer stop()
	}
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

// serveMetrics serves the replicator's metrics for Prometheus at /metrics.
// The values live in replicate.Metrics (plain atomics, so the library has
// no Prometheus dependency); each series reads them when scraped.
func serveMetrics(addr, source string, m *replicate.Metrics) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: metricsHandler(source, m), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

func metricsHandler(source string, m *replicate.Metrics) http.Handler {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"source": source}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "evstore_replicate_" + name, Help: help, ConstLabels: labels}, f))
	}
	counter := func(name, help string, v *atomic.Uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "evstore_replicate_" + name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) }))
	}
	gauge("head_position", "Last position in the local log.", func() float64 { return float64(m.HeadPosition.Load()) })
	gauge("replicated_position", "Last position committed to PostgreSQL.", func() float64 { return float64(m.ReplicatedPosition.Load()) })
	gauge("lag_events", "Committed events PostgreSQL does not have yet.", func() float64 { return float64(m.LagEvents()) })
	gauge("lag_seconds", "Age of the oldest event PostgreSQL does not have yet.", func() float64 { return m.LagSeconds(time.Now()) })
	gauge("last_success_timestamp_seconds", "When a batch last committed (Unix time), 0 before the first.", func() float64 { return float64(m.LastSuccess.Load()) / 1e9 })
	counter("batches_total", "Batches committed to PostgreSQL.", &m.Batches)
	counter("events_total", "Events committed to PostgreSQL.", &m.Events)
	counter("bytes_sent_total", "Bytes written to PostgreSQL connections, protocol included.", &m.BytesSent)
	counter("errors_total", "Failed replication attempts.", &m.Errors)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
