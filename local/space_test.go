package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
)

func spaceGet(t *testing.T, s *Store, space, key string) string {
	t.Helper()
	var out string
	if err := s.ViewSpace(space, func(tx *SpaceTx) error {
		out = string(tx.Get([]byte(key)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSpaceUpdateViewDrop(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	if got := spaceGet(t, s, "a", "k"); got != "" {
		t.Fatalf("missing space read %q", got)
	}
	buf := []byte("v1")
	if err := s.UpdateSpace(ctx, "a", func(tx *SpaceTx) error {
		if err := tx.Put([]byte("k"), buf); err != nil {
			return err
		}
		buf[1] = 'X' // the space kept its own copy
		return tx.Put([]byte("gone"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSpace(ctx, "a", func(tx *SpaceTx) error { return tx.Delete([]byte("gone")) }); err != nil {
		t.Fatal(err)
	}
	if got := spaceGet(t, s, "a", "k"); got != "v1" {
		t.Fatalf("k = %q", got)
	}
	if got := spaceGet(t, s, "a", "gone"); got != "" {
		t.Fatalf("deleted key reads %q", got)
	}
	// An empty value is there, unlike a missing key.
	if err := s.UpdateSpace(ctx, "a", func(tx *SpaceTx) error {
		if err := tx.Put([]byte("empty"), nil); err != nil {
			return err
		}
		if v := tx.Get([]byte("empty")); v == nil || len(v) != 0 {
			return fmt.Errorf("inside the update, the empty value reads %v", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ViewSpace("a", func(tx *SpaceTx) error {
		if v := tx.Get([]byte("empty")); v == nil || len(v) != 0 {
			return fmt.Errorf("the empty value reads %v", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSpace(ctx, "b", func(tx *SpaceTx) error { return tx.Put([]byte("k"), []byte("b")) }); err != nil {
		t.Fatal(err)
	}
	names, err := s.Spaces("")
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("Spaces = %v, %v", names, err)
	}
	if err := s.DropSpace(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropSpace(ctx, "never"); err != nil {
		t.Fatalf("dropping a missing space: %v", err)
	}
	if names, _ := s.Spaces(""); strings.Join(names, ",") != "b" {
		t.Fatalf("after drop: %v", names)
	}
	if s.Head() != 0 {
		t.Errorf("key-space updates moved the head to %d", s.Head())
	}
	err = s.ViewSpace("b", func(tx *SpaceTx) error { return tx.Put([]byte("k"), nil) })
	if !errors.Is(err, ErrReadOnlySpace) {
		t.Errorf("put in a view: %v", err)
	}
	for _, name := range []string{"", strings.Repeat("n", 256), "\xff"} {
		if err := s.UpdateSpace(ctx, name, func(*SpaceTx) error { return nil }); !errors.Is(err, format.ErrInvalid) {
			t.Errorf("space name %q: %v", name, err)
		}
	}
	err = s.UpdateSpace(ctx, "b", func(tx *SpaceTx) error { return tx.Put(nil, []byte("v")) })
	if !errors.Is(err, format.ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
}

// TestSpaceFailureIsUndoneAlone checks that a failing or panicking update
// leaves no trace, while the appends and updates grouped with it commit.
func TestSpaceFailureIsUndoneAlone(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	if err := s.UpdateSpace(ctx, "a", func(tx *SpaceTx) error { return tx.Put([]byte("k"), []byte("old")) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	failing := []func(tx *SpaceTx) error{
		func(tx *SpaceTx) error {
			tx.Put([]byte("k"), []byte("new"))
			tx.Put([]byte("k"), []byte("newer"))
			tx.Put([]byte("fresh"), []byte("x"))
			tx.Delete([]byte("k"))
			return boom
		},
		func(tx *SpaceTx) error {
			tx.Put([]byte("k"), []byte("new"))
			var m map[string]int
			m["x"]++ // a bug in the caller's code
			return nil
		},
	}
	for i, fn := range failing {
		var wg sync.WaitGroup
		var errs [3]error
		wg.Go(func() { errs[0] = s.UpdateSpace(ctx, "a", fn) })
		wg.Go(func() { _, errs[1] = s.Append(ctx, []format.EventData{ev("s", "T", "{}")}) })
		wg.Go(func() {
			errs[2] = s.UpdateSpace(ctx, "other", func(tx *SpaceTx) error { return tx.Put(fmt.Appendf(nil, "k%d", i), []byte("ok")) })
		})
		wg.Wait()
		if i == 0 && !errors.Is(errs[0], boom) {
			t.Errorf("failing update: %v", errs[0])
		}
		if pe, ok := errors.AsType[*PanicError](errs[0]); i == 1 && (!ok || len(pe.Stack) == 0) {
			t.Errorf("panicking update: %v", errs[0])
		}
		if errs[1] != nil || errs[2] != nil {
			t.Fatalf("requests beside the failing one: %v", errs[1:])
		}
		if got := spaceGet(t, s, "a", "k"); got != "old" {
			t.Errorf("case %d: k = %q after a failed update, want old", i, got)
		}
		if got := spaceGet(t, s, "a", "fresh"); got != "" {
			t.Errorf("case %d: fresh = %q after a failed update", i, got)
		}
		if got := spaceGet(t, s, "other", fmt.Sprintf("k%d", i)); got != "ok" {
			t.Errorf("case %d: the other update did not commit", i)
		}
	}
	if s.Head() != 2 {
		t.Errorf("head %d, want 2", s.Head())
	}
	// A failed first update of a space does not leave it behind.
	if err := s.UpdateSpace(ctx, "new", func(tx *SpaceTx) error { tx.Put([]byte("k"), nil); return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if names, _ := s.Spaces("new"); len(names) != 0 {
		t.Errorf("failed first update left %v", names)
	}
	// After a commit the store is still writable.
	if _, err := s.Append(ctx, []format.EventData{ev("s", "T", "{}")}); err != nil {
		t.Fatal(err)
	}
}

func TestSpaceSavepoint(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	err := s.UpdateSpace(context.Background(), "a", func(tx *SpaceTx) error {
		tx.Put([]byte("keep"), []byte("1"))
		sp := tx.Savepoint()
		tx.Put([]byte("keep"), []byte("2"))
		tx.Put([]byte("drop"), []byte("x"))
		if got := string(tx.Get([]byte("keep"))); got != "2" {
			return fmt.Errorf("inside: keep = %q", got)
		}
		return tx.Rollback(sp)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := spaceGet(t, s, "a", "keep"); got != "1" {
		t.Errorf("keep = %q", got)
	}
	if got := spaceGet(t, s, "a", "drop"); got != "" {
		t.Errorf("drop = %q", got)
	}
}

func TestSpaceUpdatesBesideAppends(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.Append(ctx, []format.EventData{ev(fmt.Sprintf("s-%d", w), "T", "{}")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			if err := s.UpdateSpace(ctx, "count", func(tx *SpaceTx) error {
				return tx.Put([]byte("n"), fmt.Appendf(nil, "%d", i+1))
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if got := spaceGet(t, s, "count", "n"); got != "100" || s.Head() != 200 {
		t.Errorf("n = %q, head %d", got, s.Head())
	}
}

func TestReadBatchWaitHeadClock(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := openTemp(t, Options{NoSync: true, Clock: func() time.Time { return fixed }})
	ctx := context.Background()
	got := make(chan uint64, 1)
	go func() {
		h, err := s.WaitHead(ctx, 2)
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	for i := range 3 {
		if _, err := s.Append(ctx, []format.EventData{ev("s", "T", fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if h := <-got; h != 3 {
		t.Errorf("WaitHead = %d", h)
	}
	evs, err := s.ReadBatch(2, 10)
	if err != nil || len(evs) != 2 || evs[0].Position != 2 || !evs[1].Time.Equal(fixed) {
		t.Fatalf("ReadBatch = %+v, %v", evs, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.WaitHead(cctx, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled WaitHead: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.WaitHead(ctx, 3); done <- err }()
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("WaitHead on close: %v", err)
	}
	if err := s.UpdateSpace(ctx, "a", func(*SpaceTx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("update after close: %v", err)
	}
}

// TestSpaceWritesModel checks the in-memory collection of an update's
// writes against a plain map, through random puts, deletes, savepoints and
// rollbacks.
func TestSpaceWritesModel(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		tx := &SpaceTx{writable: true}
		model := map[string]string{}
		type mark struct {
			sp    Savepoint
			model map[string]string
		}
		var marks []mark
		rng := rand.New(rand.NewPCG(seed, 7))
		for step := range 2000 {
			key := fmt.Sprintf("k%d", rng.IntN(40))
			switch op := rng.IntN(10); {
			case op < 5:
				v := fmt.Sprintf("v%d", step)
				if err := tx.Put([]byte(key), []byte(v)); err != nil {
					t.Fatal(err)
				}
				model[key] = v
			case op < 7:
				if err := tx.Delete([]byte(key)); err != nil {
					t.Fatal(err)
				}
				model[key] = "" // deleted: reads as absent
			case op < 8:
				marks = append(marks, mark{tx.Savepoint(), maps.Clone(model)})
			case len(marks) > 0:
				m := marks[len(marks)-1]
				marks = marks[:len(marks)-1]
				if err := tx.Rollback(m.sp); err != nil {
					t.Fatal(err)
				}
				model = m.model
			}
			for i := range 40 {
				k := fmt.Sprintf("k%d", i)
				got, want := tx.Get([]byte(k)), model[k]
				if (want == "") != (got == nil) || string(got) != want {
					t.Fatalf("seed %d step %d: %s = %q, want %q", seed, step, k, got, want)
				}
			}
		}
		if err := tx.Rollback(0); err != nil {
			t.Fatal(err)
		}
		if len(tx.writes) != 0 || len(tx.pending) != 0 {
			t.Fatalf("seed %d: rollback to 0 left %d writes, %d keys", seed, len(tx.writes), len(tx.pending))
		}
	}
}
