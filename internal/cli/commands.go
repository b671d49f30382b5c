package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/commands"
)

func commandsCommand(reg *commands.Registry) *cli.Command {
	return &cli.Command{
		Name:      "commands",
		Usage:     "list the commands exec can run, with their JSON arguments",
		UsageText: "evstore commands [--json]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per command"},
		},
		Action: func(c *cli.Context) error {
			if err := extraArgs(c, 0, "commands [--json]"); err != nil {
				return err
			}
			list, err := commandList(c, reg)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				for _, s := range list {
					if err := writeJSON(c.App.Writer, map[string]string{"name": s.Name, "args": s.Args, "summary": s.Summary}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\n\t%s\n", s.Name, s.Summary, s.Args)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, "\nRun one with: evstore exec NAME 'ARGS-JSON'   (fields marked ? are optional)")
			return err
		},
	}
}
