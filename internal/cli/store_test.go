package cli

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/evstore/evstore/local"
	bolt "go.etcd.io/bbolt"
)

// TestDBNotAFile: --db naming a directory or a device says what it is and
// what to do, for writers and readers alike.
func TestDBNotAFile(t *testing.T) {
	for _, tt := range []struct{ db, want string }{
		{t.TempDir(), "it is a directory: name a file"},
		{os.DevNull, "it is a device: name a regular file"},
		{"/dev/zero", "it is a device: name a regular file"},
	} {
		for _, args := range [][]string{{"exec", "counter.increment", `{"counter":"c"}`}, {"log"}} {
			r := runCLI(t, "", append([]string{"--db", tt.db}, args...)...)
			r.want(t, 1, nil, []string{"database " + tt.db, tt.want})
		}
	}
}

// TestEmptyFile: an empty file is a database nobody has initialised yet
// (bbolt creates the file before it takes the lock, so a concurrent exec
// sees one). Readers report it as an empty log without writing; exec
// initialises it, and a failed exec leaves it empty.
func TestEmptyFile(t *testing.T) {
	db := tempDB(t)
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := func(when string) {
		t.Helper()
		if info, err := os.Stat(db); err != nil || info.Size() != 0 {
			t.Fatalf("%s: the file is no longer empty (%v)", when, err)
		}
	}
	runCLI(t, "", "--db", db, "log").want(t, 0, nil, []string{"no events from position 1 (the log ends at 0; " + db + " is an empty file)"})
	runCLI(t, "", "--db", db, "read", "s").want(t, 0, nil, []string{"stream s has no events"})
	runCLI(t, "", "--db", db, "status").want(t, 1, nil, []string{"is an empty file: it holds no events yet"})
	empty("readers")
	runCLI(t, "", "--db", db, "exec", "bank.deposit", `{"account":"none","amount":1}`).want(t, 1, nil, []string{"nothing was written"})
	empty("a failed exec")
	runCLI(t, "", "--db", db, "exec", "counter.increment", `{"counter":"c"}`).want(t, 0, []string{"at position 1"}, nil)
	if head(t, db) != 1 {
		t.Fatal("exec did not initialise the empty file")
	}
}

// TestDamagedAndNewerDatabases: a file whose meta pages are both damaged
// is called damaged (restore a backup); one from a newer evstore asks for
// an upgrade.
func TestDamagedAndNewerDatabases(t *testing.T) {
	damaged := tempDB(t)
	mustExec(t, damaged, [2]string{"counter.increment", `{"counter":"c"}`})
	f, err := os.OpenFile(damaged, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 8192)
	for i := range garbage {
		garbage[i] = 0xA5
	}
	f.WriteAt(garbage, 0)
	f.Close()
	runCLI(t, "", "--db", damaged, "log").want(t, 1, nil, []string{"looks like a damaged evstore database: restore it from a backup"})

	newer := tempDB(t)
	mustExec(t, newer, [2]string{"counter.increment", `{"counter":"c"}`})
	db, err := bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), binary.BigEndian.AppendUint32(nil, 99))
	})
	db.Close()
	r := runCLI(t, "", "--db", newer, "exec", "counter.increment", `{"counter":"c"}`)
	r.want(t, 1, nil, []string{"written by a newer version of evstore", "upgrade evstore"})
}

// Many execs at once are tested with real processes in
// integration/cli_lock_test.go: urfave/cli keeps flag state in globals, so
// Run cannot run concurrently in one process.

// TestLockTimeoutFlag: --lock-timeout (or EVSTORE_LOCK_TIMEOUT) sets how
// long a command waits for the lock, and the refusal says how long it was.
func TestLockTimeoutFlag(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	store, err := local.Open(db, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runCLI(t, "", "--lock-timeout", "20ms", "--db", db, "log").want(t, 1, nil, []string{"is in use by another process", "(waited 20ms; --lock-timeout waits longer)"})
	t.Setenv("EVSTORE_LOCK_TIMEOUT", "30ms")
	runCLI(t, "", "--db", db, "exec", "counter.increment", `{"counter":"c"}`).want(t, 1, nil, []string{"(waited 30ms;"})
}
