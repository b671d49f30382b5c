package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Batch is what a [Handler] receives: events in position order that
// passed the filters, and the position to record as its checkpoint.
type Batch struct {
	Events []format.Event
	// Last is the last position this batch covers, filtered-out events
	// included. Record it as the checkpoint.
	Last uint64
}

// Handler is an external read model: a SQL table, a search index. It keeps
// its own checkpoint, ideally in the same transaction as the model.
//
// Delivery is at least once: after a crash the runner resumes from
// Checkpoint, so a batch the handler applied but whose checkpoint it did
// not record arrives again. Positions are unique and increasing: skip
// events at or below the checkpoint the model holds, or make each write
// idempotent.
type Handler interface {
	// Name is stable; it keys the status this runner records in the store.
	Name() string
	// Checkpoint returns the last position the model holds (0 if none):
	// delivery resumes after it.
	Checkpoint(ctx context.Context) (uint64, error)
	// HandleBatch applies the events and records b.Last as the
	// checkpoint. An error stops the runner with an [*ApplyError] at the
	// batch's first event; the batch is delivered again on the next run.
	HandleBatch(ctx context.Context, b Batch) error
}

// RunHandler is [Run] for an external read model: the same reading,
// filters and batching, delivered to h. Batches with no event left after
// filtering are not delivered. After each batch RunHandler records the
// position in the store too, so [Status] and `evstore projections` show
// it; the handler's own checkpoint is what counts on restart.
func RunHandler(ctx context.Context, s *local.Store, h Handler, opts Options) error {
	name := h.Name()
	if err := ValidateName(name); err != nil {
		return err
	}
	st, err := readState(s, name)
	if err != nil {
		return err
	}
	if st.found && st.kind != KindExternal {
		return fmt.Errorf("projection %q was run in the store (Run): pick another name, or drop it first", name)
	}
	pos, err := h.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("projection %q: read its checkpoint: %w", name, err)
	}
	if head := s.Head(); pos > head {
		return fmt.Errorf("projection %q: its checkpoint %d is past the log's head %d: it belongs to another log, or this one was replaced", name, pos, head)
	}
	r := newRunner(s, name, opts, pos)
	return r.loop(ctx, r.external(h))
}

func (r *runner) external(h Handler) func(context.Context, *batch) error {
	var buf []byte
	record := func(ctx context.Context, st state) error {
		st.kind, st.updated = KindExternal, time.Now().UTC()
		// Recorded even as ctx ends: the handler has already committed.
		return r.s.UpdateSpace(context.WithoutCancel(ctx), r.space, func(tx *local.SpaceTx) error {
			buf = st.appendTo(buf[:0])
			return tx.Put(keyState, buf)
		})
	}
	return func(ctx context.Context, b *batch) error {
		if len(b.events) > 0 {
			if err := h.HandleBatch(ctx, Batch{Events: b.events, Last: b.last}); err != nil {
				if ctx.Err() != nil {
					return err
				}
				first := b.events[0]
				failed := &ApplyError{Projection: r.name, Position: first.Position, Stream: first.Stream, Type: first.Type, Err: err}
				if rerr := record(ctx, state{position: r.pos, errPos: first.Position, errMsg: errorText(err)}); rerr != nil {
					return fmt.Errorf("%w (and recording it failed: %v)", failed, rerr)
				}
				return failed
			}
		}
		if err := record(ctx, state{position: b.last}); err != nil {
			return fmt.Errorf("projection %q: record position %d: %w", r.name, b.last, err)
		}
		r.stats.read += b.last - r.pos
		r.stats.applied += uint64(len(b.events))
		r.stats.batches++
		r.pos = b.last
		return nil
	}
}
