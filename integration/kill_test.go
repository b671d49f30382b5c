package integration

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestKilledReplicatorLosesNothing SIGKILLs a replicator process a dozen
// times at random moments while it appends new events and ships them (the
// helper in testdata/replicator does both, since the log's file lock admits
// one process). Kills land mid-append, mid-COPY and mid-commit. After a final
// catch-up PostgreSQL must hold exactly the log: no duplicates, no gaps,
// same order.
func TestKilledReplicatorLosesNothing(t *testing.T) {
	url, schema := pgtest.Schema(t)
	dir := t.TempDir()
	bin := buildBin(t, "./testdata/replicator")
	db := filepath.Join(dir, "events.db")
	conn := pgtest.Conn(t, url)
	ctx := context.Background()

	const kills = 12
	var positions []int64
	for i := range kills {
		var out bytes.Buffer
		cmd := exec.Command(bin, "-db", db, "-url", url, "-schema", schema, "-source", "victim",
			"-append-every", "5ms", "-append-batch", "25")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		alive := time.Duration(200+rand.IntN(600)) * time.Millisecond
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			t.Fatalf("kill %d: the replicator exited by itself (%v):\n%s", i, err, out.String())
		case <-time.After(alive):
		}
		cmd.Process.Kill() // SIGKILL: no deferred cleanup, no graceful close
		<-exited
		var pos int64
		conn.QueryRow(ctx, "SELECT coalesce((SELECT position FROM "+ident(schema)+".sources WHERE name = 'victim'), 0)").Scan(&pos)
		positions = append(positions, pos)
	}
	// A committed batch is never undone: PostgreSQL's position only grows
	// from one kill to the next.
	for i := 1; i < len(positions); i++ {
		if positions[i] < positions[i-1] {
			t.Errorf("position went back from %d to %d after kill %d: %v", positions[i-1], positions[i], i, positions)
		}
	}
	if positions[len(positions)-1] == 0 {
		t.Fatal("nothing was ever replicated before a kill: the test did not exercise anything")
	}

	store := openTestStore(t, db)
	o := fastOptions(t, url, schema, "victim")
	o.Once = true
	if err := replicate.Run(ctx, store, o); err != nil {
		t.Fatal(err)
	}
	verifySource(t, conn, schema, "victim", store)
	t.Logf("%d kills; PostgreSQL position after each: %v; final head %d", kills, positions, store.Head())
}
