package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/evstore/evstore/projection"
)

// table is an external read model: rows keyed by position, and its own
// checkpoint committed with them.
type table struct {
	mu         sync.Mutex
	rows       map[uint64]string
	checkpoint uint64
	failAt     uint64
	loseCkpt   bool // commit rows but not the checkpoint, as a crash between the two would
}

func (tb *table) Name() string { return "table" }

func (tb *table) Checkpoint(context.Context) (uint64, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.checkpoint, nil
}

func (tb *table) HandleBatch(_ context.Context, b projection.Batch) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, ev := range b.Events {
		if ev.Position == tb.failAt {
			return errors.New("table is full")
		}
	}
	for _, ev := range b.Events {
		if ev.Position <= tb.checkpoint {
			continue // delivered again after a lost checkpoint: skip by position
		}
		tb.rows[ev.Position] = ev.Stream
	}
	if !tb.loseCkpt {
		tb.checkpoint = b.Last
	}
	return nil
}

func TestRunHandler(t *testing.T) {
	s := openStore(t)
	appendN(t, s, "keep-1", "T", 5)
	appendN(t, s, "other", "T", 5)
	tb := &table{rows: map[uint64]string{}, loseCkpt: true}
	opts := projection.Options{Once: true, StreamPrefixes: []string{"keep-"}, BatchEvents: 3}
	if err := projection.RunHandler(context.Background(), s, tb, opts); err != nil {
		t.Fatal(err)
	}
	// The checkpoint was lost: everything is delivered again, and the
	// handler's dedup by position keeps one row per event.
	tb.loseCkpt = false
	if err := projection.RunHandler(context.Background(), s, tb, opts); err != nil {
		t.Fatal(err)
	}
	// Batches with nothing left after filtering are not delivered, so the
	// handler's checkpoint is the last batch it saw (events 4..6).
	if len(tb.rows) != 5 || tb.checkpoint != 6 {
		t.Fatalf("rows %v, checkpoint %d", tb.rows, tb.checkpoint)
	}
	in, err := projection.Status(s, "table")
	if err != nil || in.Kind != projection.KindExternal || in.Position != 10 || in.State != projection.StateCaughtUp {
		t.Fatalf("status %+v, %v", in, err)
	}
	appendN(t, s, "keep-2", "T", 3)
	tb.failAt = 12
	err = projection.RunHandler(context.Background(), s, tb, opts)
	if ae, ok := errors.AsType[*projection.ApplyError](err); !ok || ae.Position != 11 {
		t.Fatalf("failing batch: %v", err)
	}
	if in, _ := projection.Status(s, "table"); in.State != projection.StateFailed || in.ErrorPosition != 11 || in.Position != 9 {
		t.Errorf("status after failure %+v", in)
	}
	// An in-store projection cannot take an external one's name.
	if err := projection.Run(context.Background(), s, &counter{name: "table"}, opts); err == nil {
		t.Error("Run on an external projection's name succeeded")
	}
	// Nor the other way round.
	if err := projection.Run(context.Background(), s, &counter{name: "in-store"}, opts); err != nil {
		t.Fatal(err)
	}
	if err := projection.RunHandler(context.Background(), s, renamed{tb, "in-store"}, opts); err == nil {
		t.Error("RunHandler on an in-store projection's name succeeded")
	}
	tb.checkpoint = 999
	if err := projection.RunHandler(context.Background(), s, tb, opts); err == nil {
		t.Error("a checkpoint past the head was accepted")
	}
}

type renamed struct {
	*table
	name string
}

func (r renamed) Name() string { return r.name }
