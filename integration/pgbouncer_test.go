package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestBouncerKillsAndPoolerRestart is the kill test through a real
// pgbouncer in transaction mode (pool of 3): a replicator process that
// appends and ships is SIGKILLed at random instants, and once the pooler
// itself is killed and restarted under a running replicator, which must
// ship again after it. PostgreSQL must end up holding exactly the log.
func TestBouncerKillsAndPoolerRestart(t *testing.T) {
	direct, schema := pgtest.Schema(t)
	b := pgtest.StartBouncer(t, pgtest.BouncerOptions{PoolSize: 3})
	url := b.URL()
	bin := buildBin(t, "./testdata/replicator")
	db := filepath.Join(t.TempDir(), "events.db")
	conn := pgtest.Conn(t, direct)
	ctx := context.Background()
	position := func() int64 {
		var pos int64
		conn.QueryRow(ctx, "SELECT coalesce((SELECT position FROM "+ident(schema)+".sources WHERE name = 'victim'), 0)").Scan(&pos)
		return pos
	}

	kills := rounds(6, 40)
	restartAt := kills / 2
	var positions []int64
	for i := range kills {
		var out bytes.Buffer
		cmd := exec.Command(bin, "-db", db, "-url", url, "-schema", schema, "-source", "victim",
			"-append-every", "5ms", "-append-batch", "25")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if i == restartAt {
			// The pooler dies under a running replicator and comes back.
			testutil.WaitFor(t, time.Minute, "the replicator shipped before the pooler restart", func() bool { return position() > positions[len(positions)-1] })
			b.Kill()
			before := position()
			b.Start()
			testutil.WaitFor(t, time.Minute, "the replicator shipped after the pooler restart", func() bool { return position() > before })
		}
		select {
		case err := <-exited:
			t.Fatalf("kill %d: the replicator exited by itself (%v):\n%s", i, err, out.String())
		case <-time.After(time.Duration(200+rand.IntN(600)) * time.Millisecond): // a random instant to kill at
		}
		cmd.Process.Kill()
		<-exited
		positions = append(positions, position())
	}
	for i := 1; i < len(positions); i++ {
		if positions[i] < positions[i-1] {
			t.Errorf("position went back from %d to %d after kill %d: %v", positions[i-1], positions[i], i, positions)
		}
	}
	store := openTestStore(t, db)
	o := fastOptions(t, url, schema, "victim")
	o.Once = true
	if err := replicate.Run(ctx, store, o); err != nil {
		t.Fatal(err)
	}
	verifySource(t, conn, schema, "victim", store)
	t.Logf("%d kills and a pooler restart; positions %v; head %d", kills, positions, store.Head())
}

// TestBouncerTwoReplicatorsOneSource: two processes replicate two copies
// of a log (same store id, then 100 different events each) to one source
// through pgbouncer, started together. Exactly one ships; the other fails
// with ErrConcurrent; the source holds the winner's log only.
func TestBouncerTwoReplicatorsOneSource(t *testing.T) {
	direct, schema := pgtest.Schema(t)
	b := pgtest.StartBouncer(t, pgtest.BouncerOptions{PoolSize: 3})
	bin := buildBin(t, "./testdata/replicator")
	dir := t.TempDir()
	a, c := filepath.Join(dir, "a.db"), filepath.Join(dir, "c.db")
	newPrefixedLog(t, a, 200, "base")
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ path, prefix string }{{a, "a"}, {c, "c"}} {
		s, err := local.Open(p.path, local.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		appendEventsPrefixed(t, s, 100, p.prefix)
		s.Close()
	}
	type proc struct {
		cmd    *exec.Cmd
		out    *bytes.Buffer
		exited chan error
	}
	var procs []*proc
	for _, db := range []string{a, c} {
		p := &proc{out: new(bytes.Buffer), exited: make(chan error, 1)}
		p.cmd = exec.Command(bin, "-db", db, "-url", b.URL(), "-schema", schema, "-source", "shared", "-lock-wait", "1s")
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.exited <- p.cmd.Wait() }()
		procs = append(procs, p)
		defer p.cmd.Process.Kill()
	}
	// The loser exits by itself (the winner follows until stopped).
	var loser, winner *proc
	select {
	case <-procs[0].exited:
		loser, winner = procs[0], procs[1]
	case <-procs[1].exited:
		loser, winner = procs[1], procs[0]
	case <-time.After(2 * time.Minute):
		t.Fatalf("neither replicator was refused:\n%s\n%s", procs[0].out, procs[1].out)
	}
	if code := loser.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(loser.out.String(), "another replicator is running") {
		t.Fatalf("loser exited %d:\n%s", code, loser.out)
	}
	conn := pgtest.Conn(t, direct)
	var pos int64
	testutil.WaitFor(t, time.Minute, "the winner shipped its log", func() bool {
		conn.QueryRow(context.Background(), "SELECT position FROM "+ident(schema)+".sources WHERE name = 'shared'").Scan(&pos)
		return pos == 300
	})
	winner.cmd.Process.Signal(os.Interrupt)
	if err := <-winner.exited; err != nil {
		t.Fatalf("winner: %v\n%s", err, winner.out)
	}
	n, prefixes, gapless := rowsOf(t, conn, schema, "shared")
	if n != 300 || !gapless || len(prefixes) != 2 || !slices.Contains(prefixes, "base") {
		t.Fatalf("source holds %d rows (gapless %v) of %v, want 300 of base and one copy", n, gapless, prefixes)
	}
	winnerDB := a
	if winner.cmd.Args[2] == c {
		winnerDB = c
	}
	s := openTestStore(t, winnerDB)
	verifySource(t, conn, schema, "shared", s)
}

// appendEventsPrefixed appends n events on streams named prefix-k.
func appendEventsPrefixed(t testing.TB, s *local.Store, n int, prefix string) {
	t.Helper()
	evs := make([]format.EventData, n)
	for i := range evs {
		evs[i] = format.EventData{Stream: fmt.Sprintf("%s-%d", prefix, i%20), Type: "T", Data: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	if _, err := s.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}
