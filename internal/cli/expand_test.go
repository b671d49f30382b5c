package cli

import (
	"context"
	"testing"

	"github.com/evstore/evstore/replicate/pgtest"
)

func TestExpandUsage(t *testing.T) {
	runCLI(t, "", "expand", "--once").want(t, 2, nil, []string{"--to postgres://… is required"})
	runCLI(t, "", "expand", "--to", "postgres://x/y", "--poll-interval", "0s").want(t, 2, nil, []string{"--poll-interval must be positive"})
}

// TestExpandFramesIntoRows ships the bank example as frames, then expands
// them: SQL users see the same rows as with the rows layout.
func TestExpandFramesIntoRows(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	if r := runCLI(t, "", "--db", db, "exec", "-f", "../../examples/bank.jsonl"); r.code != 0 {
		t.Fatalf("example: %s", r.stderr)
	}
	if r := runDaemon(t, context.Background(), "--db", db, "replicate", "--once", "--layout", "frames", "--to", url, "--schema", schema, "--source", "gw"); r.code != 0 {
		t.Fatalf("replicate frames exited %d: %s", r.code, r.stderr)
	}
	conn := pgtest.Conn(t, url)
	count := func(table string) (n int64) {
		t.Helper()
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+schema+"."+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count("frames") == 0 || count("events") != 0 {
		t.Fatalf("frames layout wrote %d frames, %d rows", count("frames"), count("events"))
	}
	for range 2 { // twice: the second run has nothing left to do
		if r := runDaemon(t, context.Background(), "expand", "--once", "--to", url, "--schema", schema); r.code != 0 {
			t.Fatalf("expand exited %d: %s", r.code, r.stderr)
		}
		if n := count("events"); n != int64(head(t, db)) {
			t.Fatalf("expanded %d rows, the log has %d", n, head(t, db))
		}
	}
}
