package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate/pgtest"
)

// deadlockGuard bounds every wait of these tests: far beyond what any step
// needs, it only turns a hang into a failure.
const deadlockGuard = 60 * time.Second

// appendPrefixed appends n events to streams named prefix+k.
func appendPrefixed(t testing.TB, s *local.Store, n int, prefix string) {
	t.Helper()
	evs := make([]format.EventData, n)
	for i := range evs {
		evs[i] = format.EventData{Stream: fmt.Sprintf("%s%d", prefix, i%5), Type: "T", Data: jsonData(i)}
	}
	if _, err := s.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// uniqueSource names a source after the test's schema, so that the
// backends of concurrently running test packages are told apart in
// pg_stat_activity.
func uniqueSource(prefix, schema string) string {
	return prefix + "-" + strings.TrimPrefix(schema, "evstore_test_")
}

// sourceRows describes what the events table holds for source: its row
// count, the stream prefixes found and whether positions are 1..count.
func sourceRows(t testing.TB, conn *pgx.Conn, schema, source string) (n int, prefixes []string, gapless bool) {
	t.Helper()
	s := pgx.Identifier{schema}.Sanitize()
	err := conn.QueryRow(context.Background(), `SELECT count(*), coalesce(array_agg(DISTINCT split_part(stream, '-', 1)) FILTER (WHERE stream IS NOT NULL), '{}'),
		coalesce(min(position) = 1 AND max(position) = count(*), true) FROM `+s+`.events WHERE source = $1`, source).Scan(&n, &prefixes, &gapless)
	if err != nil {
		t.Fatal(err)
	}
	return n, prefixes, gapless
}

func archiveOf(t testing.TB, conn *pgx.Conn, schema, source string) string {
	t.Helper()
	var name string
	err := conn.QueryRow(context.Background(), "SELECT name FROM "+pgx.Identifier{schema}.Sanitize()+".sources WHERE name LIKE $1 || '@%'", source).Scan(&name)
	if err != nil {
		t.Fatalf("no archive of %s: %v", source, err)
	}
	return name
}

// waitBlockedOrDone waits until done has a value (returned in *got) or a
// backend of application appName waits for a lock.
func waitBlockedOrDone(t testing.TB, conn *pgx.Conn, appName string, done <-chan error, got *error) (blocked bool) {
	t.Helper()
	deadline := time.Now().Add(deadlockGuard)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			*got = err
			return false
		default:
		}
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", appName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s neither finished nor waited for a lock within %v", appName, deadlockGuard)
	return false
}

func recv(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(deadlockGuard):
		t.Fatalf("%s did not finish within %v", what, deadlockGuard)
		return nil
	}
}

// TestArchiveWaitsForExpandersFirstBatch: an expander's first batch for a
// source is held open (its expanded row inserted, not committed) while
// another log takes the source over with NewSource. The archive must wait
// for the batch and move its rows along; before, it saw nothing to wait for
// and the batch committed the old log's events under the renewed name.
func TestArchiveWaitsForExpandersFirstBatch(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	conn := pgtest.Conn(t, url)
	src := uniqueSource("r", schema)
	a, b := openStore(t), openStore(t)
	appendPrefixed(t, a, 30, "a-")
	appendPrefixed(t, b, 50, "b-")
	oa := fastOpts(url, schema, t)
	oa.Source, oa.Layout, oa.Once, oa.BatchEvents = src, LayoutFrames, true, 10
	if err := Run(ctx, a, oa); err != nil {
		t.Fatal(err)
	}

	holding, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	releaseHook := func() { released.Do(func() { close(release) }) }
	defer releaseHook() // a failing test must not leave a transaction open
	xo := ExpandOptions{URL: url, Schema: schema, Source: src, Once: true, BatchEvents: 10, Logger: testLogger(t),
		beforeCommit: func(string, int) { once.Do(func() { close(holding); <-release }) }}
	expanded := make(chan error, 1)
	go func() { expanded <- Expand(ctx, xo) }()
	select {
	case <-holding:
	case err := <-expanded:
		t.Fatalf("expand ended before its first commit: %v", err)
	case <-time.After(deadlockGuard):
		t.Fatal("expand never reached its first commit")
	}

	ob := fastOpts(url, schema, t)
	ob.Source, ob.Layout, ob.Once, ob.BatchEvents, ob.NewSource, ob.TakeOver = src, LayoutFrames, true, 10, true, true
	replicated := make(chan error, 1)
	go func() { replicated <- Run(ctx, b, ob) }()
	var runErr error
	blocked := waitBlockedOrDone(t, conn, "evstore replicate "+src, replicated, &runErr)
	releaseHook()
	if err := recv(t, expanded, "expand"); err != nil {
		t.Fatal(err)
	}
	if blocked {
		runErr = recv(t, replicated, "replicate")
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	if err := Expand(ctx, ExpandOptions{URL: url, Schema: schema, Once: true, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	archive := archiveOf(t, conn, schema, src)
	for _, c := range []struct {
		source string
		n      int
		prefix string
	}{{src, 50, "b"}, {archive, 30, "a"}} {
		n, prefixes, gapless := sourceRows(t, conn, schema, c.source)
		if n != c.n || len(prefixes) != 1 || prefixes[0] != c.prefix || !gapless {
			t.Errorf("source %s: %d events from logs %v (gapless %v), want %d from log %q only", c.source, n, prefixes, gapless, c.n, c.prefix)
		}
	}
	if !blocked {
		t.Error("the archive did not wait for the expander's uncommitted first batch")
	}
}

// TestExpanderWaitsForArchive is the other order: an archive is in
// progress (its transaction held open) when an expander starts on the
// source. The expander must wait, then leave the archived rows to the
// archive and the renewed source to the new log.
func TestExpanderWaitsForArchive(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	conn := pgtest.Conn(t, url)
	src := uniqueSource("r", schema)
	a, b := openStore(t), openStore(t)
	appendPrefixed(t, a, 30, "a-")
	appendPrefixed(t, b, 50, "b-")
	oa := fastOpts(url, schema, t)
	oa.Source, oa.Layout, oa.Once, oa.BatchEvents = src, LayoutFrames, true, 10
	if err := Run(ctx, a, oa); err != nil {
		t.Fatal(err)
	}

	holding, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	releaseHook := func() { released.Do(func() { close(release) }) }
	defer releaseHook() // a failing test must not leave a transaction open
	ob := fastOpts(url, schema, t)
	ob.Source, ob.Layout, ob.Once, ob.BatchEvents, ob.NewSource, ob.TakeOver = src, LayoutFrames, true, 10, true, true
	ob.onClaim = func() { once.Do(func() { close(holding); <-release }) }
	replicated := make(chan error, 1)
	go func() { replicated <- Run(ctx, b, ob) }()
	select {
	case <-holding:
	case <-time.After(deadlockGuard):
		t.Fatal("replicate never reached its claim")
	}
	expanded := make(chan error, 1)
	app := "evstore expand " + src
	go func() {
		expanded <- Expand(ctx, ExpandOptions{URL: withParam(url, "application_name", app), Schema: schema, Source: src, Once: true, Logger: testLogger(t)})
	}()
	var expErr error
	blocked := waitBlockedOrDone(t, conn, app, expanded, &expErr)
	releaseHook()
	if err := recv(t, replicated, "replicate"); err != nil {
		t.Fatal(err)
	}
	if blocked {
		expErr = recv(t, expanded, "expand")
	}
	if expErr != nil {
		t.Fatal(expErr)
	}
	if err := Expand(ctx, ExpandOptions{URL: url, Schema: schema, Once: true, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	archive := archiveOf(t, conn, schema, src)
	for _, c := range []struct {
		source string
		n      int
		prefix string
	}{{src, 50, "b"}, {archive, 30, "a"}} {
		n, prefixes, gapless := sourceRows(t, conn, schema, c.source)
		if n != c.n || len(prefixes) != 1 || prefixes[0] != c.prefix || !gapless {
			t.Errorf("source %s: %d events from logs %v (gapless %v), want %d from log %q only", c.source, n, prefixes, gapless, c.n, c.prefix)
		}
	}
}

// TestNewSourceRefusesActiveSource: two logs under one source name (cloned
// devices) must not archive each other in turn. The second is refused with
// ErrSourceActive while the first advanced the source recently; TakeOver,
// or a source idle for longer than ActiveWindow, lets the archive happen.
func TestNewSourceRefusesActiveSource(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	conn := pgtest.Conn(t, url)
	a, b := openStore(t), openStore(t)
	appendN(t, a, 20, jsonData)
	appendN(t, b, 30, jsonData)
	o := fastOpts(url, schema, t)
	o.Source, o.Once, o.NewSource = "twin", true, true
	if err := Run(ctx, a, o); err != nil {
		t.Fatal(err)
	}
	// Ping-pong as on two cloned devices: every run after the first is
	// refused, and no archive is left.
	for i, s := range []*local.Store{b, a, b, a, b} {
		err := Run(ctx, s, o)
		if s == a {
			if err != nil {
				t.Fatalf("run %d: the owner was refused: %v", i, err)
			}
			continue
		}
		var rerr *Error
		if !errors.Is(err, ErrSourceActive) || !errors.As(err, &rerr) || !strings.Contains(err.Error(), a.ID()) ||
			!strings.Contains(err.Error(), "Options.TakeOver") || !strings.Contains(err.Error(), "Options.Source") {
			t.Fatalf("run %d: got %v, want ErrSourceActive naming the owner and both ways out", i, err)
		}
	}
	var sources int
	conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".sources").Scan(&sources)
	if sources != 1 {
		t.Fatalf("%d sources after the refused runs, want 1", sources)
	}
	if n, _, _ := sourceRows(t, conn, schema, "twin"); n != 20 {
		t.Fatalf("source holds %d events, want the owner's 20", n)
	}

	// A source idle for longer than the window is archived without asking.
	idle := o
	idle.ActiveWindow = time.Nanosecond
	if err := Run(ctx, b, idle); err != nil {
		t.Fatal(err)
	}
	// And TakeOver archives one that was just advanced.
	take := o
	take.TakeOver = true
	if err := Run(ctx, a, take); err != nil {
		t.Fatal(err)
	}
	conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema}.Sanitize()+".sources").Scan(&sources)
	if n, _, _ := sourceRows(t, conn, schema, "twin"); n != 20 || sources != 3 {
		t.Fatalf("after two archives: %d sources, %d events in twin", sources, n)
	}
}

// TestDefaultSourceIsPerStore: without Options.Source, two logs on one host
// (a cloned image) replicate under different names; a source an older
// evstore created under the bare host name for this log is kept; Status
// finds the same name as Run.
func TestDefaultSourceIsPerStore(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name")
	}
	a, b, old := openStore(t), openStore(t), openStore(t)
	for _, s := range []*local.Store{a, b, old} {
		appendN(t, s, 10, jsonData)
	}
	legacy := fastOpts(url, schema, t)
	legacy.Source, legacy.Once = host, true
	if err := Run(ctx, old, legacy); err != nil {
		t.Fatal(err)
	}
	appendN(t, old, 5, jsonData)
	for _, c := range []struct {
		store *local.Store
		want  string
	}{{a, host + "-" + strings.ReplaceAll(a.ID(), "-", "")[:8]}, {b, host + "-" + strings.ReplaceAll(b.ID(), "-", "")[:8]}, {old, host}} {
		var m Metrics
		o := fastOpts(url, schema, t)
		o.Source, o.Once, o.Metrics = "", true, &m
		if err := Run(ctx, c.store, o); err != nil {
			t.Fatal(err)
		}
		if m.Source() != c.want {
			t.Errorf("store %s replicated to %q, want %q", c.store.ID(), m.Source(), c.want)
		}
		info, err := Status(ctx, c.store, url, schema, "")
		if err != nil || info.Source != c.want || info.Replicated != c.store.Head() {
			t.Errorf("status of store %s: %+v, %v", c.store.ID(), info, err)
		}
	}
}

// TestStatusReportsDivergence: a log restored from an older copy that then
// got other events is refused by Run (ErrDiverged); Status must say the
// same instead of printing a lag.
func TestStatusReportsDivergence(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	dir := t.TempDir()
	path := dir + "/events.db"
	s, err := local.Open(path, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 10, jsonData)
	s.Close()
	copyTestFile(t, path, dir+"/backup.db")
	s, err = local.Open(path, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 5, jsonData)
	o := fastOpts(url, schema, t)
	o.Once = true
	if err := Run(ctx, s, o); err != nil {
		t.Fatal(err)
	}
	s.Close()
	copyTestFile(t, dir+"/backup.db", path)
	s = openStoreAt(t, path)
	appendN(t, s, 8, jsonData) // head 18, position 15 holds another event
	runErr := Run(ctx, s, o)
	info, err := Status(ctx, s, url, schema, o.Source)
	if !errors.Is(runErr, ErrDiverged) || !errors.Is(err, ErrDiverged) || info.Problem != err.Error() || info.LagEvents != 0 {
		t.Fatalf("run: %v\nstatus: %v (%+v), want both ErrDiverged", runErr, err, info)
	}
}

// withParam adds a query parameter to a URL-form connection string.
func withParam(url, key, value string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + key + "=" + neturl.PathEscape(value)
}

func openStoreAt(t testing.TB, path string) *local.Store {
	t.Helper()
	s, err := local.Open(path, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func copyTestFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFlushIntervalDoesNotCapCatchUp: while catching up, a batch goes when
// full, however short FlushInterval is; before, each batch was cut at what
// could be read within the interval.
func TestFlushIntervalDoesNotCapCatchUp(t *testing.T) {
	url, schema := pgtest.Schema(t)
	st := openStore(t)
	appendN(t, st, 4_000, jsonData)
	for _, once := range []bool{true, false} {
		t.Run(fmt.Sprint("once=", once), func(t *testing.T) {
			var m Metrics
			o := fastOpts(url, schema, t)
			o.Source, o.Once, o.Metrics, o.BatchEvents, o.FlushInterval = fmt.Sprint("flush-", once), once, &m, 2_000, time.Nanosecond
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, st, o) }()
			if !once {
				testutil.WaitFor(t, deadlockGuard, "4,000 events replicated", func() bool { return m.ReplicatedPosition.Load() == 4_000 })
				cancel()
			}
			if err := recv(t, done, "Run"); err != nil {
				t.Fatal(err)
			}
			if b := m.Batches.Load(); b != 2 {
				t.Fatalf("4,000 events in %d batches, want 2 full ones", b)
			}
		})
	}
}

// TestPermanentServerErrorsStopAtOnce: what no retry can change (an
// unknown setting in the URL, a reserved schema name) returns at once,
// with the server's reason, instead of being retried forever.
func TestPermanentServerErrorsStopAtOnce(t *testing.T) {
	url, schema := pgtest.Schema(t)
	st := openStore(t)
	appendN(t, st, 5, jsonData)
	for _, c := range []struct {
		name, url, schema, want string
	}{
		{"unknown URL parameter", withParam(url, "no_such_setting", "1"), schema, "no_such_setting"},
		{"reserved schema", url, "pg_catalog", "pg_catalog"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := fastOpts(c.url, c.schema, t)
			o.Once, o.RetryFor = true, -1 // forever: only the classification may stop it
			ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
			defer cancel()
			err := Run(ctx, st, o)
			var pe *pgconn.PgError
			if ctx.Err() != nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want the server's refusal naming %q", err, c.want)
			}
		})
	}
}

// TestOnceGivesUp: with Once, an unreachable server is retried for
// RetryFor, then Run returns ErrGaveUp wrapping the last failure; ctx
// ending before the run finished returns ErrInterrupted, not nil.
func TestOnceGivesUp(t *testing.T) {
	st := openStore(t)
	appendN(t, st, 5, jsonData)
	unreachable := "postgres://postgres@127.0.0.1:1/test?connect_timeout=5"

	var m Metrics
	o := fastOpts(unreachable, "evstore", t)
	o.Once, o.RetryFor, o.Metrics = true, 300*time.Millisecond, &m
	gctx, gcancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer gcancel()
	err := Run(gctx, st, o)
	var ce *pgconn.ConnectError
	if !errors.Is(err, ErrGaveUp) || !errors.As(err, &ce) || m.Errors.Load() < 2 {
		t.Fatalf("got %v after %d attempts, want ErrGaveUp wrapping the connect error after retries", err, m.Errors.Load())
	}

	o.RetryFor = -1
	ctx, cancel := context.WithCancel(context.Background())
	m.Errors.Store(0)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, st, o) }()
	testutil.WaitFor(t, deadlockGuard, "two failed attempts", func() bool { return m.Errors.Load() >= 2 })
	cancel()
	if err := recv(t, done, "Run"); !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Once cut short by ctx: got %v, want ErrInterrupted", err)
	}
	// Following the log, ctx ending is the normal way to stop.
	o.Once = false
	ctx, cancel = context.WithCancel(context.Background())
	m.Errors.Store(0)
	go func() { done <- Run(ctx, st, o) }()
	testutil.WaitFor(t, deadlockGuard, "a failed attempt", func() bool { return m.Errors.Load() >= 1 })
	cancel()
	if err := recv(t, done, "Run"); err != nil {
		t.Fatalf("follow mode cut short by ctx: got %v, want nil", err)
	}
}

// TestExpandLogsSayExpansion: expand's outage messages must not speak of
// replication, which is another process an operator may go and restart.
func TestExpandLogsSayExpansion(t *testing.T) {
	var out syncWriter
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Expand(ctx, ExpandOptions{URL: "postgres://postgres@127.0.0.1:1/test?connect_timeout=5",
			Backoff: Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}, Logger: slog.New(slog.NewTextHandler(&out, nil))})
	}()
	testutil.WaitFor(t, deadlockGuard, "a retry logged", func() bool { return strings.Contains(out.String(), "retrying") })
	cancel()
	recv(t, done, "Expand")
	if got := out.String(); !strings.Contains(got, `msg="expansion interrupted, retrying"`) || strings.Contains(got, "replication") {
		t.Fatalf("expand's log:\n%s", got)
	}
}

// syncWriter is a strings.Builder safe for concurrent use.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestExpandSkipsBrokenSource: a source whose frames cannot be expanded (a
// damaged frame here; rows of another log under its name before the
// archive race was closed) must not stop the expansion of the others.
// Expand still reports it.
func TestExpandSkipsBrokenSource(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	conn := pgtest.Conn(t, url)
	st := openStore(t)
	appendN(t, st, 30, jsonData)
	for _, src := range []string{"a-broken", "b-fine"} {
		o := fastOpts(url, schema, t)
		o.Source, o.Layout, o.Once, o.BatchEvents = src, LayoutFrames, true, 10
		if err := Run(ctx, st, o); err != nil {
			t.Fatal(err)
		}
	}
	s := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "UPDATE "+s+".frames SET frame = 'damaged' WHERE source = 'a-broken' AND first_position = 11"); err != nil {
		t.Fatal(err)
	}
	err := Expand(ctx, ExpandOptions{URL: url, Schema: schema, Once: true, BatchEvents: 10, Logger: testLogger(t)})
	if !errors.Is(err, format.ErrCorrupt) || !strings.Contains(err.Error(), "a-broken") {
		t.Fatalf("got %v, want the damaged frame of a-broken", err)
	}
	var a, b int64
	if err := conn.QueryRow(ctx, "SELECT coalesce((SELECT position FROM "+s+".expanded WHERE source = 'a-broken'), 0), "+
		"coalesce((SELECT position FROM "+s+".expanded WHERE source = 'b-fine'), 0)").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a != 10 || b != 30 {
		t.Fatalf("expanded a-broken through %d (want 10, up to the damage), b-fine through %d (want 30)", a, b)
	}
}
