package cli

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/replicate"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "rebuild a lost device's log from what PostgreSQL holds",
		UsageText: "evstore restore --from postgres://… --source NAME [--schema S] [--db PATH] [--json]",
		Description: "Rebuilds the local log of a replicated source into a new file (--db): the same store id,\n" +
			"positions, streams, versions, types, ids, times, metadata and idempotency keys, so that\n" +
			"'evstore replicate' then continues the same source (no --new-source, no duplicate, no gap)\n" +
			"and a request retried with a key from before the loss is still a duplicate. Payloads are\n" +
			"byte-exact from a frames source, JSON-equal from a rows source (times to the microsecond).\n" +
			"Refuses to overwrite a file. Work goes into PATH.restoring; an interrupted restore is\n" +
			"resumed by running it again. See docs/operations.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", EnvVars: []string{pgURLEnv}, Usage: "PostgreSQL connection `URL` (postgres://user:pass@host/db); its password is never printed"},
			&cli.StringFlag{Name: "source", Usage: "`NAME` of the source to rebuild (required)"},
			schemaFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object"},
			dbFlag(false),
		},
		Action: runRestore,
	}
}

func runRestore(c *cli.Context) error {
	if err := extraArgs(c, 0, "restore --from postgres://… --source NAME [--db PATH]"); err != nil {
		return err
	}
	url, err := pgURLFlag(c, "restore", "from")
	if err != nil {
		return err
	}
	if c.String("source") == "" {
		return usageErrorf("restore: --source NAME is required: the source to rebuild ('evstore status --to … --source NAME' shows one)")
	}
	path := dbPath(c)
	p := newProgress(c, "restore", false)
	info, err := replicate.Restore(c.Context, replicate.RestoreOptions{
		URL: url, Schema: c.String("schema"), Source: c.String("source"), Path: path, Progress: p.update,
	})
	p.finish()
	if err != nil {
		if errors.Is(err, replicate.ErrRestoreExists) {
			return failuref(err, "restore: %s exists: a restore never overwrites a log; pass another --db or move the file away", path)
		}
		if c.Context.Err() != nil {
			return failuref(err, "restore: interrupted: run the same command again to resume (%s.restoring holds the work so far)", path)
		}
		return pgFailure("restore", err)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, info)
	}
	fmt.Fprintf(c.App.Writer, "restored source %s (store %s, layout %s) into %s: positions 1..%d, %s\n",
		info.Source, info.StoreID, info.Layout, info.Path, info.Head, count(info.Keys, "idempotency key"))
	return nil
}
