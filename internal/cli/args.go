package cli

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// isFlagOf reports whether arg ("-x", "--x" or "--x=v") names a flag of cmd.
func isFlagOf(cmd *cli.Command, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	if !strings.HasPrefix(arg, "-") || name == "" {
		return false
	}
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// extraArgs rejects positional arguments beyond want. urfave stops parsing
// flags at the first argument, so "read STREAM --json" leaves --json as an
// argument; say so rather than "too many arguments".
func extraArgs(c *cli.Context, want int, usage string) error {
	args := c.Args().Slice()
	if len(args) <= want {
		return nil
	}
	// Any argument that names one of the command's flags was meant as one,
	// wherever it stands; past the expected arguments, anything that looks
	// like a flag was.
	for i, a := range args {
		if isFlagOf(c.Command, a) || (i >= want && strings.HasPrefix(a, "-") && len(a) > 1) {
			return usageErrorf("%s: flag %s after the arguments: flags go first, as in 'evstore %s'", c.Command.Name, a, usage)
		}
	}
	return usageErrorf("%s: too many arguments (%d): usage is 'evstore %s'", c.Command.Name, len(args), usage)
}
