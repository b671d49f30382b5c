package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
)

// TestMain only removes what tests share (the 100,000-event log, the
// fault suite's binaries) after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	bigLog.close()
	removeBuilt()
	os.Exit(code)
}

// The size: 100,000 events over 1,000 streams, whatever -short says.
const (
	bigEvents  = 100_000
	bigStreams = 1_000
)

// bigLog is built once and shared by the tests that replicate it (each into
// its own schema): building it is the slow part.
var bigLog sharedLog

type sharedLog struct {
	once      sync.Once
	dir       string
	store     *local.Store
	amountSum int64
	err       error
}

func (l *sharedLog) get(t testing.TB) (*local.Store, int64) {
	t.Helper()
	l.once.Do(func() {
		start := time.Now()
		l.dir, l.err = os.MkdirTemp("", "evstore-integration-")
		if l.err != nil {
			return
		}
		l.store, l.err = local.Open(filepath.Join(l.dir, "big.db"), local.Options{NoSync: true})
		if l.err != nil {
			return
		}
		l.amountSum, l.err = appendEvents(l.store, 0, bigEvents, bigStreams)
		t.Logf("built a log of %d events over %d streams in %v", bigEvents, bigStreams, time.Since(start).Round(time.Millisecond))
	})
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.store, l.amountSum
}

func (l *sharedLog) close() {
	if l.store != nil {
		l.store.Close()
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// appendEvents appends n events numbered from seq over streams streams, in
// appends of 1,000, and returns the sum of their "amount" fields. Payloads
// and metadata look like a real application's.
func appendEvents(s *local.Store, seq, n, streams int) (int64, error) {
	var sum int64
	types := []string{"Deposited", "Withdrawn", "TransferSent", "TransferReceived"}
	for done := 0; done < n; {
		k := min(1000, n-done)
		evs := make([]format.EventData, k)
		for j := range evs {
			i := seq + done + j
			amount := int64(i*7919%100_000) + 1
			sum += amount
			md := map[string]string{"correlation-id": fmt.Sprintf("req-%08x", i/4)}
			if i%3 == 0 {
				md["causation-id"] = fmt.Sprintf("cmd-%08x", i/3)
			}
			evs[j] = format.EventData{
				Stream:   fmt.Sprintf("account-%04d", i%streams),
				Type:     types[i%len(types)],
				Data:     fmt.Appendf(nil, `{"amount":%d,"currency":"EUR","account":"account-%04d","note":"payment %d","tags":["a","b"]}`, amount, i%streams, i),
				Metadata: md,
			}
		}
		if _, err := s.Append(context.Background(), evs); err != nil {
			return 0, err
		}
		done += k
	}
	return sum, nil
}

func openTestStore(t testing.TB, path string) *local.Store {
	t.Helper()
	s, err := local.Open(path, local.Options{NoSync: true, LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTestStore(t testing.TB, events int) *local.Store {
	t.Helper()
	s := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	if _, err := appendEvents(s, 0, events, 50); err != nil {
		t.Fatal(err)
	}
	return s
}

func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t, slog.LevelInfo) }

// fastOptions shrink every wait so failures and recoveries happen in test
// time.
func fastOptions(t testing.TB, url, schema, source string) replicate.Options {
	return replicate.Options{
		URL: url, Schema: schema, Source: source,
		FlushInterval:    20 * time.Millisecond,
		Backoff:          replicate.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		LockWait:         time.Second,
		BatchTimeout:     10 * time.Second,
		ErrorLogInterval: time.Second,
		Logger:           testLogger(t),
	}
}

func ident(schema string) string { return pgx.Identifier{schema}.Sanitize() }

// verifySource checks that PostgreSQL's events rows for source are exactly
// the local log: same count, same order, every field equal (payloads as
// JSON values, since jsonb normalizes their text; times to the microsecond,
// PostgreSQL's precision). It also checks the source's position.
func verifySource(t testing.TB, conn *pgx.Conn, schema, source string, store *local.Store) {
	t.Helper()
	ctx := context.Background()
	s := ident(schema)
	var pos int64
	if err := conn.QueryRow(ctx, "SELECT position FROM "+s+".sources WHERE name = $1", source).Scan(&pos); err != nil {
		t.Fatalf("source %q: %v", source, err)
	}
	if uint64(pos) != store.Head() {
		t.Fatalf("source %q is at position %d, the log's head is %d", source, pos, store.Head())
	}
	rows, err := conn.Query(ctx, `SELECT position, stream, version, type, id, recorded_at, metadata, data, data_raw
		FROM `+s+`.events WHERE source = $1 ORDER BY position`, source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	next, stop := iter.Pull2(store.ReadAll(1))
	defer stop()
	n := 0
	for rows.Next() {
		var (
			p, version  int64
			stream, typ string
			id          uuid.UUID
			at          time.Time
			meta        map[string]string
			data, raw   []byte
		)
		if err := rows.Scan(&p, &stream, &version, &typ, &id, &at, &meta, &data, &raw); err != nil {
			t.Fatal(err)
		}
		ev, err, ok := next()
		if !ok {
			t.Fatalf("source %q: PostgreSQL has position %d beyond the log", source, p)
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		got := format.Event{Position: uint64(p), Stream: stream, Version: uint64(version), Type: typ, ID: id.String(), Time: at.UTC(), Metadata: meta}
		want := ev
		want.Time = want.Time.Truncate(time.Microsecond)
		want.Data, got.Data = nil, nil
		if len(want.Metadata) == 0 {
			want.Metadata = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("source %q row %d differs:\n got %+v\nwant %+v", source, n, got, want)
		}
		switch {
		case raw != nil:
			if data != nil || !bytes.Equal(raw, ev.Data) {
				t.Fatalf("source %q position %d: data_raw %q, want %q", source, p, raw, ev.Data)
			}
		case len(ev.Data) == 0:
			if data != nil {
				t.Fatalf("source %q position %d: data %s for an empty payload", source, p, data)
			}
		default:
			if !sameJSON(data, ev.Data) {
				t.Fatalf("source %q position %d: data %s, want %s", source, p, data, ev.Data)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := next(); ok {
		t.Fatalf("source %q: PostgreSQL has %d events, the log more", source, n)
	}
	if uint64(n) != store.Head() {
		t.Fatalf("source %q: %d rows, head %d", source, n, store.Head())
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func tableBytes(t testing.TB, conn *pgx.Conn, schema, table string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), "SELECT pg_total_relation_size($1::regclass)", ident(schema)+"."+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
