package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/format"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "append the events of an export file to the database",
		ArgsUsage: "FILE|-",
		UsageText: "evstore import [--json] FILE|-",
		Description: "Reads a file written by 'evstore export' (or stdin, -) and appends its events with their\n" +
			"positions, versions, ids, times, metadata and payload bytes. The whole file is checked first:\n" +
			"a damaged file is refused with the number of the bad frame and nothing is imported. The file\n" +
			"must continue the log (into a new database: start at position 1); events already present (an\n" +
			"import run again) are checked by id and skipped. Creates the database if it does not exist.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object"},
			dbFlag(false),
		},
		Action: runImport,
	}
}

func runImport(c *cli.Context) (err error) {
	const usage = "import [--json] FILE|-"
	if !c.Args().Present() {
		return usageErrorf("import: missing the FILE (or - for stdin): usage is 'evstore %s'", usage)
	}
	if err := extraArgs(c, 1, usage); err != nil {
		return err
	}
	src := c.Args().First()
	var r io.ReadSeeker
	if src == "-" {
		// The file is read twice (check, then import): keep stdin in a
		// temporary file.
		tmp, err := os.CreateTemp("", "evstore-import-*")
		if err != nil {
			return failuref(err, "import: a temporary file for stdin: %v", err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := io.Copy(tmp, c.App.Reader); err != nil {
			return failuref(err, "import: reading stdin: %v", err)
		}
		r = tmp
	} else {
		f, err := os.Open(src)
		if err != nil {
			return failuref(err, "import: %v", err)
		}
		defer f.Close()
		r = f
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return failuref(err, "import: %v", err)
	}
	store, err := openStore(c, false)
	if err != nil {
		return err
	}
	defer closeStore(store, &err)
	p := newProgress(c, "import", false)
	info, err := store.ImportExport(c.Context, r, p.update)
	p.finish()
	if err != nil {
		if ee, ok := errors.AsType[*format.ExportError](err); ok {
			return failuref(err, "import: %s: %v: nothing was imported", src, ee)
		}
		if info.Imported == 0 {
			return failuref(err, "import: %s: %v: nothing was imported", src, err)
		}
		return failuref(err, "import: %s: %v: positions through %d were imported; run the import again to go on", src, err, info.From+info.Skipped+info.Imported-1)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, struct {
			StoreID  string `json:"store_id"`
			From     uint64 `json:"from"`
			To       uint64 `json:"to"`
			Imported uint64 `json:"imported"`
			Skipped  uint64 `json:"skipped"`
		}{store.ID(), info.From, info.To, info.Imported, info.Skipped})
	}
	fmt.Fprintf(c.App.Writer, "imported %s (positions %d..%d) into store %s", count(info.Imported, "event"), info.From, info.To, store.ID())
	if info.Skipped > 0 {
		fmt.Fprintf(c.App.Writer, "; %d already present were skipped", info.Skipped)
	}
	fmt.Fprintln(c.App.Writer)
	return nil
}
