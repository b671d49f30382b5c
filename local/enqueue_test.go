package local

import (
	"context"
	"errors"
	"testing"

	"github.com/evstore/evstore/format"
)

// A request built on a queued one commits only if that one did.
func TestEnqueueAfter(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	a, err := s.Enqueue(ctx, Request{Events: []format.EventData{ev("s", "T", "1")}, Expect: []Expect{{Stream: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Enqueue(ctx, Request{Events: []format.EventData{ev("s", "T", "2")}, Expect: []Expect{{Stream: "s", Version: 1}}, After: []*Pending{a}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := b.Wait(); err != nil || r.Last() != 2 {
		t.Fatalf("built on a committed request: %+v %v", r, err)
	}
	// bad is rejected; on it, good would pass its own expectation once
	// another writer took version 3, but what it decided on never existed.
	bad, _ := s.Enqueue(ctx, Request{Events: []format.EventData{ev("s", "T", "x")}, Expect: []Expect{{Stream: "s", Version: 1}}})
	other, _ := s.Enqueue(ctx, Request{Events: []format.EventData{ev("s", "T", "3")}})
	good, _ := s.Enqueue(ctx, Request{Events: []format.EventData{ev("s", "T", "y")}, Expect: []Expect{{Stream: "s", Version: 3}}, After: []*Pending{bad}})
	if _, err := bad.Wait(); !errors.Is(err, ErrConflict) {
		t.Fatal(err)
	}
	if _, err := other.Wait(); err != nil {
		t.Fatal(err)
	}
	var de *DependencyError
	if _, err := good.Wait(); !errors.Is(err, ErrConflict) || !errors.As(err, &de) {
		t.Fatalf("built on a rejected request: %v", err)
	}
	// A duplicate wrote nothing of its own: nothing can be built on it.
	k1, _ := s.Enqueue(ctx, Request{Events: []format.EventData{ev("k", "T", "1")}, Key: "key"})
	k2, _ := s.Enqueue(ctx, Request{Events: []format.EventData{ev("k", "T", "1")}, Key: "key"})
	on, _ := s.Enqueue(ctx, Request{Events: []format.EventData{ev("k", "T", "2")}, Expect: []Expect{{Stream: "k", Version: 1}}, After: []*Pending{k1, k2}})
	k1.Wait()
	if r, _ := k2.Wait(); !r.Duplicate {
		t.Fatal("not a duplicate")
	}
	if _, err := on.Wait(); !errors.As(err, &de) {
		t.Fatalf("built on a duplicate: %v", err)
	}
	if s.Head() != 4 {
		t.Fatalf("head %d", s.Head())
	}
}
