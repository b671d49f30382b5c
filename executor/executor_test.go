package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

func openStore(t testing.TB) (*local.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ex.db")
	s, err := local.Open(path, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// funcCommand builds a Command from closures, for tests.
type funcCommand[S any] struct {
	streams []string
	apply   func(*S, format.Event)
	handle  func(context.Context, S) ([]format.EventData, error)
}

func (c funcCommand[S]) Streams() []string          { return c.streams }
func (c funcCommand[S]) Apply(s *S, e format.Event) { c.apply(s, e) }
func (c funcCommand[S]) Handle(ctx context.Context, s S) ([]format.EventData, error) {
	return c.handle(ctx, s)
}

// seen records the positions folded, to check order and from-zero folding.
type seen []uint64

func recordApply(s *seen, e format.Event) { *s = append(*s, e.Position) }

func appendRaw(t testing.TB, s *local.Store, stream string) {
	t.Helper()
	if _, err := s.Append(context.Background(), []format.EventData{{Stream: stream, Type: "Raw"}}); err != nil {
		t.Fatal(err)
	}
}

func TestApplyInGlobalOrder(t *testing.T) {
	s, _ := openStore(t)
	for _, st := range []string{"a", "b", "a", "c", "b", "a"} {
		appendRaw(t, s, st)
	}
	ex := New(s, Options{})
	var got seen
	cmd := funcCommand[seen]{
		streams: []string{"b", "a"},
		apply:   recordApply,
		handle: func(_ context.Context, st seen) ([]format.EventData, error) {
			got = st
			return nil, nil
		},
	}
	if _, err := Execute(context.Background(), ex, cmd); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 2, 3, 5, 6}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("folded %v, want %v", got, want)
	}
}

func TestWriteSkewIsRefused(t *testing.T) {
	s, _ := openStore(t)
	appendRaw(t, s, "A")
	ex := New(s, Options{MaxRetries: -1})
	cmd := funcCommand[seen]{
		streams: []string{"A", "B"},
		apply:   recordApply,
		handle: func(context.Context, seen) ([]format.EventData, error) {
			appendRaw(t, s, "A") // A changes after the command read it
			return []format.EventData{{Stream: "B", Type: "Decided"}}, nil
		},
	}
	_, err := Execute(context.Background(), ex, cmd)
	var ce *local.ConflictError
	if !errors.Is(err, local.ErrConflict) || !errors.As(err, &ce) || ce.Stream != "A" {
		t.Fatalf("got %v, want a conflict on A", err)
	}
	if v, _ := s.Version("B"); v != 0 {
		t.Fatal("B was written on stale state")
	}
}

func TestRetryRefoldsFromZero(t *testing.T) {
	s, _ := openStore(t)
	appendRaw(t, s, "A")
	ex := New(s, Options{})
	var calls []seen
	cmd := funcCommand[seen]{
		streams: []string{"A", "B"},
		apply:   recordApply,
		handle: func(_ context.Context, st seen) ([]format.EventData, error) {
			calls = append(calls, st)
			if len(calls) == 1 {
				appendRaw(t, s, "A")
			}
			return []format.EventData{{Stream: "B", Type: "Decided"}}, nil
		},
	}
	res, err := Execute(context.Background(), ex, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retries != 1 || len(calls) != 2 || fmt.Sprint(calls[0]) != "[1]" || fmt.Sprint(calls[1]) != "[1 2]" {
		t.Fatalf("retries %d, states %v", res.Retries, calls)
	}
	if res.Position != 3 || len(res.Events) != 1 || res.Events[0].Stream != "B" {
		t.Fatalf("result %+v", res)
	}
}

func TestHandleErrorReturnedUnchanged(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	domain := errors.New("insufficient funds")
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		return []format.EventData{{Stream: "A", Type: "X"}}, domain
	}}
	if _, err := Execute(context.Background(), ex, cmd); err != domain {
		t.Fatalf("got %v", err)
	}
	if s.Head() != 0 {
		t.Fatal("written despite Handle error")
	}
}

func TestUndeclaredStreamRefused(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		return []format.EventData{{Stream: "A", Type: "X"}, {Stream: "elsewhere", Type: "X"}}, nil
	}}
	_, err := Execute(context.Background(), ex, cmd)
	var ue *UndeclaredStreamError
	if !errors.Is(err, ErrUndeclaredStream) || !errors.As(err, &ue) || ue.Stream != "elsewhere" {
		t.Fatalf("got %v", err)
	}
	if s.Head() != 0 {
		t.Fatal("written despite undeclared stream")
	}
}

func TestReadAlso(t *testing.T) {
	s, _ := openStore(t)
	// index points at the stream to update, as a StreamResolver would.
	if _, err := s.Append(context.Background(), []format.EventData{{Stream: "index", Type: "Points", Data: []byte(`"target"`)}, {Stream: "target", Type: "Raw"}}); err != nil {
		t.Fatal(err)
	}
	type state struct {
		target string
		folded []uint64
	}
	ex := New(s, Options{})
	rounds := 0
	cmd := funcCommand[state]{
		streams: []string{"index"},
		apply: func(st *state, e format.Event) {
			st.folded = append(st.folded, e.Position)
			if e.Stream == "index" {
				json.Unmarshal(e.Data, &st.target)
			}
		},
		handle: func(_ context.Context, st state) ([]format.EventData, error) {
			rounds++
			if len(st.folded) < 2 {
				return nil, ReadAlso(st.target)
			}
			return []format.EventData{{Stream: st.target, Type: "Updated"}}, nil
		},
	}
	res, err := Execute(context.Background(), ex, cmd)
	if err != nil || rounds != 2 || res.Events[0].Stream != "target" || res.Events[0].Version != 2 {
		t.Fatalf("res %+v err %v rounds %d", res, err, rounds)
	}
	// A discovered stream joins the conflict checks too.
	skew := funcCommand[state]{
		streams: []string{"index"},
		apply:   cmd.apply,
		handle: func(_ context.Context, st state) ([]format.EventData, error) {
			if len(st.folded) < 2 {
				return nil, ReadAlso("target")
			}
			appendRaw(t, s, "target")
			return []format.EventData{{Stream: "index", Type: "Noted"}}, nil
		},
	}
	if _, err := Execute(context.Background(), New(s, Options{MaxRetries: -1}), skew); !errors.Is(err, local.ErrConflict) {
		t.Fatalf("discovered stream not checked: %v", err)
	}
	endless := funcCommand[state]{streams: []string{"index"}, apply: cmd.apply, handle: func(context.Context, state) ([]format.EventData, error) {
		return nil, ReadAlso(fmt.Sprintf("s-%d", rand.Int()))
	}}
	if _, err := Execute(context.Background(), ex, endless); !errors.Is(err, ErrDiscoveryLimit) {
		t.Fatalf("endless discovery: %v", err)
	}
}

func TestIdempotentAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		calls++
		return []format.EventData{{Stream: "A", Type: "Once"}}, nil
	}}
	first, err := Execute(context.Background(), New(s, Options{}), cmd, Idempotent("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again, err := Execute(context.Background(), New(s, Options{}), cmd, Idempotent("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || s.Head() != 1 || again.Position != first.Position || again.Events[0].ID != first.Events[0].ID || first.Duplicate || !again.Duplicate {
		t.Fatalf("calls %d head %d first %+v again %+v", calls, s.Head(), first, again)
	}
}

func TestIdempotentConcurrentSameKey(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		return []format.EventData{{Stream: "A", Type: "Once"}}, nil
	}}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if res, err := Execute(context.Background(), ex, cmd, Idempotent("k")); err != nil || res.Position != 1 {
				t.Errorf("res %+v err %v", res, err)
			}
		})
	}
	wg.Wait()
	if s.Head() != 1 {
		t.Fatalf("head %d", s.Head())
	}
}

func TestWithMetadata(t *testing.T) {
	s, _ := openStore(t)
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		return []format.EventData{{Stream: "A", Type: "X", Metadata: map[string]string{"own": "1", "correlation-id": "mine"}}}, nil
	}}
	res, err := Execute(context.Background(), New(s, Options{}), cmd, WithMetadata(map[string]string{"correlation-id": "c", "user": "u"}))
	if err != nil {
		t.Fatal(err)
	}
	md := res.Events[0].Metadata
	if md["own"] != "1" || md["user"] != "u" || md["correlation-id"] != "mine" {
		t.Fatalf("metadata %v", md)
	}
}

func TestContextStopsRetries(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{MaxRetries: 1000, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		if calls.Add(1) == 5 {
			cancel()
		}
		appendRaw(t, s, "A") // always lose the race
		return []format.EventData{{Stream: "A", Type: "X"}}, nil
	}}
	if _, err := Execute(ctx, ex, cmd); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{MaxRetries: 3, BaseBackoff: time.Microsecond})
	calls := 0
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		calls++
		appendRaw(t, s, "A")
		return []format.EventData{{Stream: "A", Type: "X"}}, nil
	}}
	if _, err := Execute(context.Background(), ex, cmd); !errors.Is(err, local.ErrConflict) || calls != 4 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
}

func TestInvalidStreamsRefused(t *testing.T) {
	s, _ := openStore(t)
	cmd := funcCommand[seen]{streams: []string{"bad\nname"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) { return nil, nil }}
	if _, err := Execute(context.Background(), New(s, Options{}), cmd); !errors.Is(err, format.ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

// account is a minimal bank account for the concurrency test; the real
// bank commands live in package commands.
type balances map[string]int64

type transfer struct {
	from, to string
	amount   int64
}

var errFunds = errors.New("insufficient funds")

func (c transfer) Streams() []string { return []string{c.from, c.to} }
func (c transfer) Apply(b *balances, e format.Event) {
	if *b == nil {
		*b = balances{}
	}
	var d struct{ Amount int64 }
	json.Unmarshal(e.Data, &d)
	if e.Type == "Debited" {
		d.Amount = -d.Amount
	}
	(*b)[e.Stream] += d.Amount
}
func (c transfer) Handle(_ context.Context, b balances) ([]format.EventData, error) {
	if b[c.from] < c.amount {
		return nil, errFunds
	}
	data := fmt.Appendf(nil, `{"amount":%d}`, c.amount)
	return []format.EventData{{Stream: c.from, Type: "Debited", Data: data}, {Stream: c.to, Type: "Credited", Data: data}}, nil
}

func TestConcurrentTransfersKeepInvariants(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	const accounts, initial = 50, 1000
	var funding []format.EventData
	for i := range accounts {
		funding = append(funding, format.EventData{Stream: fmt.Sprintf("acct-%d", i), Type: "Credited", Data: fmt.Appendf(nil, `{"amount":%d}`, initial)})
	}
	if _, err := s.Append(ctx, funding); err != nil {
		t.Fatal(err)
	}
	// Two executors on one store: each orders its own commands, so only
	// commands of different executors conflict and retry. A small cache so
	// eviction runs too.
	exs := []*Executor{New(s, Options{MaxRetries: 100, CacheEvents: 200}), New(s, Options{MaxRetries: 100, CacheEvents: 200})}
	var retries, ok, refused atomic.Int64
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for g := range 64 {
		ex := exs[g%2]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				a, b := rand.IntN(accounts), rand.IntN(accounts)
				if a == b {
					continue
				}
				res, err := Execute(ctx, ex, transfer{fmt.Sprintf("acct-%d", a), fmt.Sprintf("acct-%d", b), rand.Int64N(300) + 1})
				switch {
				case err == nil:
					ok.Add(1)
					retries.Add(int64(res.Retries))
				case errors.Is(err, errFunds):
					refused.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var folded balances
	versions := map[string]uint64{}
	var pos uint64
	for e, err := range s.ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		if pos++; e.Position != pos {
			t.Fatalf("position gap at %d", pos)
		}
		if versions[e.Stream]++; e.Version != versions[e.Stream] {
			t.Fatalf("version gap in %s", e.Stream)
		}
		transfer{}.Apply(&folded, e)
	}
	var total int64
	for st, bal := range folded {
		if bal < 0 {
			t.Fatalf("%s is negative: %d", st, bal)
		}
		total += bal
	}
	if total != accounts*initial || pos != s.Head() {
		t.Fatalf("total %d, head %d/%d", total, s.Head(), pos)
	}
	t.Logf("%d transfers, %d refused, %d retries", ok.Load(), refused.Load(), retries.Load())
}

// Commands of one executor on the same hot streams never conflict: each
// folds on top of the writes queued before it, so none is retried.
func TestOneExecutorNeverConflictsWithItself(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	ex := New(s, Options{MaxRetries: -1})
	inc := funcCommand[int]{streams: []string{"hot"}, apply: func(n *int, e format.Event) {
		var v int
		if err := json.Unmarshal(e.Data, &v); err != nil || v != *n+1 {
			panic(fmt.Sprintf("event %d of hot says %s", e.Version, e.Data))
		}
		*n = v
	}, handle: func(_ context.Context, n int) ([]format.EventData, error) {
		return []format.EventData{{Stream: "hot", Type: "Inc", Data: fmt.Append(nil, n+1)}}, nil
	}}
	both := funcCommand[int]{streams: []string{"hot", "other"}, apply: func(n *int, e format.Event) { *n++ }, handle: func(_ context.Context, n int) ([]format.EventData, error) {
		return []format.EventData{{Stream: "other", Type: "Seen", Data: fmt.Append(nil, n)}}, nil
	}}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for range 25 {
				var err error
				var res Result
				if g%4 == 0 {
					res, err = Execute(ctx, ex, both)
				} else {
					res, err = Execute(ctx, ex, inc)
				}
				if err != nil || res.Retries != 0 {
					t.Errorf("res %+v err %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v, _ := s.Version("hot"); v != 12*25 {
		t.Fatalf("hot at %d, want %d", v, 12*25)
	}
	// Every "other" event counted exactly the events before it in both
	// streams, queued ones included.
	var n int
	for e, err := range s.ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Stream == "other" && string(e.Data) != fmt.Sprint(n) {
			t.Fatalf("event %d: saw %s events before it, want %d", e.Position, e.Data, n)
		}
		n++
	}
}

// Writes queued by this executor fail (their callers give up while they
// wait in the queue) and another writer moves the stream under it: the
// commands built on a failed write are rejected and run again, and the
// stream stays exactly the sequence each command decided on. Longer with
// EVSTORE_LONG=1.
func TestQueuedWritesThatFailAreNotBuiltOn(t *testing.T) {
	for _, mode := range []string{"plain", "snapshot", "per-stream"} {
		t.Run(mode, func(t *testing.T) { testQueuedWritesThatFail(t, mode) })
	}
}

// snapInt is a funcCommand[int] that keeps its states; streamInt keeps
// them per stream.
type snapInt struct{ funcCommand[int] }

func (snapInt) SnapshotKey() string  { return "int" }
func (snapInt) CloneState(n int) int { return n }

type streamInt struct{ snapInt }

func (streamInt) MergeState(dst *int, part int, _ string) { *dst = part }

func testQueuedWritesThatFail(t *testing.T, mode string) {
	s, _ := openStore(t)
	ex := New(s, Options{MaxRetries: 1000})
	d := 300 * time.Millisecond
	if os.Getenv("EVSTORE_LONG") != "" {
		d = 10 * time.Second
	}
	// Apply counts Inc events and checks each is the next number.
	var broken atomic.Value
	inc := funcCommand[int]{streams: []string{"hot"}, apply: func(n *int, e format.Event) {
		if e.Type != "Inc" {
			return
		}
		if string(e.Data) != fmt.Sprint(*n+1) {
			broken.Store(fmt.Sprintf("Inc %s at version %d after %d", e.Data, e.Version, *n))
		}
		*n++
	}, handle: func(_ context.Context, n int) ([]format.EventData, error) {
		return []format.EventData{{Stream: "hot", Type: "Inc", Data: fmt.Append(nil, n+1)}}, nil
	}}
	deadline := time.Now().Add(d)
	var cancelled, ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(2000))*time.Microsecond)
				var err error
				switch mode {
				case "plain":
					_, err = Execute(ctx, ex, inc)
				case "snapshot":
					_, err = Execute(ctx, ex, Command[int](snapInt{inc}))
				default:
					_, err = Execute(ctx, ex, Command[int](streamInt{snapInt{inc}}))
				}
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
					cancelled.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() { // a writer the executor cannot see
		for time.Now().Before(deadline) {
			appendRaw(t, s, "hot")
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	if b := broken.Load(); b != nil {
		t.Fatal(b)
	}
	var n int
	for e, err := range s.ReadStream("hot", 1) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == "Inc" {
			if n++; string(e.Data) != fmt.Sprint(n) {
				t.Fatalf("Inc at version %d says %s, want %d", e.Version, e.Data, n)
			}
		}
	}
	t.Logf("%d Inc committed, %d calls ok, %d cancelled", n, ok.Load(), cancelled.Load())
}
