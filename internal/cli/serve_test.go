package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
	"github.com/evstore/evstore/server"
)

// TestServe runs evstore serve, uses it, and stops it as SIGTERM would.
func TestServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- runDaemon(t, ctx, "serve", "--db", db) }()
	waitOwner(t, db, done)
	// A client other than the CLI: urfave/cli keeps global state, so two
	// CLI runs may not overlap in one process (TestThroughOwnerSameAsFile
	// covers the CLI through an owner).
	c := dialTest(t, db)
	if _, err := c.Exec(ctx, "counter.increment", json.RawMessage(`{"counter":"c"}`), ""); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(ctx); err != nil || st.Head != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	cancel()
	r := <-done
	if r.code != 0 || !strings.Contains(r.stderr, "serving") {
		t.Fatalf("serve: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(server.SocketPath(db)); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if head(t, db) != 1 {
		t.Fatal("the served command is not in the file")
	}
}

func TestServeUsage(t *testing.T) {
	db := tempDB(t)
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("0123456789abcdef0123"), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--http", ":0"}, "--http needs --token-file"},
		{[]string{"--token-file", short}, "--token-file applies to --http"},
		{[]string{"--http", ":0", "--token-file", short}, "use at least 16"},
		{[]string{"--http", ":0", "--token-file", filepath.Join(dir, "none")}, "cannot read --token-file"},
		{[]string{"--source", "x"}, "apply to --replicate-to"},
		{[]string{"--replicate-to", "nonsense://"}, "not a usable PostgreSQL URL"},
		{[]string{"extra"}, "serve"},
	} {
		runCLI(t, "", append([]string{"--db", db, "serve"}, tc.args...)...).want(t, 2, nil, []string{tc.says})
	}
	if runtime.GOOS != "windows" {
		runCLI(t, "", "--db", db, "serve", "--http", ":0", "--token-file", open).want(t, 2, nil, []string{"readable by other users", "chmod 600"})
	}
	noFile(t, db)
}

// TestServeReplicates runs serve with the replicator in-process: exec and
// status work beside it, and stopping ships what was committed.
func TestServeReplicates(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- runDaemon(t, ctx, "serve", "--db", db, "--replicate-to", url, "--schema", schema, "--source", "till-9")
	}()
	waitOwner(t, db, done)
	c := dialTest(t, db)
	for range 5 {
		if _, err := c.Exec(ctx, "counter.increment", json.RawMessage(`{"counter":"c"}`), ""); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := c.Status(ctx); err != nil || st.Extra["replication"] == nil {
		t.Fatalf("status without the replication: %+v, %v", st, err)
	}
	cancel() // as SIGTERM
	if r := <-done; r.code != 0 {
		t.Fatalf("serve exited %d: %s", r.code, r.stderr)
	}
	var pos int64
	if err := pgtest.Conn(t, url).QueryRow(context.Background(), "SELECT position FROM "+schema+".sources WHERE name = 'till-9'").Scan(&pos); err != nil || pos != 5 {
		t.Fatalf("PostgreSQL at %d (%v) after serve stopped, want 5", pos, err)
	}
}

// TestServeDefaultSource: without --source, serve replicates under the same
// default name as 'evstore replicate' (host name plus store id prefix), so
// cloned devices do not share a source.
func TestServeDefaultSource(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	s, err := local.Open(db, local.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := replicate.DefaultSource(s.ID())
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- runDaemon(t, ctx, "serve", "--db", db, "--replicate-to", url, "--schema", schema)
	}()
	waitOwner(t, db, done)
	cancel()
	if r := <-done; r.code != 0 {
		t.Fatalf("serve exited %d: %s", r.code, r.stderr)
	}
	var name string
	if err := pgtest.Conn(t, url).QueryRow(context.Background(), "SELECT name FROM "+schema+".sources").Scan(&name); err != nil || name != want {
		t.Fatalf("source %q (%v), want %q", name, err, want)
	}
}
