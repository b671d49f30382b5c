package cli

import (
	"errors"
	"io/fs"
	"os"
	"slices"

	"github.com/evstore/evstore/local"
	"github.com/urfave/cli/v2"
)

// defaultDB is the database a command uses without --db or EVSTORE_DB.
const defaultDB = "./evstore.db"

// dbFlag is the --db flag. The global one reads EVSTORE_DB and has the
// default; a command's own copy lets "evstore exec --db x" work too, where
// urfave would otherwise reject a global flag after the command name.
func dbFlag(global bool) cli.Flag {
	f := &cli.StringFlag{Name: "db", Usage: "database file `PATH`"}
	if global {
		f.EnvVars = []string{"EVSTORE_DB"}
		f.Value = defaultDB
	} else {
		f.DefaultText = "the global --db"
	}
	return f
}

// dbPath returns the innermost --db that was set (on the command line or,
// for the global flag, by EVSTORE_DB), else the default.
func dbPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc.Command != nil && slices.Contains(cc.LocalFlagNames(), "db") {
			if p := cc.String("db"); p != "" {
				return p
			}
		}
	}
	return defaultDB
}

// openStore opens the database named by --db. With mustExist it refuses a
// missing file instead of creating an empty database, so that a mistyped
// path in a read is reported rather than silently "fixed".
func openStore(c *cli.Context, mustExist bool) (*cliStore, error) {
	path := dbPath(c)
	info, statErr := os.Stat(path)
	if mustExist && errors.Is(statErr, fs.ErrNotExist) {
		return nil, failuref(statErr, "database %s does not exist: pass --db PATH (or set EVSTORE_DB), or create it by running 'evstore exec'", path)
	}
	// An empty file is no database to any command: a reader must not
	// write, and exec must not turn a file someone else made (a mistyped
	// --db, a placeholder) into one.
	if statErr == nil && info.Mode().IsRegular() && info.Size() == 0 {
		return nil, failuref(local.ErrNotStore, "database %s is an empty file, not an evstore database: check --db, or remove the file and let 'evstore exec' create the database", path)
	}
	store, err := local.Open(path, local.Options{})
	switch {
	case err == nil:
		return &cliStore{Store: store, path: path, created: errors.Is(statErr, fs.ErrNotExist)}, nil
	case errors.Is(err, local.ErrLocked):
		return nil, failuref(err, "database %s is in use by another process: close it or pass another --db", path)
	}
	if _, ok := errors.AsType[*local.OpenError](err); ok {
		return nil, failuref(err, "%v", err)
	}
	return nil, failuref(err, "cannot open database %s: %v", path, err)
}

// cliStore is a store the CLI opened, with what closeStore needs to know.
type cliStore struct {
	*local.Store
	path    string
	created bool // the file did not exist before this command
}

// closeStore closes store and reports a close failure only if nothing
// else failed, since the first error is the one to act on. A file this
// command created and wrote nothing to is removed again: a command that
// failed ("nothing was written") leaves no empty database behind.
func closeStore(store *cliStore, err *error) {
	if store.created && store.Head() == 0 {
		// Unlinked while we still hold the file's lock, so no other
		// process can have written to it in between.
		os.Remove(store.path)
	}
	if cerr := store.Close(); cerr != nil && *err == nil {
		*err = failuref(cerr, "closing the database: %v", cerr)
	}
}
