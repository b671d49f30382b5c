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
		Action: copyAction("compact", "compacted copy", false, (*local.Store).CompactFile),
	}
}
