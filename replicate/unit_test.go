package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/replicate/pgtest"
)

func TestBatchLimits(t *testing.T) {
	ev := func(pos uint64, size int) format.Event {
		return format.Event{Position: pos, Stream: "s", Type: "t", Data: make([]byte, size)}
	}
	tests := []struct {
		name      string
		maxEvents int
		maxBytes  int
		sizes     []int
		fullAt    int // index of the add that reports full, -1 for none
	}{
		{"by count", 3, 1 << 20, []int{1, 1, 1}, 2},
		{"by bytes", 100, 1000, []int{400, 400, 400}, 2},
		{"one huge event", 100, 1000, []int{5000}, 0},
		{"not full", 10, 1 << 20, []int{1, 2, 3}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatch(tt.maxEvents, tt.maxBytes)
			for i, size := range tt.sizes {
				if want := b.next(10); want != uint64(11+i) {
					t.Fatalf("next position %d, want %d", want, 11+i)
				}
				full := b.add(ev(uint64(11+i), size))
				if full != (i == tt.fullAt) {
					t.Fatalf("add %d: full=%v", i, full)
				}
				if full {
					break
				}
			}
			b.reset()
			if b.len() != 0 || b.bytes != 0 || b.full() {
				t.Fatal("reset left state behind")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(Backoff{Min: time.Second, Max: 10 * time.Second, Jitter: 0.5})
	nominal := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i, n := range nominal {
		d := b.next()
		hi := n * time.Second
		lo := max(hi/2, time.Second)
		if d > hi || d < lo {
			t.Fatalf("attempt %d: %v outside [%v, %v]", i, d, lo, hi)
		}
	}
	for range 100 { // no overflow however long the outage
		if d := b.next(); d < time.Second || d > 10*time.Second {
			t.Fatalf("wait %v after many attempts", d)
		}
	}
	b.reset()
	if d := b.next(); d != time.Second {
		t.Fatalf("after reset: %v, want the minimum", d)
	}
	exact := newBackoff(Backoff{Min: time.Second, Max: 10 * time.Second, Jitter: -1})
	for i, want := range []time.Duration{1, 2, 4, 8, 10} {
		if d := exact.next(); d != want*time.Second {
			t.Fatalf("negative jitter, attempt %d: %v, want exactly %v", i, d, want*time.Second)
		}
	}
	def := Backoff{}.withDefaults()
	if def.Min != time.Second || def.Max != 5*time.Minute || def.Jitter != 0.5 {
		t.Fatalf("defaults %+v", def)
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db":                             "postgres://u@h/db",
		"postgres://h/db?password=secret":               "postgres://h/db?password=xxxxx",
		"host=h user=u password=secret dbname=d":        "host=h user=u password=xxxxx dbname=d",
		"host=h password='se cret' dbname=d":            "host=h password=xxxxx dbname=d",
		// net/url refuses these; the password must still not show.
		"postgres://u:secret@h:abc/db":               "postgres://u:xxxxx@h:abc/db",
		"postgres://u:se@cret@h:x/db":                "postgres://u:xxxxx@h:x/db",
		"postgres://u:secret@h:x/db?password=secret": "postgres://u:xxxxx@h:x/db?password=xxxxx",
	}
	for in, want := range tests {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(RedactURL(in), "secret") || strings.Contains(RedactURL(in), "cret") {
			t.Errorf("%q leaks the password", in)
		}
	}
}

func TestPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{errors.New("connection refused"), false},
		{context.DeadlineExceeded, false},
		{&pgconn.PgError{Code: "57P01"}, false}, // admin shutdown
		{&pgconn.PgError{Code: "40001"}, false}, // serialization failure
		{&pgconn.PgError{Code: "28P01"}, true},  // bad password
		{&pgconn.PgError{Code: "23505"}, true},
		{fmt.Errorf("wrapped: %w", &Error{Kind: ErrStoreMismatch}), true},
		{&localError{errors.New("x")}, true},
		{fmt.Errorf("frame: %w", format.ErrCorrupt), true},
		{fmt.Errorf("source %q is no longer claimed", "x"), false},
		{&pgconn.PgError{Code: "42939"}, true},  // reserved name (pg_catalog)
		{&pgconn.PgError{Code: "42704"}, true},  // unrecognized configuration parameter
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table: migrated again next session
		{&pgconn.PgError{Code: "57P03"}, false}, // starting up
		{&pgconn.PgError{Code: "53300"}, false}, // too many connections
	}
	for _, tt := range tests {
		if got := permanent(tt.err); got != tt.want {
			t.Errorf("permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	err := error(&Error{Kind: ErrConcurrent, Source: "h1", Detail: "pid 7 holds the source lock", Hint: "stop it"})
	want := `another replicator is running for source "h1": pid 7 holds the source lock; stop it`
	if err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
	if !errors.Is(err, ErrConcurrent) || errors.Is(err, ErrAhead) {
		t.Fatal("errors.Is does not match the kind")
	}
}

func TestOptionsDefaults(t *testing.T) {
	const id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	o, err := Options{URL: "postgres://x"}.withDefaults(id)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if o.Source != host+"-0a1b2c3d" || o.RetryFor != 0 || o.ActiveWindow != time.Hour || o.ProbeInterval != time.Second || o.Schema != "evstore" || o.Layout != LayoutRows || o.BatchEvents != 10000 ||
		o.BatchBytes != 8<<20 || o.FlushInterval != 200*time.Millisecond || o.Backoff.Max != 5*time.Minute {
		t.Fatalf("defaults %+v", o)
	}
	if o, _ := (Options{URL: "postgres://x", Once: true}).withDefaults(id); o.RetryFor != DefaultRetryFor {
		t.Fatalf("Once: RetryFor %v, want %v", o.RetryFor, DefaultRetryFor)
	}
	for _, bad := range []Options{{}, {URL: "x", Layout: "columns"}, {URL: "x", Source: "a\nb"}, {URL: "x", Schema: strings.Repeat("s", 64)}} {
		if _, err := bad.withDefaults(id); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestMetricsLag(t *testing.T) {
	var m Metrics
	now := time.Now()
	if m.LagEvents() != 0 || m.LagSeconds(now) != 0 {
		t.Fatal("zero metrics report lag")
	}
	m.HeadPosition.Store(10)
	m.ReplicatedPosition.Store(4)
	m.OldestPending.Store(now.Add(-3 * time.Second).UnixNano())
	if m.LagEvents() != 6 || m.LagSeconds(now) != 3 {
		t.Fatalf("lag %d events, %v s", m.LagEvents(), m.LagSeconds(now))
	}
	m.ReplicatedPosition.Store(10)
	if m.LagSeconds(now) != 0 {
		t.Fatal("caught up but lag seconds reported")
	}
}

var jsonCases = []struct {
	in   string
	safe bool
}{
	{`{"amount":5}`, true},
	{`[1,2,3]`, true},
	{`"text"`, true},
	{`{"s":"caf\u00e9 \ud83d\ude00"}`, true},
	{`{"s":"a\\u0000"}`, true}, // an escaped backslash, then "u0000": plain text
	{`{"s":"\u0000"}`, false},
	{`{"s":"\ud83d"}`, false},
	{`{"s":"\ude00"}`, false},
	{`{"s":"\ud83dx"}`, false},
	{`{"s":"\ud83d\u0041"}`, false},
	{"{\"s\":\"\xff\"}", false},
	{`{"a":1,}`, false},
	{`not json`, false},
	{``, false},
}

func TestJSONBSafe(t *testing.T) {
	for _, c := range jsonCases {
		if got := jsonbSafe([]byte(c.in)); got != c.safe {
			t.Errorf("jsonbSafe(%q) = %v, want %v", c.in, got, c.safe)
		}
	}
}

// TestJSONBSafeAgreesWithPostgres checks the local test against jsonb itself:
// whatever jsonbSafe accepts, PostgreSQL must accept too.
func TestJSONBSafeAgreesWithPostgres(t *testing.T) {
	url := pgtest.URL(t)
	conn := pgtest.Conn(t, url)
	for _, c := range jsonCases {
		if !c.safe {
			continue
		}
		if _, err := conn.Exec(context.Background(), "SELECT $1::text::jsonb", c.in); err != nil {
			t.Errorf("jsonbSafe accepts %q but PostgreSQL says %v", c.in, err)
		}
	}
}

func TestMetadataJSON(t *testing.T) {
	got, n := metadataJSON(map[string]string{"b": "<x>", "a": "1"})
	if string(got) != `{"a":"1","b":"<x>"}` || n != 0 {
		t.Fatalf("got %s, %d", got, n)
	}
	got, n = metadataJSON(map[string]string{"k": "a\x00b"})
	if string(got) != `{"k":"a`+"\uFFFD"+`b"}` || n != 1 {
		t.Fatalf("got %s, %d", got, n)
	}
}

func TestSchemaVersionMatchesMigrations(t *testing.T) {
	if SchemaVersion != len(migrations)-1 {
		t.Fatalf("SchemaVersion is %d but the last migration is %d", SchemaVersion, len(migrations)-1)
	}
}
