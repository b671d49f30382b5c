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

// lockTimeoutFlag is the global --lock-timeout: how long a command waits
// for another process to release the database.
func lockTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "lock-timeout", EnvVars: []string{"EVSTORE_LOCK_TIMEOUT"}, Value: local.DefaultLockTimeout,
		Usage: "wait up to `DURATION` for another process that has the database open"}
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

// errEmptyDB marks an empty database file met by a reader.
var errEmptyDB = errors.New("the database file is empty")

// openStore opens the database named by --db for writing. With mustExist
// it refuses a missing file instead of creating an empty database, so that
// a mistyped path in a read is reported rather than silently "fixed".
//
// An empty file is a database no one has initialised yet: another exec
// may have just created it and be waiting for the lock to do so (bbolt
// creates the file before it locks it). exec therefore initialises it, as
// bbolt does; a reader must not write, so it gets errEmptyDB, which read
// and log report as an empty log.
func openStore(c *cli.Context, mustExist bool) (*cliStore, error) {
	return openDB(c, mustExist, false)
}

// openReadOnly opens the existing database named by --db for reading
// only: nothing is written to it (not even bbolt's bookkeeping), so a
// reader leaves the file's bytes as they are and works on a file it may
// not write. Any number of readers may share it, but not with a writer.
func openReadOnly(c *cli.Context) (*cliStore, error) { return openDB(c, true, true) }

func openDB(c *cli.Context, mustExist, readOnly bool) (*cliStore, error) {
	path := dbPath(c)
	info, statErr := os.Stat(path)
	empty := statErr == nil && info.Mode().IsRegular() && info.Size() == 0
	if mustExist {
		if errors.Is(statErr, fs.ErrNotExist) {
			return nil, failuref(statErr, "database %s does not exist: pass --db PATH (or set EVSTORE_DB), or create it by running 'evstore exec'", path)
		}
		if empty {
			return nil, failuref(errEmptyDB, "database %s is an empty file: it holds no events yet ('evstore exec' initialises it)", path)
		}
	}
	wait := c.Duration("lock-timeout") // the global flag, seen from the command
	if wait <= 0 {
		wait = local.DefaultLockTimeout
	}
	store, err := local.Open(path, local.Options{LockTimeout: wait, ReadOnly: readOnly})
	switch {
	case err == nil:
		return &cliStore{Store: store, path: path, created: errors.Is(statErr, fs.ErrNotExist), wasEmpty: empty}, nil
	case errors.Is(err, local.ErrLocked):
		return nil, failuref(err, "database %s is in use by another process: close it or pass another --db (waited %v; --lock-timeout waits longer)", path, wait)
	}
	if _, ok := errors.AsType[*local.OpenError](err); ok {
		return nil, failuref(err, "%v", err)
	}
	return nil, failuref(err, "cannot open database %s: %v", path, err)
}

// cliStore is a store the CLI opened, with what closeStore needs to know.
type cliStore struct {
	*local.Store
	path     string
	created  bool // the file did not exist before this command
	wasEmpty bool // the file was empty before this command
}

// closeStore closes store and reports a close failure only if nothing
// else failed, since the first error is the one to act on. A file this
// command created and wrote nothing to is removed again, and an empty file
// it initialised and wrote nothing to is emptied again: a command that
// failed ("nothing was written") leaves the path as it found it.
func closeStore(store *cliStore, err *error) {
	// Both while we still hold the file's lock, and only while it holds no
	// event, so no other process's work can be lost. A process waiting for
	// the lock of a removed file opens the path again (see local.Open).
	switch {
	case store.created && store.Head() == 0:
		os.Remove(store.path)
	case store.wasEmpty && store.Head() == 0:
		// Someone else's empty file: leave it as it was.
		os.Truncate(store.path, 0)
	}
	if cerr := store.Close(); cerr != nil && *err == nil {
		*err = failuref(cerr, "closing the database: %v", cerr)
	}
}
