package cli

import (
	"encoding/binary"
	"os"
	"testing"

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

// TestEmptyFileIsNoDatabase: every command, exec included, refuses an
// empty file the same way, and leaves it empty.
func TestEmptyFileIsNoDatabase(t *testing.T) {
	db := tempDB(t)
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"exec", "counter.increment", `{"counter":"c"}`}, {"log"}, {"read", "s"}} {
		runCLI(t, "", append([]string{"--db", db}, args...)...).want(t, 1, nil, []string{"is an empty file, not an evstore database", "remove the file"})
		if info, err := os.Stat(db); err != nil || info.Size() != 0 {
			t.Fatalf("%v changed the empty file: %v", args, err)
		}
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
