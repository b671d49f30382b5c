package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evstore/evstore/format"
)

// sale reads a fresh basket and long stock streams, as a till's Checkout
// does, and keeps per-stream states.
type sale struct {
	basket  string
	skus    []string
	applied *atomic.Int64
	seen    *map[string]int // event count per stream Handle saw
}

type saleState struct {
	events map[string]int // per stream
}

func (c sale) Streams() []string { return append([]string{c.basket}, c.skus...) }

func (c sale) Apply(s *saleState, ev format.Event) {
	c.applied.Add(1)
	if s.events == nil {
		s.events = map[string]int{}
	}
	if uint64(s.events[ev.Stream])+1 != ev.Version {
		panic(fmt.Sprintf("%s: version %d after %d events", ev.Stream, ev.Version, s.events[ev.Stream]))
	}
	s.events[ev.Stream]++
}

func (c sale) Handle(_ context.Context, s saleState) ([]format.EventData, error) {
	if c.seen != nil {
		*c.seen = maps.Clone(s.events)
	}
	out := []format.EventData{{Stream: c.basket, Type: "CheckedOut"}}
	for _, sku := range c.skus {
		out = append(out, format.EventData{Stream: sku, Type: "Sold"})
	}
	return out, nil
}

func (sale) SnapshotKey() string { return "sale" }
func (sale) CloneState(s saleState) saleState {
	return saleState{events: maps.Clone(s.events)}
}
func (sale) MergeState(dst *saleState, part saleState, stream string) {
	if dst.events == nil {
		dst.events = map[string]int{}
	}
	if n, ok := part.events[stream]; ok {
		dst.events[stream] = n
	}
}

// A fresh basket next to long stock streams: each command folds only
// what is new in each stream, and reads nothing it folded before (the
// event cache is off).
func TestStreamSnapshotterFoldsOnlyNewEvents(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	for range 300 {
		appendRaw(t, s, "stock-a")
		appendRaw(t, s, "stock-b")
	}
	ex := New(s, Options{CacheEvents: -1})
	var applied atomic.Int64
	var seen map[string]int
	for i := range 10 {
		appendRaw(t, s, "stock-b") // someone else sells b
		applied.Store(0)
		cmd := sale{basket: fmt.Sprintf("basket-%d", i), skus: []string{"stock-a", "stock-b"}, applied: &applied, seen: &seen}
		if i%2 == 1 {
			cmd.skus = []string{"stock-b"}
		}
		if _, err := Execute(ctx, ex, Command[saleState](cmd)); err != nil {
			t.Fatal(err)
		}
		va, _ := s.Version("stock-a")
		vb, _ := s.Version("stock-b")
		wantB := int(vb) - 1 // before this command's own event
		if seen["stock-b"] != wantB || (i%2 == 0 && seen["stock-a"] != int(va)-1) || seen["basket-"+fmt.Sprint(i)] != 0 {
			t.Fatalf("command %d saw %v; stock-a at %d, stock-b at %d", i, seen, va, vb)
		}
		if i >= 2 && applied.Load() > 3 {
			t.Fatalf("command %d: Apply ran %d times; a per-stream state should leave at most 3 new events", i, applied.Load())
		}
	}
}

// Concurrent sales on shared stock from one executor: every Handle sees
// exactly the events before its commit, and none is retried.
func TestStreamSnapshotterConcurrent(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	ex := New(s, Options{MaxRetries: -1, CacheStates: 3})
	var applied atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				var seen map[string]int
				skus := []string{"stock-a", "stock-b", "stock-c"}[g%3:]
				cmd := sale{basket: fmt.Sprintf("basket-%d-%d", g, i), skus: skus, applied: &applied, seen: &seen}
				res, err := Execute(ctx, ex, Command[saleState](cmd))
				if err != nil {
					t.Error(err)
					return
				}
				for _, ev := range res.Events {
					if strings.HasPrefix(ev.Stream, "stock-") && uint64(seen[ev.Stream])+1 != ev.Version {
						t.Errorf("%s: Handle saw %d events, its event is version %d", ev.Stream, seen[ev.Stream], ev.Version)
					}
				}
			}
		})
	}
	wg.Wait()
}

type pointerSnap struct{ funcCommand[seen] }

func (*pointerSnap) SnapshotKey() string    { return "p" }
func (*pointerSnap) CloneState(s seen) seen { return s }

func TestPointerSnapshotterPassedByValueRefused(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{})
	cmd := pointerSnap{funcCommand[seen]{streams: []string{"a"}, apply: recordApply, handle: func(context.Context, seen) ([]format.EventData, error) { return nil, nil }}}
	_, err := Execute(context.Background(), ex, Command[seen](cmd))
	var pe *PointerSnapshotterError
	if !errors.Is(err, ErrPointerSnapshotter) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "pointerSnap") {
		t.Fatalf("by value: %v", err)
	}
	if _, err := Execute(context.Background(), ex, Command[seen](&cmd)); err != nil {
		t.Fatalf("by pointer: %v", err)
	}
}

// outer embeds positionsCmd and so has its SnapshotKey, but folds
// differently: it must not start from positionsCmd's kept states.
type outer struct{ positionsCmd }

func (c outer) Apply(s *positions, ev format.Event) {
	c.positionsCmd.Apply(s, ev)
	c.positionsCmd.Apply(s, ev) // counts every event twice
}

func TestEmbeddingTypeKeepsItsOwnStates(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	ex := New(s, Options{})
	var applied atomic.Int64
	var seen []uint64
	inner := positionsCmd{streams: []string{"a"}, applied: &applied, seen: &seen}
	for range 3 {
		if _, err := Execute(ctx, ex, Command[positions](inner)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Execute(ctx, ex, Command[positions](outer{inner})); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 6 {
		t.Fatalf("outer saw %d positions, want 6 (3 events folded twice each): it started from inner's state", len(seen))
	}
}

// With a kept state, an execution reads only past it: the read set holds
// the new events, not the stream from its start, even with no event cache.
func TestSnapshotReadsOnlyPastKeptState(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	for range 500 {
		appendRaw(t, s, "long")
	}
	for _, cacheStates := range []int{0, -1} {
		ex := New(s, Options{CacheEvents: -1, CacheStates: cacheStates})
		var applied atomic.Int64
		cmd := positionsCmd{streams: []string{"long"}, applied: &applied}
		if _, err := Execute(ctx, ex, Command[positions](cmd)); err != nil { // keeps the state
			t.Fatal(err)
		}
		appendRaw(t, s, "long")
		f := &folder[positions]{ex: ex, cmd: cmd, typ: reflect.TypeOf(cmd), mode: snapWhole, snap: cmd}
		if cacheStates < 0 {
			f.mode = snapNone
		}
		rs := &readSet{ex: ex}
		rs.add(cmd.Streams())
		if err := f.refresh(ctx, rs, nil); err != nil {
			t.Fatal(err)
		}
		v, _ := s.Version("long")
		held := len(rs.events[0])
		if cacheStates < 0 {
			if held != int(v) {
				t.Fatalf("without kept states: held %d events, want all %d", held, v)
			}
			continue
		}
		// The kept state is from before the first command's own event.
		if rs.base[0] != v-2 || held != 2 {
			t.Fatalf("kept state at %d, %d events read; want the kept state at %d and 2 events read", rs.base[0], held, v-2)
		}
	}
}
