package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// checkout refuses a basket that is already checked out, as a till's
// command would: a retried request that folds the first one's event must
// still get the first Result, not this error.
type checkout struct {
	basket string
	// before, if set, makes the command read "till" first and discover the
	// basket with ReadAlso; before runs in between, after the key was first
	// looked up and before the basket is read.
	before func()
	yield  bool // let the scheduler interleave inside the execution
}

type basketState struct{ checkedOut bool }

var errCheckedOut = errors.New("basket already checked out")

func (c checkout) Streams() []string {
	if c.before != nil {
		return []string{"till"}
	}
	return []string{c.basket}
}

func (c checkout) Apply(s *basketState, ev format.Event) {
	if c.yield {
		runtime.Gosched()
	}
	s.checkedOut = s.checkedOut || ev.Type == "CheckedOut"
}

// checkoutCmd is checkout with its Handle.
type checkoutCmd struct{ checkout }

func (c checkoutCmd) Handle(ctx context.Context, s basketState) ([]format.EventData, error) {
	if _, ok := Read(ctx, c.basket); !ok {
		c.before()
		return nil, ReadAlso(c.basket)
	}
	if c.yield {
		runtime.Gosched()
	}
	if s.checkedOut {
		return nil, errCheckedOut
	}
	return []format.EventData{{Stream: c.basket, Type: "CheckedOut"}}, nil
}

// The first request commits between the second's key lookup and its read:
// the second folds the first's event and its Handle refuses.
func TestDuplicateCommittedAfterLookupGetsFirstResult(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	// The first request runs on another executor: this one holds the
	// streams the command reads while its Handle runs, and orders its own
	// commands (which the concurrent test below covers).
	other := New(s, Options{})
	ctx := context.Background()
	var first Result
	second := checkoutCmd{checkout{basket: "basket-1", before: func() {
		var err error
		same := checkoutCmd{checkout{basket: "basket-1", before: func() {}}}
		if first, err = Execute(ctx, other, same, Idempotent("order-1")); err != nil {
			t.Error(err)
		}
	}}}
	res, err := Execute(ctx, ex, second, Idempotent("order-1"))
	if err != nil {
		t.Fatalf("retried request got %v, want the first Result", err)
	}
	if !res.Duplicate || res.Position != first.Position || first.Duplicate || s.Head() != 1 {
		t.Fatalf("first %+v, retried %+v, head %d", first, res, s.Head())
	}
	// Without a key the domain error is the answer.
	if _, err := Execute(ctx, ex, checkoutCmd{checkout{basket: "basket-1"}}); !errors.Is(err, errCheckedOut) {
		t.Fatalf("without key: %v", err)
	}
}

// Many concurrent copies of one request, in every interleaving the
// scheduler finds: exactly one appends, all get its Result.
func TestDuplicateUnderConcurrencyGetsFirstResult(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	ctx := context.Background()
	rounds := 200
	if testing.Short() {
		rounds = 50
	}
	for round := range rounds {
		basket := fmt.Sprintf("basket-%d", round)
		copies := 2 + rand.IntN(4)
		results := make([]Result, copies)
		errs := make([]error, copies)
		var wg sync.WaitGroup
		for i := range copies {
			wg.Go(func() {
				cmd := checkoutCmd{checkout{basket: basket, yield: true}}
				results[i], errs[i] = Execute(ctx, ex, cmd, Idempotent("order-"+basket))
			})
		}
		wg.Wait()
		firsts := 0
		for i := range copies {
			if errs[i] != nil {
				t.Fatalf("round %d copy %d: %v", round, i, errs[i])
			}
			if !results[i].Duplicate {
				firsts++
			}
			if results[i].Position != results[0].Position || len(results[i].Events) != 1 {
				t.Fatalf("round %d: results differ: %+v vs %+v", round, results[i], results[0])
			}
		}
		if firsts != 1 {
			t.Fatalf("round %d: %d copies appended", round, firsts)
		}
	}
	if s.Head() != uint64(rounds) {
		t.Fatalf("head %d, want %d", s.Head(), rounds)
	}
}

func TestKeyReusedByAnotherCommand(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	ctx := context.Background()
	if _, err := Execute(ctx, ex, checkoutCmd{checkout{basket: "b1"}}, Idempotent("k1")); err != nil {
		t.Fatal(err)
	}
	other := funcCommand[seen]{streams: []string{"b1"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		return []format.EventData{{Stream: "b1", Type: "Other"}}, nil
	}}
	for name, run := range map[string]func() error{
		"other type": func() error { _, err := Execute(ctx, ex, other, Idempotent("k1")); return err },
		"other stream": func() error {
			_, err := Execute(ctx, ex, checkoutCmd{checkout{basket: "b2"}}, Idempotent("k1"))
			return err
		},
		"other fingerprint": func() error {
			_, err := Execute(ctx, ex, checkoutCmd{checkout{basket: "b1"}}, Idempotent("k1"), WithFingerprint([]byte("args")))
			return err
		},
	} {
		err := run()
		var kr *local.KeyReusedError
		if !errors.Is(err, ErrKeyReused) || !errors.As(err, &kr) || kr.Key != "k1" {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The same command again is a duplicate, not a reuse.
	if res, err := Execute(ctx, ex, checkoutCmd{checkout{basket: "b1"}}, Idempotent("k1")); err != nil || !res.Duplicate {
		t.Fatalf("same request: %+v %v", res, err)
	}
	if s.Head() != 1 {
		t.Fatalf("head %d: a reused key wrote", s.Head())
	}
}

// A reused key is caught at commit too, when the first request commits
// between the second's lookup and its write.
func TestKeyReusedCaughtAtCommit(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	ctx := context.Background()
	second := checkoutCmd{checkout{basket: "b2", before: func() {
		if _, err := Execute(ctx, ex, checkoutCmd{checkout{basket: "b1"}}, Idempotent("k1")); err != nil {
			t.Error(err)
		}
	}}}
	if _, err := Execute(ctx, ex, second, Idempotent("k1")); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("got %v", err)
	}
	if s.Head() != 1 {
		t.Fatalf("head %d", s.Head())
	}
}

func TestReadTellsEmptyFromUnread(t *testing.T) {
	s, _ := openStore(t)
	appendRaw(t, s, "index")
	ex := New(s, Options{})
	calls := 0
	cmd := funcCommand[seen]{streams: []string{"index"}, apply: recordApply, handle: func(ctx context.Context, st seen) ([]format.EventData, error) {
		calls++
		// "empty" does not exist: an unread and an empty stream fold the
		// same nothing, Read tells them apart.
		if _, ok := Read(ctx, "empty"); !ok {
			return nil, ReadAlso("empty")
		}
		if v, _ := Read(ctx, "index"); v != 1 {
			return nil, fmt.Errorf("index read at %d", v)
		}
		if v, _ := Read(ctx, "empty"); v != 0 {
			return nil, fmt.Errorf("empty read at %d", v)
		}
		return []format.EventData{{Stream: "empty", Type: "First"}}, nil
	}}
	res, err := Execute(context.Background(), ex, cmd)
	if err != nil || calls != 2 || res.Events[0].Version != 1 {
		t.Fatalf("res %+v err %v calls %d", res, err, calls)
	}
	if _, ok := Read(context.Background(), "index"); ok {
		t.Fatal("Read outside Handle")
	}
}

func TestReadAlsoOfReadStreamFailsAtOnce(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	calls := 0
	cmd := funcCommand[seen]{streams: []string{"index"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		calls++
		return nil, ReadAlso("index", "empty") // the naive check: "nothing folded from empty yet"
	}}
	_, err := Execute(context.Background(), ex, cmd)
	var ar *AlreadyReadError
	if !errors.Is(err, ErrAlreadyRead) || !errors.As(err, &ar) || calls != 2 {
		t.Fatalf("err %v, Handle called %d times", err, calls)
	}
	if s.Head() != 0 {
		t.Fatal("wrote")
	}
}

// decoding is a command whose events carry JSON it must decode.
type decoding struct{}

type decodedState struct{ total int }

func (decoding) Streams() []string { return []string{"amounts"} }
func (decoding) Apply(*decodedState, format.Event) {
	panic("the executor calls TryApply")
}
func (decoding) TryApply(s *decodedState, ev format.Event) error {
	var v struct{ Amount int }
	if err := json.Unmarshal(ev.Data, &v); err != nil {
		return err
	}
	s.total += v.Amount
	return nil
}
func (decoding) Handle(_ context.Context, s decodedState) ([]format.EventData, error) {
	return []format.EventData{{Stream: "amounts", Type: "Added", Data: fmt.Appendf(nil, `{"Amount":%d}`, s.total)}}, nil
}

type snapDecoding struct{ decoding }

func (snapDecoding) SnapshotKey() string                    { return "decoding" }
func (snapDecoding) CloneState(s decodedState) decodedState { return s }

func TestTryApplyErrorStopsTheCommand(t *testing.T) {
	for name, cmd := range map[string]Command[decodedState]{"plain": decoding{}, "snapshot": snapDecoding{}} {
		t.Run(name, func(t *testing.T) {
			s, _ := openStore(t)
			ex := New(s, Options{})
			ctx := context.Background()
			if _, err := Execute(ctx, ex, cmd); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, []format.EventData{{Stream: "amounts", Type: "Added", Data: []byte(`{"Amount":"ten"}`)}}); err != nil {
				t.Fatal(err)
			}
			_, err := Execute(ctx, ex, cmd, Idempotent("k"))
			var ae *ApplyError
			var je *json.UnmarshalTypeError
			if !errors.Is(err, ErrApply) || !errors.As(err, &ae) || !errors.As(err, &je) || ae.Position != 2 || ae.Version != 2 || ae.Stream != "amounts" {
				t.Fatalf("err %v (%+v)", err, ae)
			}
			if s.Head() != 2 {
				t.Fatalf("head %d", s.Head())
			}
			if _, found, _ := s.LookupKey("k"); found {
				t.Fatal("a failed fold stored its key")
			}
		})
	}
}

func TestPerCallMaxRetries(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{MaxRetries: 1000})
	var calls atomic.Int32
	cmd := funcCommand[seen]{streams: []string{"A"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		calls.Add(1)
		appendRaw(t, s, "A") // someone else always wins
		return []format.EventData{{Stream: "A", Type: "Lost"}}, nil
	}}
	_, err := Execute(context.Background(), ex, cmd, WithMaxRetries(2))
	if !errors.Is(err, local.ErrConflict) || calls.Load() != 3 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
}

func TestExecuteFromHandleOnHeldStreamFails(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	inner := funcCommand[seen]{streams: []string{"b", "a"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) {
		return nil, nil
	}}
	var innerErr error
	outer := funcCommand[seen]{streams: []string{"a"}, apply: recordApply, handle: func(ctx context.Context, _ seen) ([]format.EventData, error) {
		_, innerErr = Execute(ctx, ex, inner)
		return nil, nil
	}}
	if _, err := Execute(context.Background(), ex, outer); err != nil {
		t.Fatal(err)
	}
	var re *ReentrantError
	if !errors.Is(innerErr, ErrReentrant) || !errors.As(innerErr, &re) || re.Stream != "a" {
		t.Fatalf("inner: %v", innerErr)
	}
	// On other streams, or another executor, it runs.
	inner.streams = []string{"b"}
	if _, err := Execute(context.Background(), ex, outer); err != nil || innerErr != nil {
		t.Fatalf("outer %v, inner %v", err, innerErr)
	}
}
