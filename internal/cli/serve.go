package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/server"
)

// drainTimeout bounds the last replication pass when serve stops.
const drainTimeout = 10 * time.Second

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "hold the database and serve it to other processes (CLI, HTTP clients), optionally replicating it",
		UsageText: "evstore serve [--db PATH] [--socket PATH] [--http ADDR --token-file F]\n" +
			"   [--replicate-to postgres://… --source NAME [--schema S] [--layout rows|frames]] [--metrics-addr ADDR]",
		Description: "Opens the database (creating it if needed) and serves the HTTP/JSON API of docs/api.md on a Unix\n" +
			"socket beside it (PATH.sock, mode 0600). While it runs, evstore exec, read, log, status, stats,\n" +
			"streams, tail and commands on the same --db go through it. --http also serves the API on TCP (a port alone binds\n" +
			"127.0.0.1), always behind the bearer token read from --token-file. --replicate-to runs the\n" +
			"replicator in this process. SIGINT/SIGTERM stop it cleanly: requests in flight finish, the\n" +
			"replicator ships what is committed (for at most 10s), then it exits 0.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "socket", Usage: "serve on the Unix socket `PATH` (the evstore CLI looks for the default only)", DefaultText: "the database path + .sock"},
			&cli.StringFlag{Name: "http", Usage: "also serve on TCP `ADDR` (e.g. :8080 for 127.0.0.1:8080, or 0.0.0.0:8080); needs --token-file"},
			&cli.StringFlag{Name: "token-file", Usage: "read the bearer token TCP clients must send from `FILE` (mode 0600)"},
			&cli.StringFlag{Name: "replicate-to", Usage: "replicate to PostgreSQL `URL` while serving"},
			sourceFlag(),
			schemaFlag(),
			layoutFlag(),
			dbFlag(false),
		}, metricsFlags()...),
		Action: runServe,
	}
}

func runServe(c *cli.Context) (err error) {
	if err := extraArgs(c, 0, "serve [flags]"); err != nil {
		return err
	}
	opts := server.Options{Socket: c.String("socket"), TCPAddr: c.String("http")}
	switch {
	case opts.TCPAddr != "" && c.String("token-file") == "":
		return usageErrorf("serve: --http needs --token-file FILE: TCP clients must authenticate (put a long random token in FILE, mode 0600)")
	case opts.TCPAddr == "" && c.String("token-file") != "":
		return usageErrorf("serve: --token-file applies to --http, which is not set")
	case opts.TCPAddr != "":
		if opts.Token, err = readToken("serve", "token-file", c.String("token-file")); err != nil {
			return err
		}
	}
	var ropts *replicate.Options
	if c.String("replicate-to") != "" {
		url, err := pgURLFlag(c, "serve", "replicate-to")
		if err != nil {
			return err
		}
		layout, err := replicate.ParseLayout(c.String("layout"))
		if err != nil {
			return usageErrorf("serve: %v", err)
		}
		// An empty Source lets replicate.Run pick the same default as
		// 'evstore replicate' (host name plus store id prefix).
		ropts = &replicate.Options{URL: url, Source: c.String("source"), Schema: c.String("schema"), Layout: layout}
	} else if c.IsSet("source") || c.IsSet("layout") {
		return usageErrorf("serve: --source and --layout apply to --replicate-to, which is not set")
	}

	store, err := openStore(c, false)
	if err != nil {
		return err
	}
	defer closeStore(store, &err)
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts.Logger = logger

	var m replicate.Metrics
	if ropts != nil {
		ropts.Logger, ropts.Metrics = logger, &m
		opts.Status = func(context.Context) map[string]any {
			return map[string]any{"replication": map[string]any{
				"source": m.Source(), "replicated_position": m.ReplicatedPosition.Load(),
				"lag_events": m.LagEvents(), "lag_seconds": m.LagSeconds(time.Now()),
			}}
		}
	}
	srv, err := server.Listen(store.Store, opts)
	if err != nil {
		return serveFailure(err)
	}
	var rm *replicate.Metrics
	if ropts != nil {
		rm = &m
	}
	stopMetrics, err := startMetrics(c, "serve", store.Store, rm)
	if err != nil {
		return err
	}
	defer stopMetrics()
	logger.Info("serving", "db", store.Path(), "addrs", addrList(srv))

	// The replicator follows the log until serve is asked to stop.
	follow, stopFollow := context.WithCancel(context.Background())
	defer stopFollow()
	var wg sync.WaitGroup
	var rerr error
	if ropts != nil {
		wg.Go(func() {
			rerr = replicate.Run(follow, store.Store, *ropts)
			if rerr != nil && follow.Err() == nil {
				// Serving goes on: the log keeps taking commands, and the
				// next start resumes replication. The exit code reports it.
				logger.Error("replication stopped; serving continues", "error", rerr)
			}
		})
	}
	serr := srv.Serve(c.Context) // returns after in-flight requests finished
	stopFollow()
	wg.Wait()
	if ropts != nil && rerr == nil {
		// Ship what was committed before the last request ended, within a
		// bound: a PostgreSQL that is down must not hold the stop forever.
		drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
		last := *ropts
		last.Once = true
		rerr = replicate.Run(drain, store.Store, last)
		cancel()
		if errors.Is(rerr, context.DeadlineExceeded) {
			logger.Warn("replication not caught up when stopping; the next run resumes", "replicated_position", m.ReplicatedPosition.Load(), "head", store.Head())
			rerr = nil
		}
	}
	switch {
	case serr != nil:
		return serveFailure(serr)
	case rerr != nil && !errors.Is(rerr, context.Canceled):
		return pgFailure("serve: replicate", rerr)
	}
	return nil
}

func serveFailure(err error) error {
	return failuref(err, "serve: %v", err)
}

func addrList(srv *server.Server) string {
	var out []string
	for _, a := range srv.Addrs() {
		out = append(out, a.String())
	}
	return strings.Join(out, ", ")
}

// readToken reads a token file: one line, not readable by others.
func readToken(cmd, flag, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", usageErrorf("%s: cannot read --%s %s: %v", cmd, flag, path, errors.Unwrap(err))
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", usageErrorf("%s: --%s %s is readable by other users (mode %v): run 'chmod 600 %s'", cmd, flag, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageErrorf("%s: cannot read --%s %s: %v", cmd, flag, path, errors.Unwrap(err))
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", usageErrorf("%s: --%s %s is empty: put a long random token in it", cmd, flag, path)
	case len(tok) < 16:
		return "", usageErrorf("%s: the token in %s is %d characters: use at least 16 (e.g. 'openssl rand -hex 32 > %s')", cmd, path, len(tok), path)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", usageErrorf("%s: the token in %s contains white space: it must be one word", cmd, path)
	}
	return tok, nil
}

// serveOwner serves store on its socket until the returned stop is called,
// for commands that hold the file for long (replicate following the log).
// A socket that cannot be served is logged, not fatal: the command's own
// work matters more.
func serveOwner(ctx context.Context, store *local.Store, logger *slog.Logger) (stop func()) {
	srv, err := server.Listen(store, server.Options{Logger: logger})
	if err != nil {
		logger.Warn("not serving other processes; evstore commands on this database will be refused while this runs", "error", err)
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
