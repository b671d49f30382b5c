// Command evstore is the command-line interface of evstore, an embedded
// event store: run commands against a local log, read it back, and
// replicate it to PostgreSQL. Everything but the process lives in
// internal/cli.
package main

import (
	"context"
	"os"

	"github.com/evstore/evstore/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}
