package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write the log (or a range of it) to a file of checked, compressed frames",
		ArgsUsage: "FILE|-",
		UsageText: "evstore export [--from POSITION] [--to POSITION] [--force] [--json] FILE|-",
		Description: "Writes positions --from..--to (default: all) as zstd frames between a header and a trailer,\n" +
			"each with checksums, to FILE (through a temporary file, renamed when complete) or to stdout (-).\n" +
			"'evstore import' reads it back with the same positions, versions, ids, times, metadata and\n" +
			"payload bytes. Opens the database read-only. The layout is in docs/format.md.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "from", Value: 1, Usage: "first global `POSITION`"},
			&cli.Uint64Flag{Name: "to", Usage: "last global `POSITION` (0: the head)"},
			&cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object (not with -)"},
			dbFlag(false),
		},
		Action: runExport,
	}
}

func runExport(c *cli.Context) (err error) {
	const usage = "export [--from POSITION] [--to POSITION] [--force] FILE|-"
	if !c.Args().Present() {
		return usageErrorf("export: missing the FILE (or - for stdout): usage is 'evstore %s'", usage)
	}
	if err := extraArgs(c, 1, usage); err != nil {
		return err
	}
	dest := c.Args().First()
	if to := c.Uint64("to"); to != 0 && to < c.Uint64("from") {
		return usageErrorf("export: --to %d is before --from %d", to, c.Uint64("from"))
	}
	if dest == "-" && c.Bool("json") {
		return usageErrorf("export: --json prints to stdout, which - uses for the file: write to a FILE")
	}
	if dest != "-" && !c.Bool("force") {
		if _, err := os.Lstat(dest); err == nil {
			return failuref(local.ErrExists, "export: %s exists: pass --force to replace it", dest)
		}
	}
	store, err := openReadOnly(c)
	if err != nil {
		return err
	}
	defer closeStore(store, &err)
	opts := local.ExportOptions{From: c.Uint64("from"), To: c.Uint64("to")}
	if dest == "-" {
		// stdout is the file: no progress, no result line.
		if _, err := store.Export(c.Context, c.App.Writer, opts); err != nil {
			return failuref(err, "export: %v", err)
		}
		return nil
	}
	p := newProgress(c, "export", false)
	opts.Progress = p.update
	info, err := exportFile(c, store.Store, dest, opts)
	p.finish()
	if err != nil {
		return failuref(err, "export to %s: %v: nothing was written", dest, err)
	}
	st, _ := os.Stat(dest)
	if c.Bool("json") {
		return writeJSON(c.App.Writer, struct {
			Path    string `json:"path"`
			StoreID string `json:"store_id"`
			From    uint64 `json:"from"`
			To      uint64 `json:"to"`
			Frames  int    `json:"frames"`
			Bytes   int64  `json:"bytes"`
		}{dest, store.ID(), info.From, info.To, info.Frames, st.Size()})
	}
	fmt.Fprintf(c.App.Writer, "exported positions %d..%d of store %s to %s: %s, %s\n", info.From, info.To, store.ID(), dest, count(info.Frames, "frame"), byteSize(st.Size()))
	return nil
}

// exportFile writes the export through a temporary file in dest's
// directory, fsynced and renamed: a failed export leaves nothing.
func exportFile(c *cli.Context, store *local.Store, dest string, opts local.ExportOptions) (info local.ExportInfo, err error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if info, err = store.Export(c.Context, f, opts); err != nil {
		return info, err
	}
	if err = f.Sync(); err != nil {
		return info, err
	}
	if err = f.Close(); err != nil {
		return info, err
	}
	return info, os.Rename(f.Name(), dest)
}
