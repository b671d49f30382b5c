package projection_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/projection"
)

func openStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.Open(filepath.Join(t.TempDir(), "p.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s *local.Store, stream, typ string, n int) {
	t.Helper()
	evs := make([]format.EventData, n)
	for i := range evs {
		evs[i] = format.EventData{Stream: stream, Type: typ, Data: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	if _, err := s.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// counter counts events per stream and in total, and remembers the
// positions it saw so a test can tell a repeat or a gap.
type counter struct {
	name string
	fail func(ev format.Event) error // optional
	mu   sync.Mutex
	seen []uint64
}

func (c *counter) Name() string { return c.name }

func (c *counter) Apply(tx *projection.Tx, ev format.Event) error {
	if c.fail != nil {
		if err := c.fail(ev); err != nil {
			return err
		}
	}
	for _, k := range []string{"total", "stream/" + ev.Stream} {
		n := uint64(0)
		if v := tx.Get([]byte(k)); v != nil {
			n = binary.BigEndian.Uint64(v)
		}
		if err := tx.Put([]byte(k), binary.BigEndian.AppendUint64(nil, n+1)); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.seen = append(c.seen, ev.Position)
	c.mu.Unlock()
	return nil
}

func count(t *testing.T, s *local.Store, name, key string) uint64 {
	t.Helper()
	v, err := projection.Get(s, name, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func runOnce(t *testing.T, s *local.Store, p projection.Projection, opts projection.Options) error {
	t.Helper()
	opts.Once = true
	return projection.Run(context.Background(), s, p, opts)
}

func TestRunCatchesUpAndResumes(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "a-1", "T", 30)
	appendN(t, s, "b-1", "T", 20)
	c := &counter{name: "counts"}
	if err := runOnce(t, s, c, projection.Options{BatchEvents: 7}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "counts", "total"); got != 50 {
		t.Fatalf("total %d, want 50", got)
	}
	appendN(t, s, "a-1", "T", 5)
	if err := runOnce(t, s, c, projection.Options{}); err != nil {
		t.Fatal(err)
	}
	if got, a := count(t, s, "counts", "total"), count(t, s, "counts", "stream/a-1"); got != 55 || a != 35 {
		t.Fatalf("total %d, a-1 %d; want 55, 35", got, a)
	}
	for i, p := range c.seen {
		if p != uint64(i+1) {
			t.Fatalf("applied positions %v: not 1..55 once each", c.seen)
		}
	}
	if pos, err := projection.Position(s, "counts"); err != nil || pos != 55 {
		t.Fatalf("Position = %d, %v", pos, err)
	}
	if v, err := projection.Get(s, "counts", []byte("nope")); v != nil || err != nil {
		t.Errorf("absent key: %q, %v", v, err)
	}
	if v, err := projection.Get(s, "never-ran", []byte("total")); v != nil || err != nil {
		t.Errorf("absent projection: %q, %v", v, err)
	}
	if pos, err := projection.Position(s, "never-ran"); pos != 0 || err != nil {
		t.Errorf("Position of absent projection: %d, %v", pos, err)
	}
	// Another projection's keys are its own.
	if v, _ := projection.Get(s, "other", []byte("total")); v != nil {
		t.Error("a projection sees another's keys")
	}
}

func TestFilters(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "account-a", "Deposited", 3)
	appendN(t, s, "account-b", "Withdrawn", 2)
	appendN(t, s, "order-1", "Deposited", 4)
	appendN(t, s, "accounting-x", "Deposited", 1)
	for _, tt := range []struct {
		name     string
		opts     projection.Options
		want     uint64
		positons []uint64
	}{
		{"all", projection.Options{}, 10, nil},
		{"prefix", projection.Options{StreamPrefixes: []string{"account-"}}, 5, nil},
		{"two-prefixes", projection.Options{StreamPrefixes: []string{"account-", "order-"}}, 9, nil},
		{"type", projection.Options{Types: []string{"Deposited"}}, 8, nil},
		{"prefix-and-type", projection.Options{StreamPrefixes: []string{"account-"}, Types: []string{"Deposited"}}, 3, nil},
		{"nothing", projection.Options{Types: []string{"Nope"}}, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &counter{name: "f-" + tt.name}
			if err := runOnce(t, s, c, tt.opts); err != nil {
				t.Fatal(err)
			}
			if got := count(t, s, c.name, "total"); got != tt.want || uint64(len(c.seen)) != tt.want {
				t.Errorf("applied %d (Apply called %d times), want %d", got, len(c.seen), tt.want)
			}
			// Filtered events still move the checkpoint.
			if pos, _ := projection.Position(s, c.name); pos != s.Head() {
				t.Errorf("checkpoint %d, head %d", pos, s.Head())
			}
		})
	}
}

func TestApplyErrorStopsProjectionNotStore(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "s", "T", 10)
	boom := errors.New("boom")
	c := &counter{name: "stops", fail: func(ev format.Event) error {
		if ev.Position == 6 {
			return boom
		}
		return nil
	}}
	err := runOnce(t, s, c, projection.Options{})
	ae, ok := errors.AsType[*projection.ApplyError](err)
	if !ok || ae.Position != 6 || !errors.Is(err, boom) || !errors.Is(err, projection.ErrApply) || ae.Stream != "s" {
		t.Fatalf("err = %v, want an ApplyError at 6 wrapping boom", err)
	}
	if !strings.Contains(err.Error(), "position 6") {
		t.Errorf("message %q does not name the position", err)
	}
	// Events 1..5 are applied, 6's writes are undone.
	if got := count(t, s, "stops", "total"); got != 5 {
		t.Errorf("total %d, want 5", got)
	}
	in, err := projection.Status(s, "stops")
	if err != nil || in.State != projection.StateFailed || in.Position != 5 || in.ErrorPosition != 6 || in.Error != "boom" || in.Lag != 5 {
		t.Errorf("status = %+v, %v", in, err)
	}
	// The store goes on.
	appendN(t, s, "s", "T", 1)
	// Fixed, it resumes at the failed event and clears the error.
	c.fail = nil
	if err := runOnce(t, s, c, projection.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "stops", "total"); got != 11 {
		t.Errorf("total %d, want 11", got)
	}
	in, _ = projection.Status(s, "stops")
	if in.State != projection.StateCaughtUp || in.Error != "" || in.ErrorPosition != 0 {
		t.Errorf("status after the fix = %+v", in)
	}

	// A panic is an error at its event too.
	p := &counter{name: "panics", fail: func(ev format.Event) error {
		if ev.Position == 3 {
			var m map[string]int
			m["x"] = 1
		}
		return nil
	}}
	err = runOnce(t, s, p, projection.Options{})
	if ae, ok := errors.AsType[*projection.ApplyError](err); !ok || ae.Position != 3 {
		t.Fatalf("panic: %v", err)
	}
	if _, ok := errors.AsType[*local.PanicError](err); !ok {
		t.Errorf("panic: %v, want a local.PanicError inside", err)
	}
	if got := count(t, s, "panics", "total"); got != 2 {
		t.Errorf("total %d after a panic at 3, want 2", got)
	}
	if _, err := s.Append(context.Background(), []format.EventData{{Stream: "s", Type: "T"}}); err != nil {
		t.Errorf("append after a projection panicked: %v", err)
	}
}

// badPut fails inside Apply through the Tx: the key is empty.
type badPut struct{}

func (badPut) Name() string { return "bad-put" }
func (badPut) Apply(tx *projection.Tx, ev format.Event) error {
	if ev.Position == 2 {
		return tx.Put(nil, []byte("x"))
	}
	return tx.Put([]byte("k"), []byte(ev.Type))
}

func TestTxRejectsBadKeys(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "s", "T", 3)
	err := runOnce(t, s, badPut{}, projection.Options{})
	if ae, ok := errors.AsType[*projection.ApplyError](err); !ok || ae.Position != 2 || !errors.Is(err, format.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

func TestRebuildAndDrop(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "s", "T", 10)
	c := &counter{name: "rb"}
	if err := runOnce(t, s, c, projection.Options{}); err != nil {
		t.Fatal(err)
	}
	// A new version of the projection counts only one type: Rebuild drops
	// the old counts and the checkpoint together.
	appendN(t, s, "s", "U", 2)
	c2 := &counter{name: "rb"}
	if err := projection.Rebuild(context.Background(), s, c2, projection.Options{Types: []string{"U"}, Once: true}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "rb", "total"); got != 2 {
		t.Errorf("after rebuild total %d, want 2", got)
	}
	if len(c2.seen) != 2 || c2.seen[0] != 11 {
		t.Errorf("rebuild applied %v", c2.seen)
	}
	if err := projection.Drop(context.Background(), s, "rb"); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, "rb", "total"); got != 0 {
		t.Errorf("after drop total %d", got)
	}
	if _, err := projection.Status(s, "rb"); !errors.Is(err, projection.ErrNotFound) {
		t.Errorf("status after drop: %v", err)
	}
	if err := projection.Drop(context.Background(), s, "rb"); err != nil {
		t.Errorf("dropping twice: %v", err)
	}
}

func TestStatusAndList(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "s", "T", 4)
	a := &counter{name: "a"}
	if err := runOnce(t, s, a, projection.Options{}); err != nil {
		t.Fatal(err)
	}
	b := &counter{name: "b"}
	if err := runOnce(t, s, b, projection.Options{}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "s", "T", 3)
	if err := runOnce(t, s, a, projection.Options{}); err != nil {
		t.Fatal(err)
	}
	list, err := projection.List(s)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if in := list[0]; in.Name != "a" || in.Position != 7 || in.Lag != 0 || in.State != projection.StateCaughtUp || in.Kind != projection.KindInStore || in.Updated.IsZero() {
		t.Errorf("a: %+v", in)
	}
	if in := list[1]; in.Name != "b" || in.Position != 4 || in.Lag != 3 || in.State != projection.StateBehind || in.LagSeconds < 0 {
		t.Errorf("b: %+v", in)
	}
	if _, err := projection.Status(s, "nope"); !errors.Is(err, projection.ErrNotFound) {
		t.Errorf("Status(nope) = %v", err)
	}
	if _, err := projection.Status(s, "bad\nname"); !errors.Is(err, format.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	for _, name := range []string{"", strings.Repeat("n", projection.MaxNameBytes+1), "tab\there", "\xff"} {
		if err := runOnce(t, s, &counter{name: name}, projection.Options{}); !errors.Is(err, format.ErrInvalid) {
			t.Errorf("Run with name %q: %v", name, err)
		}
	}
	if _, err := projection.Get(s, "a", nil); !errors.Is(err, format.ErrInvalid) {
		t.Errorf("Get with an empty key: %v", err)
	}
}

// TestFollowLive runs a projection while writers append, then checks it
// applied every event once and ends at the head.
func TestFollowLive(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := &counter{name: "live"}
	done := make(chan error, 1)
	go func() { done <- projection.Run(ctx, s, c, projection.Options{BatchEvents: 16}) }()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := s.Append(ctx, []format.EventData{{Stream: fmt.Sprintf("w-%d", w), Type: "T", Data: fmt.Appendf(nil, "%d", i)}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitPosition(t, s, "live", s.Head())
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if got := count(t, s, "live", "total"); got != 200 {
		t.Errorf("total %d, want 200", got)
	}
}

// waitPosition waits (with a deadlock guard) until a projection's
// checkpoint reaches pos.
func waitPosition(t *testing.T, s *local.Store, name string, pos uint64) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		got, err := projection.Position(s, name)
		if err != nil {
			t.Fatal(err)
		}
		if got == pos {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("projection %s stuck at %d, want %d", name, got, pos)
		case <-time.After(time.Millisecond):
		}
	}
}

// TestRunTwice drops a projection under its running runner, as a second
// runner or a careless rebuild would move its checkpoint: the runner stops
// rather than apply on top of a checkpoint it did not write.
func TestRunTwice(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "s", "T", 3)
	c := &counter{name: "dup"}
	errc := make(chan error, 1)
	go func() { errc <- projection.Run(context.Background(), s, c, projection.Options{}) }()
	waitPosition(t, s, "dup", 3)
	if err := projection.Drop(context.Background(), s, "dup"); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "s", "T", 1)
	err := <-errc
	if rt, ok := errors.AsType[*projection.RunTwiceError](err); !ok || rt.Expected != 3 || rt.Found != 0 {
		t.Fatalf("err = %v, want a RunTwiceError", err)
	}
	if got := count(t, s, "dup", "total"); got != 0 {
		t.Errorf("the stopped runner wrote %d after the drop", got)
	}
}
