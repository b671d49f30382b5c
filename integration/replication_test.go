package integration

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestReplicateRows100k replicates 100,000 events over 1,000 streams in the
// rows layout and checks every field of every row, and that payloads can be
// queried as JSON.
func TestReplicateRows100k(t *testing.T) {
	url, schema := pgtest.Schema(t)
	store, amountSum := bigLog.get(t)
	ctx := context.Background()
	var m replicate.Metrics
	o := fastOptions(t, url, schema, "big-rows")
	o.Once, o.Metrics, o.FlushInterval = true, &m, 0 // default: full batches while catching up
	start := time.Now()
	if err := replicate.Run(ctx, store, o); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)

	conn := pgtest.Conn(t, url)
	verifySource(t, conn, schema, "big-rows", store)
	var sum int64
	var accounts int
	if err := conn.QueryRow(ctx, "SELECT sum((data->>'amount')::bigint), count(DISTINCT data->>'account') FROM "+ident(schema)+".events WHERE source = 'big-rows'").Scan(&sum, &accounts); err != nil {
		t.Fatal(err)
	}
	if sum != amountSum || accounts != bigStreams {
		t.Fatalf("data->>'amount' sums to %d over %d accounts, want %d over %d", sum, accounts, amountSum, bigStreams)
	}
	t.Logf("rows layout: %d events in %v (%.0f events/s), %d batches, %.1f bytes sent/event, %.1f bytes stored/event (events table with indexes)",
		bigEvents, took.Round(time.Millisecond), bigEvents/took.Seconds(), m.Batches.Load(),
		float64(m.BytesSent.Load())/bigEvents, float64(tableBytes(t, conn, schema, "events"))/bigEvents)
}

// TestReplicateFrames100kAndExpand replicates the same log in the frames
// layout, expands the frames into rows and checks them like the rows layout.
func TestReplicateFrames100kAndExpand(t *testing.T) {
	url, schema := pgtest.Schema(t)
	store, amountSum := bigLog.get(t)
	ctx := context.Background()
	var m replicate.Metrics
	o := fastOptions(t, url, schema, "big-frames")
	o.Once, o.Metrics, o.Layout, o.FlushInterval = true, &m, replicate.LayoutFrames, 0
	start := time.Now()
	if err := replicate.Run(ctx, store, o); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	conn := pgtest.Conn(t, url)
	frameBytes := tableBytes(t, conn, schema, "frames")

	var frames, events int64
	var contiguous bool
	if err := conn.QueryRow(ctx, `SELECT count(*), sum(event_count), coalesce(bool_and(first_position = coalesce(prev, 0) + 1), false)
		FROM (SELECT first_position, event_count, lag(last_position) OVER (ORDER BY first_position) AS prev
		      FROM `+ident(schema)+`.frames WHERE source = 'big-frames') f`).Scan(&frames, &events, &contiguous); err != nil {
		t.Fatal(err)
	}
	if events != bigEvents || !contiguous {
		t.Fatalf("frames hold %d events, contiguous=%v", events, contiguous)
	}

	expStart := time.Now()
	var expanded atomic.Uint64
	err := replicate.Expand(ctx, replicate.ExpandOptions{URL: url, Schema: schema, Once: true, Logger: testLogger(t),
		Progress: func(p replicate.ExpandProgress) { expanded.Store(p.Position) }})
	if err != nil {
		t.Fatal(err)
	}
	expTook := time.Since(expStart)
	if expanded.Load() != bigEvents {
		t.Fatalf("expanded through %d", expanded.Load())
	}
	verifySource(t, conn, schema, "big-frames", store)
	var sum int64
	if err := conn.QueryRow(ctx, "SELECT sum((data->>'amount')::bigint) FROM "+ident(schema)+".events WHERE source = 'big-frames'").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != amountSum {
		t.Fatalf("data->>'amount' sums to %d, want %d", sum, amountSum)
	}
	// Expanding again finds nothing to do and duplicates nothing.
	if err := replicate.Expand(ctx, replicate.ExpandOptions{URL: url, Schema: schema, Once: true}); err != nil {
		t.Fatal(err)
	}
	verifySource(t, conn, schema, "big-frames", store)
	t.Logf("frames layout: %d events in %v (%.0f events/s), %d frames, %.1f bytes sent/event, %.1f bytes stored/event; expand: %v (%.0f events/s)",
		bigEvents, took.Round(time.Millisecond), bigEvents/took.Seconds(), frames,
		float64(m.BytesSent.Load())/bigEvents, float64(frameBytes)/bigEvents,
		expTook.Round(time.Millisecond), bigEvents/expTook.Seconds())
}

// warnCounter counts log records at Warn and above, to check that an outage
// does not flood the log.
type warnCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (w warnCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.n.Add(1)
	}
	return w.Handler.Handle(ctx, r)
}
func (w warnCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return warnCounter{w.Handler.WithAttrs(as), w.n}
}

// TestReplicationSurvivesOutage cuts the network between the replicator and
// PostgreSQL mid-stream (every connection dropped, new ones refused) for a
// few seconds while events keep arriving. The replicator must back off,
// come back by itself, and leave PostgreSQL holding exactly the log.
func TestReplicationSurvivesOutage(t *testing.T) {
	url, schema := pgtest.Schema(t)
	proxy, viaProxy := startProxy(t, url)
	store := newTestStore(t, 30_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var warns atomic.Int64
	var m replicate.Metrics
	o := fastOptions(t, viaProxy, schema, "flaky")
	o.Metrics, o.BatchEvents = &m, 500
	o.Backoff = replicate.Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	var h slog.Handler = slog.NewTextHandler(io.Discard, nil)
	if testing.Verbose() {
		h = slog.NewTextHandler(os.Stderr, nil)
	}
	o.Logger = slog.New(warnCounter{h, &warns})
	done := make(chan error, 1)
	go func() { done <- replicate.Run(ctx, store, o) }()

	testutil.WaitFor(t, 30*time.Second, "replication started", func() bool { return m.ReplicatedPosition.Load() >= 5_000 })
	proxy.cut()
	cutAt := m.ReplicatedPosition.Load()
	const outage = 3 * time.Second
	outageEnd := time.Now().Add(outage)
	seq := 30_000
	for time.Now().Before(outageEnd) {
		if _, err := appendEvents(store, seq, 500, 50); err != nil {
			t.Fatal(err)
		}
		seq += 500
		time.Sleep(100 * time.Millisecond)
	}
	during := m.ReplicatedPosition.Load()
	proxy.restore()
	errorsDuringOutage := m.Errors.Load()
	testutil.WaitFor(t, 60*time.Second, "caught up after the outage", func() bool { return m.ReplicatedPosition.Load() == store.Head() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if during > cutAt+500 {
		t.Fatalf("position moved from %d to %d while the network was cut", cutAt, during)
	}
	if errorsDuringOutage < 3 {
		t.Fatalf("only %d failed attempts during a %v outage: did it back off at all?", errorsDuringOutage, outage)
	}
	// ErrorLogInterval is 1s: a 3s outage logs a handful of warnings, not
	// one per attempt.
	if w := warns.Load(); w == 0 || w > 6 || w >= int64(errorsDuringOutage) {
		t.Fatalf("%d warnings for %d failed attempts", w, errorsDuringOutage)
	}
	verifySource(t, pgtest.Conn(t, url), schema, "flaky", store)
	t.Logf("cut at %d, %d failed attempts, %d warnings, caught up to %d", cutAt, errorsDuringOutage, warns.Load(), store.Head())
}

// TestSourcesBelongToStores: two stores replicate into one database under
// their own sources; a third store claiming an existing source name is
// refused with the documented error, and with NewSource (and TakeOver, the
// old owner being active a moment ago) archives the old rows and takes the
// name.
func TestSourcesBelongToStores(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	conn := pgtest.Conn(t, url)
	a, b := newTestStore(t, 3_000), newTestStore(t, 2_000)
	for _, x := range []struct {
		store  *local.Store
		source string
	}{{a, "dev-a"}, {b, "dev-b"}} {
		o := fastOptions(t, url, schema, x.source)
		o.Once = true
		if err := replicate.Run(ctx, x.store, o); err != nil {
			t.Fatal(err)
		}
	}
	verifySource(t, conn, schema, "dev-a", a)
	verifySource(t, conn, schema, "dev-b", b)

	// A wiped device: a new log (new store id) under the old name.
	c := newTestStore(t, 500)
	o := fastOptions(t, url, schema, "dev-a")
	o.Once = true
	start := time.Now()
	err := replicate.Run(ctx, c, o)
	if !errors.Is(err, replicate.ErrStoreMismatch) {
		t.Fatalf("got %v, want ErrStoreMismatch", err)
	}
	var rerr *replicate.Error
	if !errors.As(err, &rerr) || rerr.Source != "dev-a" || !strings.Contains(err.Error(), "Options.NewSource") ||
		!strings.Contains(err.Error(), a.ID()) || !strings.Contains(err.Error(), c.ID()) {
		t.Fatalf("error lacks the source, both store ids or the hint: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusal took %v: a permanent error must not be retried", d)
	}
	verifySource(t, conn, schema, "dev-a", a) // untouched
	info, err := replicate.Status(ctx, c, url, schema, "dev-a")
	if !errors.Is(err, replicate.ErrStoreMismatch) || info.Problem == "" {
		t.Fatalf("status of a mismatched source: %+v, %v", info, err)
	}

	o.NewSource = true
	// dev-a advanced a moment ago: as likely a cloned device still running
	// as a replaced one, so archiving it takes TakeOver.
	if err := replicate.Run(ctx, c, o); !errors.Is(err, replicate.ErrSourceActive) {
		t.Fatalf("got %v, want ErrSourceActive", err)
	}
	verifySource(t, conn, schema, "dev-a", a) // untouched
	o.TakeOver = true
	if err := replicate.Run(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	verifySource(t, conn, schema, "dev-a", c)
	var archive string
	if err := conn.QueryRow(ctx, "SELECT name FROM "+ident(schema)+".sources WHERE name LIKE 'dev-a@%' AND store_id = $1", a.ID()).Scan(&archive); err != nil {
		t.Fatalf("no archive of the old source: %v", err)
	}
	verifySource(t, conn, schema, archive, a)
	verifySource(t, conn, schema, "dev-b", b)
	// NewSource on a matching source changes nothing.
	if err := replicate.Run(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	var sources int
	conn.QueryRow(ctx, "SELECT count(*) FROM "+ident(schema)+".sources").Scan(&sources)
	if sources != 3 {
		t.Fatalf("%d sources, want dev-a, its archive and dev-b", sources)
	}
}

// TestLogBehindPostgresRefused restores the log from an older copy: with
// PostgreSQL ahead, Run refuses (ErrAhead); once the log has grown past
// PostgreSQL with other events, it refuses too (ErrDiverged).
func TestLogBehindPostgresRefused(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	dir := t.TempDir()
	path, backup := filepath.Join(dir, "events.db"), filepath.Join(dir, "backup.db")

	s, err := local.Open(path, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(s, 0, 100, 10)
	s.Close()
	copyFile(t, path, backup)
	s = openTestStore(t, path)
	appendEvents(s, 100, 50, 10)
	o := fastOptions(t, url, schema, "dev")
	o.Once = true
	if err := replicate.Run(ctx, s, o); err != nil {
		t.Fatal(err)
	}
	s.Close()

	copyFile(t, backup, path)
	s = openTestStore(t, path)
	err = replicate.Run(ctx, s, o)
	if !errors.Is(err, replicate.ErrAhead) || !strings.Contains(err.Error(), "150") || !strings.Contains(err.Error(), "100") {
		t.Fatalf("got %v, want ErrAhead naming positions 150 and 100", err)
	}
	appendEvents(s, 1000, 60, 10) // other events: head 160, position 150 differs
	err = replicate.Run(ctx, s, o)
	if !errors.Is(err, replicate.ErrDiverged) || !strings.Contains(err.Error(), "position 150") {
		t.Fatalf("got %v, want ErrDiverged at position 150", err)
	}
	var pos int64
	pgtest.Conn(t, url).QueryRow(ctx, "SELECT position FROM "+ident(schema)+".sources WHERE name = 'dev'").Scan(&pos)
	if pos != 150 {
		t.Fatalf("refused runs changed the position to %d", pos)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReplicatorsOnOneSource: while one replicator follows a
// source, a second one for the same source fails cleanly with ErrConcurrent
// instead of retrying forever, and the first keeps working.
func TestConcurrentReplicatorsOnOneSource(t *testing.T) {
	url, schema := pgtest.Schema(t)
	store := newTestStore(t, 2_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var m replicate.Metrics
	first := fastOptions(t, url, schema, "shared")
	first.Metrics = &m
	done := make(chan error, 1)
	go func() { done <- replicate.Run(ctx, store, first) }()
	testutil.WaitFor(t, 30*time.Second, "caught up", func() bool { return m.ReplicatedPosition.Load() == 2_000 })

	second := fastOptions(t, url, schema, "shared")
	second.LockWait = 500 * time.Millisecond
	start := time.Now()
	err := replicate.Run(context.Background(), store, second)
	if !errors.Is(err, replicate.ErrConcurrent) || !strings.Contains(err.Error(), `another replicator is running for source "shared"`) ||
		!strings.Contains(err.Error(), "pid") {
		t.Fatalf("got %v, want ErrConcurrent naming the source and the holder's pid", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second replicator took %v to give up", d)
	}
	if _, err := appendEvents(store, 2_000, 100, 10); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the first replicator shipped new events", func() bool { return m.ReplicatedPosition.Load() == 2_100 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	verifySource(t, pgtest.Conn(t, url), schema, "shared", store)
}
