package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
)

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "test.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ev(stream, typ, data string) format.EventData {
	return format.EventData{Stream: stream, Type: typ, Data: []byte(data)}
}

func collect(t testing.TB, seq func(func(format.Event, error) bool)) []format.Event {
	t.Helper()
	var out []format.Event
	for e, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestAppendAndRead(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	last, err := s.Append(ctx, []format.EventData{ev("a", "T1", `1`), ev("b", "T2", `2`), ev("a", "T3", `3`)})
	if err != nil || last != 3 {
		t.Fatalf("append: last=%d err=%v", last, err)
	}
	got := collect(t, s.ReadStream("a", 0))
	if len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 || got[0].Position != 1 || got[1].Position != 3 || got[1].Type != "T3" {
		t.Fatalf("stream a: %+v", got)
	}
	if got[0].ID == "" || got[0].ID == got[1].ID || got[0].Time.IsZero() || got[0].Time.Location() != time.UTC {
		t.Fatalf("ids/times not assigned: %+v", got)
	}
	if all := collect(t, s.ReadAll(2)); len(all) != 2 || all[0].Stream != "b" {
		t.Fatalf("read all from 2: %+v", all)
	}
	if v, _ := s.Version("a"); v != 2 {
		t.Fatalf("version a = %d", v)
	}
	if v, _ := s.Version("missing"); v != 0 {
		t.Fatalf("version of missing = %d", v)
	}
	if got := collect(t, s.ReadStream("missing", 1)); len(got) != 0 {
		t.Fatalf("missing stream yielded %d", len(got))
	}
	if got := collect(t, s.ReadAll(99)); len(got) != 0 {
		t.Fatalf("past head yielded %d", len(got))
	}
	if got := collect(t, s.ReadStream("a", 2)); len(got) != 1 || got[0].Version != 2 {
		t.Fatalf("from version 2: %+v", got)
	}
	if s.Head() != 3 {
		t.Fatalf("head %d", s.Head())
	}
}

func TestPrefixStreamsDoNotMix(t *testing.T) {
	s := openTemp(t, Options{})
	if _, err := s.Append(context.Background(), []format.EventData{ev("a", "T", ""), ev("ab", "T", ""), ev("a b", "T", "")}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"a", "ab", "a b"} {
		if got := collect(t, s.ReadStream(st, 1)); len(got) != 1 || got[0].Stream != st {
			t.Fatalf("stream %q yielded %+v", st, got)
		}
	}
}

func TestExpect(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	if _, err := s.Append(ctx, []format.EventData{ev("a", "T", "")}, Expect{"a", 0}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, []format.EventData{ev("a", "T", "")}, Expect{"a", 0})
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Stream != "a" || ce.Expected != 0 || ce.Actual != 1 {
		t.Fatalf("got %v, want conflict on a 0/1", err)
	}
	// An expectation on a stream that gets no events is still checked, and
	// failing it writes nothing on any stream.
	_, err = s.Append(ctx, []format.EventData{ev("b", "T", "")}, Expect{"a", 5}, Expect{"b", 0})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("read-only expect not checked: %v", err)
	}
	if v, _ := s.Version("b"); v != 0 || s.Head() != 1 {
		t.Fatalf("partial write: b=%d head=%d", v, s.Head())
	}
	if last, err := s.Append(ctx, []format.EventData{ev("b", "T", "")}, Expect{"a", 1}, Expect{"b", 0}); err != nil || last != 2 {
		t.Fatalf("good expects: %d %v", last, err)
	}
}

func TestValidationWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{MaxEventBytes: 100})
	cases := map[string]struct {
		events []format.EventData
		expect []Expect
	}{
		"empty stream":       {events: []format.EventData{ev("", "T", "")}},
		"control char":       {events: []format.EventData{ev("a\tb", "T", "")}},
		"long stream":        {events: []format.EventData{ev(strings.Repeat("x", 256), "T", "")}},
		"invalid utf8":       {events: []format.EventData{ev("\xff", "T", "")}},
		"empty type":         {events: []format.EventData{ev("a", "", "")}},
		"too large":          {events: []format.EventData{ev("a", "T", strings.Repeat("x", 101))}},
		"second event bad":   {events: []format.EventData{ev("a", "T", ""), ev("", "T", "")}},
		"bad expect stream":  {events: []format.EventData{ev("a", "T", "")}, expect: []Expect{{"", 0}}},
		"contradicting exps": {events: []format.EventData{ev("a", "T", "")}, expect: []Expect{{"a", 0}, {"a", 1}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := s.Append(ctx, c.events, c.expect...)
			var ie *format.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an InvalidError", err)
			}
			if s.Head() != 0 {
				t.Fatal("something was written")
			}
		})
	}
	if last, err := s.Append(ctx, nil); err != nil || last != 0 || s.Head() != 0 {
		t.Fatalf("empty append: %d %v", last, err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Write(ctx, Request{Events: []format.EventData{ev("a", "T", "1"), ev("b", "T", "2")}, Key: "k1", Retries: 3})
	if err != nil || r1.Duplicate || len(r1.Events) != 2 {
		t.Fatalf("first write: %+v %v", r1, err)
	}
	r2, err := s.Write(ctx, Request{Events: []format.EventData{ev("a", "T", "other")}, Key: "k1"})
	if err != nil || !r2.Duplicate || r2.Retries != 3 || !slices.EqualFunc(r1.Events, r2.Events, sameEvent) {
		t.Fatalf("duplicate: %+v %v", r2, err)
	}
	if _, err := s.Write(ctx, Request{Key: "empty"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r3, found, err := s.LookupKey("k1")
	if err != nil || !found || !slices.EqualFunc(r1.Events, r3.Events, sameEvent) {
		t.Fatalf("lookup after reopen: %+v %v %v", r3, found, err)
	}
	r4, err := s.Write(ctx, Request{Events: []format.EventData{ev("a", "T", "x")}, Key: "empty"})
	if err != nil || !r4.Duplicate || len(r4.Events) != 0 || s.Head() != 2 {
		t.Fatalf("empty receipt after reopen: %+v %v head=%d", r4, err, s.Head())
	}
}

func sameEvent(a, b format.Event) bool {
	return a.Position == b.Position && a.ID == b.ID && a.Stream == b.Stream && a.Version == b.Version && a.Time.Equal(b.Time)
}

func TestSameKeyConcurrently(t *testing.T) {
	s := openTemp(t, Options{})
	var wg sync.WaitGroup
	results := make([]Receipt, 32)
	for i := range results {
		wg.Go(func() {
			r, err := s.Write(context.Background(), Request{Events: []format.EventData{ev("a", "T", "payload")}, Key: "same"})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	if s.Head() != 1 {
		t.Fatalf("same key appended %d events", s.Head())
	}
	fresh := 0
	for _, r := range results {
		if !r.Duplicate {
			fresh++
		}
		if r.Last() != 1 {
			t.Fatalf("receipt %+v", r)
		}
	}
	if fresh != 1 {
		t.Fatalf("%d requests reported a fresh write", fresh)
	}
	// Every caller owns what it was given.
	results[0].Events[0].Data[0] = 'X'
	for _, r := range results[1:] {
		if string(r.Events[0].Data) != "payload" {
			t.Fatalf("receipts share memory: %q", r.Events[0].Data)
		}
	}
}

func TestGroupCommitRejectsOnlyFailingRequests(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	// Every request claims the same stream at version 0 and also writes its
	// own stream: exactly one may win, the others must leave no trace.
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Append(ctx, []format.EventData{ev("shared", "T", ""), ev(fmt.Sprintf("own-%d", i), "T", "")}, Expect{"shared", 0})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ErrConflict):
			if v, _ := s.Version(fmt.Sprintf("own-%d", i)); v != 0 {
				t.Fatalf("loser %d wrote its own stream", i)
			}
		default:
			t.Fatal(err)
		}
	}
	if won != 1 || s.Head() != 2 {
		t.Fatalf("won=%d head=%d", won, s.Head())
	}
}

func TestConcurrentAppendsGapless(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			stream := fmt.Sprintf("s-%d", w%4)
			for range 100 {
				for {
					v, err := s.Version(stream)
					if err != nil {
						t.Error(err)
						return
					}
					_, err = s.Append(ctx, []format.EventData{ev(stream, "T", "")}, Expect{stream, v})
					if err == nil {
						break
					}
					if !errors.Is(err, ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	all := collect(t, s.ReadAll(1))
	if len(all) != 1600 || s.Head() != 1600 {
		t.Fatalf("%d events, head %d", len(all), s.Head())
	}
	versions := map[string]uint64{}
	for i, e := range all {
		if e.Position != uint64(i+1) {
			t.Fatalf("gap at %d: %d", i+1, e.Position)
		}
		versions[e.Stream]++
		if e.Version != versions[e.Stream] {
			t.Fatalf("stream %s: version %d, want %d", e.Stream, e.Version, versions[e.Stream])
		}
	}
}

func TestReadsCrossChunks(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	const n = readChunk*2 + 17
	batch := make([]format.EventData, 0, n)
	for i := range n {
		batch = append(batch, ev("long", "T", fmt.Sprint(i)), ev("other", "T", ""))
	}
	if _, err := s.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s.ReadStream("long", 1))
	if len(got) != n || got[n-1].Version != n || string(got[n-1].Data) != fmt.Sprint(n-1) {
		t.Fatalf("read %d events", len(got))
	}
	if got := collect(t, s.ReadAll(1)); len(got) != 2*n {
		t.Fatalf("read all: %d", len(got))
	}
	snap, err := s.ReadStreams([]string{"long", "other", "none"}, []uint64{5, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Versions[0] != n || len(snap.Events[0]) != n-5 || snap.Events[0][0].Version != 6 || len(snap.Events[1]) != n || len(snap.Events[2]) != 0 {
		t.Fatalf("snapshot: versions %v, lens %d %d %d", snap.Versions, len(snap.Events[0]), len(snap.Events[1]), len(snap.Events[2]))
	}
	if got := collect(t, s.ReadStreamRange("long", 10, 20)); len(got) != 11 || got[10].Version != 20 {
		t.Fatalf("range: %d", len(got))
	}
	// Breaking out of an iterator early must be fine.
	for range s.ReadAll(1) {
		break
	}
}

func TestSubscribe(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Append(ctx, []format.EventData{ev("a", "T", "")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan format.Event)
	done := make(chan error, 1)
	go func() {
		for e, err := range s.Subscribe(ctx, 1) {
			if err != nil {
				done <- err
				return
			}
			got <- e
		}
		done <- nil
	}()
	if e := <-got; e.Position != 1 {
		t.Fatalf("catch-up got %d", e.Position)
	}
	go func() {
		for i := range 5 {
			s.Append(ctx, []format.EventData{ev("a", "T", fmt.Sprint(i))})
		}
	}()
	for want := uint64(2); want <= 6; want++ {
		if e := <-got; e.Position != want {
			t.Fatalf("live got %d want %d", e.Position, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("subscription ended with %v", err)
	}
}

func TestClosedStore(t *testing.T) {
	s := openTemp(t, Options{})
	s.Close()
	if _, err := s.Append(context.Background(), []format.EventData{ev("a", "T", "")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := s.Version("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestCancelledContextWritesNothing(t *testing.T) {
	s := openTemp(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, []format.EventData{ev("a", "T", "")}); !errors.Is(err, context.Canceled) || s.Head() != 0 {
		t.Fatalf("got %v head %d", err, s.Head())
	}
}

func TestLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, Options{LockTimeout: 50 * time.Millisecond})
	var pe *OpenError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("got %v, want ErrLocked", err)
	}
}

func TestNotAStore(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage, Options{}); !errors.Is(err, ErrNotStore) {
		t.Fatalf("garbage: %v", err)
	}
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("foreign")); return err })
	db.Close()
	if _, err := Open(other, Options{}); !errors.Is(err, ErrNotStore) {
		t.Fatalf("foreign bbolt file: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "no", "such", "dir.db"), Options{}); err == nil || !strings.Contains(err.Error(), "create the directory") {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestCorruptRecordIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "corrupt.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Append(context.Background(), []format.EventData{ev("a", "T", "hello"), ev("a", "T", "world")})
	id := s.ID()
	s.Close()
	db, _ := bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		rec := append([]byte(nil), b.Get(u64(2))...)
		rec[len(rec)-1] ^= 0xff
		return b.Put(u64(2), rec)
	})
	db.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.ID() != id {
		t.Fatalf("store id changed across reopen: %s vs %s", s.ID(), id)
	}
	var got []format.Event
	var ce *format.CorruptError
	for e, err := range s.ReadStream("a", 1) {
		if err != nil {
			if !errors.As(err, &ce) || ce.Position != 2 {
				t.Fatalf("got %v, want corruption at 2", err)
			}
			break
		}
		got = append(got, e)
	}
	if ce == nil || len(got) != 0 {
		// The chunk holding the bad record fails whole: no data from a
		// transaction that saw corruption is handed out.
		t.Fatalf("corruption not reported cleanly: %d events, err %v", len(got), ce)
	}
}
