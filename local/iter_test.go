package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
)

// TestSequencesAreReusable ranges twice over the same sequence value: Go
// sequences must yield the same events each time, also across read chunks.
func TestSequencesAreReusable(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	const n = 1200 // more than two read chunks
	batch := make([]format.EventData, n)
	for i := range batch {
		batch[i] = ev("s", "T", "")
	}
	if _, err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	// A deadlock guard, not a timing assertion: a Subscribe that lost its
	// start would wait for new events forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seqs := map[string]func(func(format.Event, error) bool){
		"ReadStream": s.ReadStream("s", 1),
		"ReadAll":    s.ReadAll(1),
	}
	for name, seq := range seqs {
		for pass := 1; pass <= 2; pass++ {
			if got := len(collect(t, seq)); got != n {
				t.Errorf("%s pass %d: %d events, want %d", name, pass, got, n)
			}
		}
	}
	sub := s.Subscribe(ctx, 1)
	for pass := 1; pass <= 2; pass++ {
		var first uint64
		count := 0
		for e, err := range sub {
			if err != nil {
				t.Fatal(err)
			}
			if count == 0 {
				first = e.Position
			}
			if count++; count == n {
				break
			}
		}
		if first != 1 || count != n {
			t.Errorf("Subscribe pass %d: started at %d, %d events; want 1 and %d", pass, first, count, n)
		}
	}
}

// TestSubscribeEndsOnClose closes the store while a subscriber is known
// to be live (it has received an event and waits for the next): the
// subscription must end with ErrClosed.
func TestSubscribeEndsOnClose(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	if _, err := s.Append(context.Background(), []format.EventData{ev("a", "T", "")}); err != nil {
		t.Fatal(err)
	}
	live := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for e, err := range s.Subscribe(context.Background(), 1) {
			if err != nil {
				done <- err
				return
			}
			if e.Position == 1 {
				close(live)
			}
		}
		done <- errors.New("subscription ended without an error")
	}()
	<-live
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// TestSalvageSequencesAreReusable: the salvaging reads are sequences too,
// and a second pass must start where the first did.
func TestSalvageSequencesAreReusable(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	const n = 1200 // more than two read chunks
	batch := make([]format.EventData, n)
	for i := range batch {
		batch[i] = ev("s", "T", "")
	}
	if _, err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for name, seq := range map[string]func(func(format.Event, error) bool){
		"ReadAllSalvage":    s.ReadAllSalvage(1),
		"ReadStreamSalvage": s.ReadStreamSalvage("s", 1),
	} {
		for pass := 1; pass <= 2; pass++ {
			if got := len(collect(t, seq)); got != n {
				t.Errorf("%s pass %d: %d events, want %d", name, pass, got, n)
			}
		}
	}
}
