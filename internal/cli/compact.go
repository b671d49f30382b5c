package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/local"
)

func compactCommand() *cli.Command {
	return &cli.Command{
		Name:      "compact",
		Usage:     "write a verified copy of the database without free pages",
		ArgsUsage: "DEST",
		UsageText: "evstore compact [--force] [--json] DEST",
		Description: "bbolt files never shrink: space freed inside them is reused, not returned. This writes a copy\n" +
			"with every page full and none free, verified like a backup, to DEST. Replace the database with\n" +
			"it while nothing has it open. The database itself is opened read-only and not changed.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "replace DEST if it exists"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object"},
			dbFlag(false),
		},
		Action: func(c *cli.Context) (err error) {
			const usage = "compact [--force] [--json] DEST"
			dest, err := destArg(c, usage)
			if err != nil {
				return err
			}
			store, err := openReadOnly(c)
			if err != nil {
				return err
			}
			defer closeStore(store, &err)
			p := newProgress(c, "compact", false)
			info, err := store.CompactFile(c.Context, dest, local.BackupOptions{Overwrite: c.Bool("force"), Progress: p.update})
			p.finish()
			if err != nil {
				return copyFailure("compact", dest, err)
			}
			return printCopy(c, "compacted copy", store, info)
		},
	}
}
