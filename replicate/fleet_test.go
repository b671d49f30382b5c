package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestThroughPgBouncer runs followers of eight logs, half in each layout,
// through a real pgbouncer in transaction mode with a pool of two server
// connections, then Expand and Status through it too. Before, the first
// statement failed ("prepared statement stmtcache_… already exists") and
// the session advisory lock meant nothing. Every source must end exact.
func TestThroughPgBouncer(t *testing.T) {
	_, schema := pgtest.Schema(t)
	b := pgtest.StartBouncer(t, pgtest.BouncerOptions{PoolSize: 2})
	url := b.URL()
	conn := pgtest.Conn(t, pgtest.URL(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 8
	stores := make([]*local.Store, n)
	metrics := make([]*Metrics, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		stores[i], metrics[i] = openStore(t), new(Metrics)
		appendPrefixed(t, stores[i], 100, "a-")
		o := fastOpts(url, schema, t)
		o.Source, o.Metrics = uniqueSource(fmt.Sprint("b", i), schema), metrics[i]
		o.IdleTimeout, o.HeartbeatInterval = 50*time.Millisecond, 100*time.Millisecond
		if i%2 == 1 {
			o.Layout = LayoutFrames
		}
		wg.Go(func() {
			if err := Run(ctx, stores[i], o); err != nil {
				errs <- err
			}
		})
	}
	for round := range 5 {
		for i := range n {
			appendPrefixed(t, stores[i], 20+round, "a-")
		}
	}
	for i := range n {
		testutil.WaitFor(t, deadlockGuard, "source caught up through pgbouncer", func() bool {
			select {
			case err := <-errs:
				t.Fatalf("a replicator stopped: %v", err)
			default:
			}
			return metrics[i].ReplicatedPosition.Load() == stores[i].Head()
		})
	}
	if c, err := b.ServerConns(ctx); err != nil || c > 2 {
		t.Fatalf("pgbouncer holds %d server connections (%v), its pool is 2", c, err)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := Expand(context.Background(), ExpandOptions{URL: url, Schema: schema, Once: true, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		src := uniqueSource(fmt.Sprint("b", i), schema)
		if got, _, gapless := sourceRows(t, conn, schema, src); uint64(got) != stores[i].Head() || !gapless {
			t.Fatalf("source %s: %d rows (gapless %v), head %d", src, got, gapless, stores[i].Head())
		}
		info, err := Status(context.Background(), stores[i], url, schema, src)
		if err != nil || info.Replicated != stores[i].Head() || info.LagEvents != 0 {
			t.Fatalf("status through pgbouncer: %+v, %v", info, err)
		}
	}
}

// TestIdleFollowerReleasesConnection: a follower with nothing to ship
// closes its connection after IdleTimeout, heartbeats (recording the
// device's head) every HeartbeatInterval, and ships new events by
// connecting again.
func TestIdleFollowerReleasesConnection(t *testing.T) {
	url, schema := pgtest.Schema(t)
	conn := pgtest.Conn(t, url)
	s := openStore(t)
	appendPrefixed(t, s, 50, "a-")
	o := fastOpts(url, schema, t)
	o.Source = uniqueSource("idle", schema)
	o.IdleTimeout, o.HeartbeatInterval = 100*time.Millisecond, 300*time.Millisecond
	var m Metrics
	o.Metrics = &m
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, s, o) }()
	backends := func() int {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", "evstore replicate "+o.Source).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testutil.WaitFor(t, deadlockGuard, "caught up", func() bool { return m.ReplicatedPosition.Load() == 50 })
	testutil.WaitFor(t, deadlockGuard, "the idle follower closed its connection", func() bool { return backends() == 0 })
	var seen0 time.Time
	src := pgx.Identifier{schema}.Sanitize() + ".sources"
	if err := conn.QueryRow(ctx, "SELECT last_seen FROM "+src+" WHERE name = $1", o.Source).Scan(&seen0); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, deadlockGuard, "a heartbeat", func() bool {
		var seen time.Time
		var head int64
		conn.QueryRow(ctx, "SELECT last_seen, device_head FROM "+src+" WHERE name = $1", o.Source).Scan(&seen, &head)
		return seen.After(seen0) && head == 50
	})
	appendPrefixed(t, s, 30, "a-")
	testutil.WaitFor(t, deadlockGuard, "new events shipped after reconnecting", func() bool { return m.ReplicatedPosition.Load() == 80 })
	cancel()
	if err := recv(t, done, "Run"); err != nil {
		t.Fatal(err)
	}
	var holder *string
	conn.QueryRow(ctx, "SELECT holder_id::text FROM "+src+" WHERE name = $1", o.Source).Scan(&holder)
	if holder != nil {
		t.Fatalf("a stopped replicator left its claim %s", *holder)
	}
	if n, _, gapless := sourceRows(t, conn, schema, o.Source); n != 80 || !gapless {
		t.Fatalf("%d rows, gapless %v", n, gapless)
	}
}

// TestClaim: a copy of a log (same store id, another file) cannot
// replicate the source while the original holds it, and can once the
// original stopped; a claim left by a dead earlier run of the same file on
// the same host is taken over at once; one taken over stops its replicator.
func TestClaim(t *testing.T) {
	url, schema := pgtest.Schema(t)
	conn := pgtest.Conn(t, url)
	ctx := context.Background()
	dir := t.TempDir()
	orig := filepath.Join(dir, "a.db")
	s, err := local.Open(orig, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendPrefixed(t, s, 40, "a-")
	s.Close()
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := local.Open(orig, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := local.Open(cp, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	src := pgx.Identifier{schema}.Sanitize() + ".sources"
	o := fastOpts(url, schema, t)
	o.Source = uniqueSource("claim", schema)
	var m Metrics
	oa := o
	oa.Metrics = &m
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(actx, a, oa) }()
	testutil.WaitFor(t, deadlockGuard, "caught up", func() bool { return m.ReplicatedPosition.Load() == 40 })

	err = Run(ctx, c, o)
	if !errors.Is(err, ErrConcurrent) || !strings.Contains(err.Error(), "pid") || !strings.Contains(err.Error(), "a.db") {
		t.Fatalf("copy while the original runs: %v, want ErrConcurrent naming the holder", err)
	}
	stop()
	if err := recv(t, done, "Run"); err != nil {
		t.Fatal(err)
	}
	oc := o
	oc.Once = true
	if err := Run(ctx, c, oc); err != nil {
		t.Fatalf("copy after the original stopped: %v", err)
	}

	// A claim by a dead process that had the same file: taken over at once
	// however long its lease.
	abs, _ := filepath.Abs(orig)
	host, _ := os.Hostname()
	if _, err := conn.Exec(ctx, "UPDATE "+src+" SET holder_id = gen_random_uuid(), holder_host = $2, holder_pid = $3, holder_log = $4, holder_until = now() + interval '1 hour' WHERE name = $1",
		o.Source, host, int32(os.Getpid()+100000), abs); err != nil {
		t.Fatal(err)
	}
	appendPrefixed(t, a, 10, "a-")
	oa.Once = true
	if err := Run(ctx, a, oa); err != nil {
		t.Fatalf("restart after a crash: %v", err)
	}

	// A follower whose claim is taken stops with ErrConcurrent at its
	// next batch.
	oa.Once = false
	var m2 Metrics
	oa.Metrics = &m2
	fctx, fstop := context.WithCancel(ctx)
	defer fstop()
	go func() { done <- Run(fctx, a, oa) }()
	testutil.WaitFor(t, deadlockGuard, "following", func() bool { return m2.ReplicatedPosition.Load() == 50 })
	if _, err := conn.Exec(ctx, "UPDATE "+src+" SET holder_id = gen_random_uuid(), holder_host = 'elsewhere', holder_pid = 1, holder_until = now() + interval '1 hour' WHERE name = $1", o.Source); err != nil {
		t.Fatal(err)
	}
	appendPrefixed(t, a, 10, "a-")
	if err := recv(t, done, "Run"); !errors.Is(err, ErrConcurrent) || !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("follower after a take-over: %v, want ErrConcurrent", err)
	}
	if n, _, gapless := sourceRows(t, conn, schema, o.Source); n != 50 || !gapless {
		t.Fatalf("%d rows, gapless %v", n, gapless)
	}
}
