package executor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evstore/evstore/format"
)

// positionsCmd keeps the positions it folded, so a test can compare the
// state Handle saw with a fold from zero. It writes the number of events it
// saw into its event.
type positionsCmd struct {
	streams []string
	applied *atomic.Int64
	seen    *[]uint64 // what the last Handle saw
	mutate  bool      // Handle scribbles on its state
}

type positions struct {
	pos []uint64
	by  map[string]int // events per stream
}

func (c positionsCmd) Streams() []string { return c.streams }

func (c positionsCmd) Apply(s *positions, ev format.Event) {
	c.applied.Add(1)
	if s.by == nil {
		s.by = map[string]int{}
	}
	s.pos = append(s.pos, ev.Position)
	s.by[ev.Stream]++
}

func (c positionsCmd) Handle(_ context.Context, s positions) ([]format.EventData, error) {
	if c.seen != nil {
		*c.seen = slices.Clone(s.pos)
	}
	if c.mutate && len(s.pos) > 0 {
		s.pos[0] = 0
		s.by["bogus"] = 1
	}
	return []format.EventData{{Stream: c.streams[0], Type: "Saw", Data: []byte(strconv.Itoa(len(s.pos)))}}, nil
}

func (positionsCmd) SnapshotKey() string { return "positions" }

func (positionsCmd) CloneState(s positions) positions {
	c := positions{pos: slices.Clone(s.pos), by: make(map[string]int, len(s.by))}
	for k, v := range s.by {
		c.by[k] = v
	}
	return c
}

// foldFromZero is what Apply would see without snapshots.
func foldFromZero(t *testing.T, ex *Executor, streams ...string) []uint64 {
	t.Helper()
	var out []uint64
	for e, err := range ex.Store().ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(streams, e.Stream) {
			out = append(out, e.Position)
		}
	}
	return out
}

func TestSnapshotFoldsOnlyNewEvents(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	ex := New(s, Options{})
	var applied atomic.Int64
	var seen []uint64
	cmd := positionsCmd{streams: []string{"a", "b"}, applied: &applied, seen: &seen, mutate: true}
	for round := range 5 {
		// Others write to both streams and to one we do not read between
		// our commands, so the fold has to merge old and new events.
		appendRaw(t, s, "b")
		appendRaw(t, s, "other")
		appendRaw(t, s, "a")
		before := foldFromZero(t, ex, "a", "b")
		applied.Store(0)
		if _, err := Execute(ctx, ex, Command[positions](cmd)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seen, before) {
			t.Fatalf("round %d: Handle saw %v, a fold from zero gives %v", round, seen, before)
		}
		// The first command folds everything; later ones only the two raw
		// events and their own previous event.
		if want := int64(3); round > 0 && applied.Load() != want {
			t.Fatalf("round %d: Apply ran %d times, want %d", round, applied.Load(), want)
		}
	}
}

func TestSnapshotDisabled(t *testing.T) {
	s, _ := openStore(t)
	ex := New(s, Options{CacheStates: -1})
	var applied atomic.Int64
	cmd := positionsCmd{streams: []string{"a"}, applied: &applied}
	for range 3 {
		if _, err := Execute(context.Background(), ex, Command[positions](cmd)); err != nil {
			t.Fatal(err)
		}
	}
	if applied.Load() != 0+1+2 {
		t.Fatalf("Apply ran %d times, want 3 (every command folds from zero)", applied.Load())
	}
}

// Under contention, snapshots are taken by commands that then lose their
// race, and used by commands whose reads are older or newer. Every commit
// must still be decided on exactly the events before it.
func TestSnapshotUnderContention(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	ex := New(s, Options{MaxRetries: 1000, CacheStates: 2}) // tiny, so entries are also evicted
	var applied atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			streams := []string{"a", "b"}
			if i%4 == 0 {
				streams = []string{"b", "a"} // another read set, another key
			}
			for range 20 {
				if _, err := Execute(ctx, ex, Command[positions](positionsCmd{streams: streams, applied: &applied})); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	before := 0
	for e, err := range s.ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		if got := string(e.Data); got != strconv.Itoa(before) {
			t.Fatalf("event at %d says its command saw %s events, but %d came before it", e.Position, got, before)
		}
		before++
	}
	if before != 16*20 {
		t.Fatalf("%d events, want %d", before, 16*20)
	}
}

func TestStateCacheKeepsNewerState(t *testing.T) {
	c := newStateCache(10)
	k := stateKey{name: "k"}
	c.put(k, 1, []uint64{5, 3})
	if st, vs, ok := c.get(k); !ok || st != 1 || !slices.Equal(vs, []uint64{5, 3}) {
		t.Fatalf("get = %v %v %v", st, vs, ok)
	}
	c.put(k, 2, []uint64{4, 3}) // older: ignored
	if st, _, _ := c.get(k); st != 1 {
		t.Fatalf("an older state replaced a newer one: %v", st)
	}
	for i := range 20 {
		c.put(stateKey{name: fmt.Sprint(i)}, i, []uint64{0})
	}
	if c.lru.Len() != 10 || len(c.byKey) != 10 {
		t.Fatalf("cache holds %d/%d entries, limit 10", c.lru.Len(), len(c.byKey))
	}
}
