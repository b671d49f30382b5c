package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate/pgtest"
)

func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

func openStore(t testing.TB) *local.Store {
	t.Helper()
	s, err := local.Open(filepath.Join(t.TempDir(), "events.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t testing.TB, s *local.Store, n int, data func(i int) []byte) {
	t.Helper()
	evs := make([]format.EventData, 0, n)
	for i := range n {
		evs = append(evs, format.EventData{
			Stream:   fmt.Sprintf("s-%d", i%7),
			Type:     "T",
			Data:     data(i),
			Metadata: map[string]string{"i": fmt.Sprint(i)},
		})
	}
	if _, err := s.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func jsonData(i int) []byte { return fmt.Appendf(nil, `{"amount":%d}`, i) }

func fastOpts(url, schema string, t testing.TB) Options {
	return Options{
		URL: url, Schema: schema, Source: "test",
		Backoff:          Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		FlushInterval:    20 * time.Millisecond,
		LockWait:         300 * time.Millisecond,
		ErrorLogInterval: time.Second,
		Logger:           testLogger(t),
	}
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	n, err := Migrate(ctx, url, schema)
	if err != nil || n != SchemaVersion {
		t.Fatalf("first migration: applied %d, err %v", n, err)
	}
	conn := pgtest.Conn(t, url)
	var before time.Time
	s := pgx.Identifier{schema}.Sanitize()
	if err := conn.QueryRow(ctx, "SELECT max(applied_at) FROM "+s+".schema_migrations").Scan(&before); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if n, err := Migrate(ctx, url, schema); err != nil || n != 0 {
			t.Fatalf("second migration: applied %d, err %v", n, err)
		}
	}
	var count int
	var after time.Time
	if err := conn.QueryRow(ctx, "SELECT count(*), max(applied_at) FROM "+s+".schema_migrations").Scan(&count, &after); err != nil {
		t.Fatal(err)
	}
	if count != SchemaVersion || !after.Equal(before) {
		t.Fatalf("migrations table changed: %d rows, applied_at %v -> %v", count, before, after)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	url, schema := pgtest.Schema(t)
	errs := make(chan error, 4)
	total := make(chan int, 4)
	for range 4 {
		go func() {
			n, err := Migrate(context.Background(), url, schema)
			errs <- err
			total <- n
		}()
	}
	sum := 0
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		sum += <-total
	}
	if sum != SchemaVersion {
		t.Fatalf("migrations applied %d times in total, want %d", sum, SchemaVersion)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, url, schema); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Conn(t, url)
	if _, err := conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".schema_migrations (version) VALUES (999)"); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, url, schema); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
}

func TestRunOnceSmall(t *testing.T) {
	url, schema := pgtest.Schema(t)
	st := openStore(t)
	appendN(t, st, 250, jsonData)
	for _, layout := range []Layout{LayoutRows, LayoutFrames} {
		t.Run(string(layout), func(t *testing.T) {
			o := fastOpts(url, schema, t)
			o.Once, o.Layout, o.Source, o.BatchEvents = true, layout, "small-"+string(layout), 100
			var m Metrics
			o.Metrics = &m
			var calls int
			o.Progress = func(ProgressInfo) { calls++ }
			if err := Run(context.Background(), st, o); err != nil {
				t.Fatal(err)
			}
			if got := m.ReplicatedPosition.Load(); got != 250 {
				t.Fatalf("replicated %d, want 250", got)
			}
			if m.Batches.Load() != 3 || calls != 4 {
				t.Fatalf("%d batches, %d progress calls; want 3 and 4", m.Batches.Load(), calls)
			}
			// A second run has nothing to do.
			if err := Run(context.Background(), st, o); err != nil {
				t.Fatal(err)
			}
			info, err := Status(context.Background(), st, url, schema, o.Source)
			if err != nil {
				t.Fatal(err)
			}
			if info.Replicated != 250 || info.LagEvents != 0 || info.Layout != layout {
				t.Fatalf("status %+v", info)
			}
		})
	}
}

// TestPayloadColumns covers where each kind of payload lands, through both
// layouts: JSON in data, everything else (including JSON that jsonb refuses)
// byte for byte in data_raw, an empty payload as two NULLs. Expand must give
// exactly the rows that the rows layout gives.
func TestPayloadColumns(t *testing.T) {
	url, schema := pgtest.Schema(t)
	st := openStore(t)
	payloads := []struct {
		data string
		raw  bool
	}{
		{`{"amount": 1}`, false},
		{`{"n":1e999999}`, true}, // valid JSON, out of numeric's range: the PostgreSQL fallback
		{`{"s":"\u0000"}`, true},
		{"\x00\x01binary\xff", true},
		{``, false},
		{`[true,null]`, false},
	}
	var evs []format.EventData
	for i, p := range payloads {
		evs = append(evs, format.EventData{Stream: fmt.Sprintf("p-%d", i), Type: "T", Data: []byte(p.data),
			Metadata: map[string]string{"nul": "a\x00b"}})
	}
	if _, err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := fastOpts(url, schema, t)
	o.Once = true
	o.Source = "rows"
	if err := Run(ctx, st, o); err != nil {
		t.Fatal(err)
	}
	o.Source, o.Layout = "frames", LayoutFrames
	if err := Run(ctx, st, o); err != nil {
		t.Fatal(err)
	}
	if err := Expand(ctx, ExpandOptions{URL: url, Schema: schema, Once: true, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Conn(t, url)
	s := pgx.Identifier{schema}.Sanitize()
	for _, source := range []string{"rows", "frames"} {
		for i, p := range payloads {
			var data *string
			var raw []byte
			var meta string
			err := conn.QueryRow(ctx, "SELECT data::text, data_raw, metadata->>'nul' FROM "+s+".events WHERE source = $1 AND position = $2",
				source, i+1).Scan(&data, &raw, &meta)
			if err != nil {
				t.Fatalf("%s position %d: %v", source, i+1, err)
			}
			switch {
			case p.data == "":
				if data != nil || raw != nil {
					t.Errorf("%s %d: empty payload stored as %v / %q", source, i+1, data, raw)
				}
			case p.raw:
				if data != nil || string(raw) != p.data {
					t.Errorf("%s %d: want data_raw %q, got data %v raw %q", source, i+1, p.data, data, raw)
				}
			default:
				if data == nil || raw != nil {
					t.Errorf("%s %d: want jsonb, got data %v raw %q", source, i+1, data, raw)
				}
			}
			if meta != "a\uFFFDb" {
				t.Errorf("%s %d: metadata %q", source, i+1, meta)
			}
		}
	}
	var diff int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (
		(SELECT position, stream, version, type, id, recorded_at, metadata, data, data_raw FROM `+s+`.events WHERE source = 'rows'
		 EXCEPT SELECT position, stream, version, type, id, recorded_at, metadata, data, data_raw FROM `+s+`.events WHERE source = 'frames')
		UNION ALL
		(SELECT position, stream, version, type, id, recorded_at, metadata, data, data_raw FROM `+s+`.events WHERE source = 'frames'
		 EXCEPT SELECT position, stream, version, type, id, recorded_at, metadata, data, data_raw FROM `+s+`.events WHERE source = 'rows')) d`).Scan(&diff); err != nil {
		t.Fatal(err)
	}
	if diff != 0 {
		t.Fatalf("expanded frames differ from rows in %d rows", diff)
	}
}

func TestFollowShipsWithinFlushInterval(t *testing.T) {
	url, schema := pgtest.Schema(t)
	st := openStore(t)
	appendN(t, st, 10, jsonData)
	o := fastOpts(url, schema, t)
	o.FlushInterval = 100 * time.Millisecond
	var m Metrics
	o.Metrics = &m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, st, o) }()
	testutil.WaitFor(t, 10*time.Second, "10 events replicated", func() bool { return m.ReplicatedPosition.Load() == 10 })
	for round := range 5 {
		appendN(t, st, 3, jsonData)
		start := time.Now()
		want := uint64(13 + 3*round)
		testutil.WaitFor(t, 10*time.Second, "the new events replicated", func() bool { return m.ReplicatedPosition.Load() == want })
		if d := time.Since(start); d > time.Second {
			t.Errorf("round %d: new events took %v to reach PostgreSQL", round, d)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
}

// TestExpandFollowAndConcurrent runs three Expand workers in follow mode
// against a frames replicator that keeps shipping: every event must land in
// the events table exactly once (the unique constraints would fail a
// duplicate), in order.
func TestExpandFollowAndConcurrent(t *testing.T) {
	url, schema := pgtest.Schema(t)
	st := openStore(t)
	appendN(t, st, 3000, jsonData)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := fastOpts(url, schema, t)
	o.Layout, o.BatchEvents = LayoutFrames, 250
	errs := make(chan error, 4)
	go func() { errs <- Run(ctx, st, o) }()
	for range 3 {
		go func() {
			errs <- Expand(ctx, ExpandOptions{URL: url, Schema: schema, PollInterval: 20 * time.Millisecond, BatchEvents: 400,
				Backoff: Backoff{Min: 20 * time.Millisecond}, Logger: testLogger(t)})
		}()
	}
	for range 10 {
		appendN(t, st, 100, jsonData)
		time.Sleep(20 * time.Millisecond)
	}
	conn := pgtest.Conn(t, url)
	s := pgx.Identifier{schema}.Sanitize()
	testutil.WaitFor(t, 30*time.Second, "every event expanded", func() bool {
		var n int64
		conn.QueryRow(ctx, "SELECT count(*) FROM "+s+".events").Scan(&n)
		return n == 4000
	})
	cancel()
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ctx = context.Background()
	var n, maxPos, expanded int64
	if err := conn.QueryRow(ctx, "SELECT count(DISTINCT position), max(position), (SELECT position FROM "+s+".expanded) FROM "+s+".events").Scan(&n, &maxPos, &expanded); err != nil {
		t.Fatal(err)
	}
	if n != 4000 || maxPos != 4000 || expanded != 4000 {
		t.Fatalf("%d distinct positions up to %d, expanded %d", n, maxPos, expanded)
	}
	info, err := Status(ctx, st, url, schema, "test")
	if err != nil || info.Expanded != 4000 || info.Replicated != 4000 {
		t.Fatalf("status %+v, %v", info, err)
	}
}
