package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write a verified copy of the database",
		ArgsUsage: "DEST",
		UsageText: "evstore backup [--force] [--json] DEST",
		Description: "Copies the database, as of one moment, to a temporary file next to DEST, fsyncs it, opens\n" +
			"it read-only and verifies it (as 'evstore verify' does), and only then renames it to DEST.\n" +
			"A plain cp of a database in use is not a backup: bbolt rewrites pages in place.\n" +
			"Opens the database read-only; it must not be held by another process (an application that\n" +
			"embeds evstore calls Store.BackupFile instead). See docs/operations.md.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "replace DEST if it exists"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object"},
			dbFlag(false),
		},
		Action: copyAction("backup", "backup", true, (*local.Store).BackupFile),
	}
}

// copyAction is the action of backup and compact: both take DEST, open the
// database read-only, write a verified copy with a progress bar (sized when
// the total is known ahead) and report it as label.
func copyAction(cmd, label string, sized bool, write func(*local.Store, context.Context, string, local.BackupOptions) (local.BackupInfo, error)) cli.ActionFunc {
	return func(c *cli.Context) (err error) {
		dest, err := destArg(c, cmd+" [--force] [--json] DEST")
		if err != nil {
			return err
		}
		store, err := openReadOnly(c)
		if err != nil {
			return err
		}
		defer closeStore(store, &err)
		p := newProgress(c, cmd, sized)
		info, err := write(store.Store, c.Context, dest, local.BackupOptions{Overwrite: c.Bool("force"), Progress: p.update})
		p.finish()
		if err != nil {
			return copyFailure(cmd, dest, err)
		}
		return printCopy(c, label, store, info)
	}
}

// destArg takes the one DEST argument of backup and compact.
func destArg(c *cli.Context, usage string) (string, error) {
	if !c.Args().Present() {
		return "", usageErrorf("%s: missing the DEST file: usage is 'evstore %s'", c.Command.Name, usage)
	}
	if err := extraArgs(c, 1, usage); err != nil {
		return "", err
	}
	return c.Args().First(), nil
}

func copyFailure(cmd, dest string, err error) error {
	switch {
	case errors.Is(err, local.ErrExists):
		return failuref(err, "%s: %v", cmd, err)
	case errors.Is(err, local.ErrBackupInvalid):
		return failuref(err, "%s: %v: nothing was written to %s; run 'evstore verify' on the database", cmd, err, dest)
	}
	return failuref(err, "%s to %s: %v: nothing was written", cmd, dest, err)
}

// copyResult is the --json form of a backup or compaction.
type copyResult struct {
	Path     string `json:"path"`
	StoreID  string `json:"store_id"`
	Bytes    int64  `json:"bytes"`
	Head     uint64 `json:"head"`
	Streams  uint64 `json:"streams"`
	Verified bool   `json:"verified"`
}

func printCopy(c *cli.Context, what string, store *cliStore, info local.BackupInfo) error {
	if c.Bool("json") {
		return writeJSON(c.App.Writer, copyResult{info.Path, store.ID(), info.Bytes, info.Head, info.Report.Streams, true})
	}
	fmt.Fprintf(c.App.Writer, "%s of store %s written to %s: %s, %s, %s, verified\n",
		what, store.ID(), info.Path, count(info.Head, "event"), count(info.Report.Streams, "stream"), byteSize(info.Bytes))
	return nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
