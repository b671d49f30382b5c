package integration

// The replication fault suite: processes killed at random instants,
// connections cut, and the races between an archive (replicate with
// NewSource) and an expander. Each test runs a short version in CI and a
// long one with EVSTORE_LONG=1; both end by checking that PostgreSQL holds
// exactly the logs, nothing lost or doubled. docs/reliability.md has the
// counts.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

// rounds is short in CI, long with EVSTORE_LONG=1: more rounds, same
// checks.
func rounds(short, long int) int {
	if os.Getenv("EVSTORE_LONG") == "1" {
		return long
	}
	return short
}

// buildBinaries returns the evstore CLI and the testdata replicator (which
// appends and replicates in one process, since the log's file lock admits
// one).
func buildBinaries(t *testing.T) (cli, helper string) {
	return evstoreBin(t), buildBin(t, "./testdata/replicator")
}

// newPrefixedLog creates a closed log at path with n events on streams
// named prefix-k, so rows can be traced back to their log.
func newPrefixedLog(t testing.TB, path string, n int, prefix string) {
	t.Helper()
	s, err := local.Open(path, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for done := 0; done < n; {
		k := min(1000, n-done)
		evs := make([]format.EventData, k)
		for i := range evs {
			evs[i] = format.EventData{Stream: fmt.Sprintf("%s-%d", prefix, (done+i)%20), Type: "T", Data: fmt.Appendf(nil, `{"i":%d}`, done+i)}
		}
		if _, err := s.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		done += k
	}
}

// rowsOf describes a source's events rows: count, distinct stream prefixes
// and whether positions run 1..count.
func rowsOf(t testing.TB, conn *pgx.Conn, schema, source string) (n int, prefixes []string, gapless bool) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `SELECT count(*), coalesce(array_agg(DISTINCT split_part(stream, '-', 1)) FILTER (WHERE stream IS NOT NULL), '{}'),
		coalesce(min(position) = 1 AND max(position) = count(*), true) FROM `+ident(schema)+`.events WHERE source = $1`, source).Scan(&n, &prefixes, &gapless)
	if err != nil {
		t.Fatal(err)
	}
	return n, prefixes, gapless
}

func runCombined(t testing.TB, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestFaultArchiveRacesExpand is the race of issue 9 as a user meets it:
// replicate a log in the frames layout, start `expand --once` on its source
// and, 0–80 ms later, take the source over with another log
// (`replicate --new-source --take-over`). However they interleave, the
// source must end up holding the new log only and the archive the old one
// only, each gapless.
func TestFaultArchiveRacesExpand(t *testing.T) {
	url, schema := pgtest.Schema(t)
	bin, _ := buildBinaries(t)
	conn := pgtest.Conn(t, url)
	dir := t.TempDir()
	n := rounds(3, 40)
	for i := range n {
		src := fmt.Sprintf("r%d", i)
		a, b := filepath.Join(dir, src+"a.db"), filepath.Join(dir, src+"b.db")
		newPrefixedLog(t, a, 2_000, "a")
		newPrefixedLog(t, b, 3_000, "b")
		common := []string{"--to", url, "--schema", schema, "--source", src, "--layout", "frames", "--once", "--batch-events", "500"}
		if out, code := runCombined(t, bin, append([]string{"--db", a, "replicate"}, common...)...); code != 0 {
			t.Fatalf("round %d: replicate a: %d\n%s", i, code, out)
		}
		expand := exec.Command(bin, "expand", "--to", url, "--schema", schema, "--source", src, "--once")
		var expOut bytes.Buffer
		expand.Stdout, expand.Stderr = &expOut, &expOut
		if err := expand.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond) // the race window, not a synchronisation
		out, code := runCombined(t, bin, append([]string{"--db", b, "replicate", "--new-source", "--take-over"}, common...)...)
		if err := expand.Wait(); err != nil {
			t.Fatalf("round %d: expand: %v\n%s", i, err, expOut.String())
		}
		if code != 0 {
			t.Fatalf("round %d: replicate b: %d\n%s", i, code, out)
		}
		if out, code := runCombined(t, bin, "expand", "--to", url, "--schema", schema, "--once"); code != 0 {
			t.Fatalf("round %d: final expand: %d\n%s", i, code, out)
		}
		var archive string
		if err := conn.QueryRow(context.Background(), "SELECT name FROM "+ident(schema)+".sources WHERE name LIKE $1", src+"@%").Scan(&archive); err != nil {
			t.Fatalf("round %d: no archive: %v", i, err)
		}
		for _, c := range []struct {
			source, prefix string
			n              int
		}{{src, "b", 3_000}, {archive, "a", 2_000}} {
			got, prefixes, gapless := rowsOf(t, conn, schema, c.source)
			if got != c.n || len(prefixes) != 1 || prefixes[0] != c.prefix || !gapless {
				t.Fatalf("round %d: source %s holds %d events of logs %v (gapless %v), want %d of log %s only",
					i, c.source, got, prefixes, gapless, c.n, c.prefix)
			}
		}
	}
	t.Logf("%d archive/expand races, every source exact", n)
}

// TestFaultTwinsDoNotPingPong: two logs under one --source (cloned devices)
// run `replicate --once --new-source` in turn. The first owns the source;
// the other is refused every time (exit 1) and no archive piles up.
func TestFaultTwinsDoNotPingPong(t *testing.T) {
	url, schema := pgtest.Schema(t)
	bin, _ := buildBinaries(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	newPrefixedLog(t, a, 500, "a")
	newPrefixedLog(t, b, 700, "b")
	for i, db := range []string{a, b, a, b, a, b} {
		out, code := runCombined(t, bin, "--db", db, "replicate", "--once", "--new-source", "--to", url, "--schema", schema, "--source", "clone")
		switch {
		case db == a && code != 0:
			t.Fatalf("run %d: the owner failed: %d\n%s", i, code, out)
		case db == b && (code != 1 || !strings.Contains(out, "source is in use by another log") || !strings.Contains(out, "--take-over")):
			t.Fatalf("run %d: the twin was not refused: %d\n%s", i, code, out)
		}
	}
	conn := pgtest.Conn(t, url)
	var sources int
	conn.QueryRow(context.Background(), "SELECT count(*) FROM "+ident(schema)+".sources").Scan(&sources)
	if n, prefixes, _ := rowsOf(t, conn, schema, "clone"); sources != 1 || n != 500 || len(prefixes) != 1 || prefixes[0] != "a" {
		t.Fatalf("%d sources, clone holds %d events of %v", sources, n, prefixes)
	}
}

// TestFaultKillsReplicatorAndExpander SIGKILLs, at random instants, a
// replicator process (appending and shipping frames) and an expander
// process (turning frames into rows), independently. A final catch-up and
// expansion must leave the events table exactly the log.
func TestFaultKillsReplicatorAndExpander(t *testing.T) {
	url, schema := pgtest.Schema(t)
	bin, helper := buildBinaries(t)
	db := filepath.Join(t.TempDir(), "events.db")
	conn := pgtest.Conn(t, url)
	ctx := context.Background()
	n := rounds(4, 100)
	kills := 0
	for i := range n {
		var repOut, expOut bytes.Buffer
		rep := exec.Command(helper, "-db", db, "-url", url, "-schema", schema, "-source", "victim", "-layout", "frames",
			"-append-every", "5ms", "-append-batch", "25")
		rep.Stdout, rep.Stderr = &repOut, &repOut
		exp := exec.Command(bin, "expand", "--to", url, "--schema", schema, "--poll-interval", "10ms")
		exp.Stdout, exp.Stderr = &expOut, &expOut
		for _, c := range []*exec.Cmd{rep, exp} {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for _, c := range []*exec.Cmd{rep, exp} {
			alive := time.Duration(150+rand.IntN(500)) * time.Millisecond
			wg.Go(func() {
				exited := make(chan error, 1)
				go func() { exited <- c.Wait() }()
				select {
				case err := <-exited:
					t.Errorf("round %d: %s exited by itself (%v):\n%s\n%s", i, c.Path, err, repOut.String(), expOut.String())
				case <-time.After(alive): // a random instant to kill at, not a synchronisation
					c.Process.Kill()
					<-exited
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		kills += 2
	}

	store := openTestStore(t, db)
	o := fastOptions(t, url, schema, "victim")
	o.Once, o.Layout = true, replicate.LayoutFrames
	if err := replicate.Run(ctx, store, o); err != nil {
		t.Fatal(err)
	}
	if err := replicate.Expand(ctx, replicate.ExpandOptions{URL: url, Schema: schema, Once: true, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	verifySource(t, conn, schema, "victim", store)
	var expanded int64
	conn.QueryRow(ctx, "SELECT position FROM "+ident(schema)+".expanded WHERE source = 'victim'").Scan(&expanded)
	if uint64(expanded) != store.Head() {
		t.Fatalf("expanded through %d, head %d", expanded, store.Head())
	}
	t.Logf("%d SIGKILLs (%d of each), %d events, all present once", kills, kills/2, store.Head())
}

// TestFaultConnectionCuts cuts every connection of a following replicator
// and a following expander (through a TCP proxy) again and again while
// events keep arriving. During each cut the lag must keep growing in the
// metrics; after it, both must resume by themselves; at the end the events
// table must be exactly the log.
func TestFaultConnectionCuts(t *testing.T) {
	url, schema := pgtest.Schema(t)
	proxy, viaProxy := startProxy(t, url)
	store := newTestStore(t, 2_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var m replicate.Metrics
	o := fastOptions(t, viaProxy, schema, "cut")
	o.Metrics, o.Layout, o.BatchEvents, o.ProbeInterval = &m, replicate.LayoutFrames, 300, 20*time.Millisecond
	o.Backoff = replicate.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	repDone, expDone := make(chan error, 1), make(chan error, 1)
	go func() { repDone <- replicate.Run(ctx, store, o) }()
	go func() {
		expDone <- replicate.Expand(ctx, replicate.ExpandOptions{URL: viaProxy, Schema: schema, PollInterval: 10 * time.Millisecond,
			Backoff: o.Backoff, Logger: testLogger(t)})
	}()
	testutil.WaitFor(t, 60*time.Second, "caught up", func() bool { return m.ReplicatedPosition.Load() == store.Head() })

	n := rounds(3, 40)
	seq := 2_000
	for i := range n {
		proxy.cut()
		before := m.ReplicatedPosition.Load()
		if _, err := appendEvents(store, seq, 700, 50); err != nil {
			t.Fatal(err)
		}
		seq += 700
		// The head keeps being watched during the outage.
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("cut %d: lag counted during the outage", i), func() bool {
			return m.HeadPosition.Load() == store.Head() && m.LagEvents() >= store.Head()-before-uint64(o.BatchEvents)
		})
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond) // outage length, not a synchronisation
		proxy.restore()
		testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("cut %d: caught up again", i), func() bool { return m.ReplicatedPosition.Load() == store.Head() })
	}
	conn := pgtest.Conn(t, url)
	testutil.WaitFor(t, 60*time.Second, "expanded everything", func() bool {
		var p int64
		conn.QueryRow(context.Background(), "SELECT coalesce((SELECT position FROM "+ident(schema)+".expanded WHERE source = 'cut'), 0)").Scan(&p)
		return uint64(p) == store.Head()
	})
	cancel()
	if err := <-repDone; err != nil {
		t.Fatal(err)
	}
	if err := <-expDone; err != nil {
		t.Fatal(err)
	}
	verifySource(t, conn, schema, "cut", store)
	t.Logf("%d cuts of replicator and expander, %d failed attempts, %d events, all present once", n, m.Errors.Load(), store.Head())
}

// TestFaultReconnectsWhenServerAnswers: an outage long enough to grow the
// backoff to an hour must still end within a probe interval of the server
// answering again: Run probes it during the wait.
func TestFaultReconnectsWhenServerAnswers(t *testing.T) {
	url, schema := pgtest.Schema(t)
	proxy, viaProxy := startProxy(t, url)
	store := newTestStore(t, 500)
	proxy.cut()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var m replicate.Metrics
	o := fastOptions(t, viaProxy, schema, "probe")
	o.Metrics, o.ProbeInterval = &m, 20*time.Millisecond
	o.Backoff = replicate.Backoff{Min: time.Hour, Max: time.Hour}
	done := make(chan error, 1)
	go func() { done <- replicate.Run(ctx, store, o) }()
	testutil.WaitFor(t, 30*time.Second, "a failed attempt", func() bool { return m.Errors.Load() >= 1 })
	proxy.restore()
	testutil.WaitFor(t, 30*time.Second, "caught up without waiting out the hour", func() bool { return m.ReplicatedPosition.Load() == store.Head() })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	verifySource(t, pgtest.Conn(t, url), schema, "probe", store)
}

// TestFaultOutageRecoveryTime (long mode only: it waits out real outages
// with the default backoff) measures how long after the network is back a
// replicator has caught up, with probing (the default) and without. It
// asserts nothing about time; the figures go to docs/reliability.md.
func TestFaultOutageRecoveryTime(t *testing.T) {
	if os.Getenv("EVSTORE_LONG") != "1" {
		t.Skip("long mode only (EVSTORE_LONG=1): waits out real outages")
	}
	for _, outage := range []time.Duration{5 * time.Second, 20 * time.Second} {
		for _, probe := range []time.Duration{0, -1} {
			url, schema := pgtest.Schema(t)
			proxy, viaProxy := startProxy(t, url)
			store := newTestStore(t, 1_000)
			ctx, cancel := context.WithCancel(context.Background())
			var m replicate.Metrics
			o := fastOptions(t, viaProxy, schema, "recovery")
			o.Metrics, o.Backoff, o.ProbeInterval = &m, replicate.Backoff{}, probe // default backoff: 1s to 5m
			done := make(chan error, 1)
			go func() { done <- replicate.Run(ctx, store, o) }()
			testutil.WaitFor(t, 30*time.Second, "caught up", func() bool { return m.ReplicatedPosition.Load() == store.Head() })
			proxy.cut()
			appendEvents(store, 1_000, 100, 10)
			time.Sleep(outage)
			proxy.restore()
			back := time.Now()
			testutil.WaitFor(t, 10*time.Minute, "caught up after the outage", func() bool { return m.ReplicatedPosition.Load() == store.Head() })
			t.Logf("outage %v, probing %v: caught up %v after the network was back (%d failed attempts)",
				outage, probe >= 0, time.Since(back).Round(10*time.Millisecond), m.Errors.Load())
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}
