package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Projection is a read model kept in the store's own file. Apply folds one
// event into the projection's key space; Run calls it for every event of
// the log that passes the filters, in position order, exactly once.
type Projection interface {
	// Name is stable: it keys the projection's checkpoint and key space.
	Name() string
	// Apply folds ev into the key space. An error (or a panic) stops the
	// projection at ev: the events before it stay applied, ev's writes are
	// undone, and Run returns an [*ApplyError].
	Apply(tx *Tx, ev format.Event) error
}

// Options configure [Run], [RunHandler] and [Rebuild]. The zero value
// applies every event, in batches of up to DefaultBatchEvents, and follows
// the log until the context ends.
type Options struct {
	// StreamPrefixes, if any, keep only events whose stream starts with
	// one of them.
	StreamPrefixes []string
	// Types, if any, keep only events of these types.
	Types []string
	// BatchEvents caps the events read and applied in one transaction.
	// Larger batches amortise the commit (and its fsync) over more events
	// while catching up; once caught up a batch is whatever is new.
	// Default DefaultBatchEvents, at most local.MaxReadBatch.
	BatchEvents int
	// Once applies what the log held when the run started and returns,
	// instead of following the log.
	Once bool
	// Logger receives a line when a projection starts, catches up and
	// stops. Default: discard.
	Logger *slog.Logger
}

// DefaultBatchEvents is the default Options.BatchEvents.
const DefaultBatchEvents = 16384

func (o Options) withDefaults() Options {
	if o.BatchEvents <= 0 {
		o.BatchEvents = DefaultBatchEvents
	}
	o.BatchEvents = min(o.BatchEvents, local.MaxReadBatch)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// keep reports whether ev passes the filters.
func (o *Options) keep(ev *format.Event) bool {
	if len(o.Types) > 0 && !slices.Contains(o.Types, ev.Type) {
		return false
	}
	if len(o.StreamPrefixes) == 0 {
		return true
	}
	for _, p := range o.StreamPrefixes {
		if strings.HasPrefix(ev.Stream, p) {
			return true
		}
	}
	return false
}

// Run applies the log to p from its checkpoint: it catches up, then
// follows new commits until ctx ends (it then returns nil), or with
// opts.Once returns once it has applied what the log held at the start.
//
// Each batch of events is applied and the checkpoint advanced in one
// transaction of the log's file, through the store's group-commit writer:
// after a crash at any instant every event has been applied exactly once
// or not at all, and Run resumes after the last one applied.
//
// An error in Apply stops this projection, not the store: Run records it
// (see [Status]) and returns an [*ApplyError] with the event's position.
// Run a projection once per store at a time; a second runner stops with
// [ErrRunTwice].
func Run(ctx context.Context, s *local.Store, p Projection, opts Options) error {
	name := p.Name()
	if err := ValidateName(name); err != nil {
		return err
	}
	st, err := readState(s, name)
	if err != nil {
		return err
	}
	if st.kind == KindExternal {
		return fmt.Errorf("projection %q was run as an external one (RunHandler): pick another name, or drop it first", name)
	}
	r := newRunner(s, name, opts, st.position)
	return r.loop(ctx, r.inStore(p))
}

// Rebuild drops p's key space and checkpoint and runs it from position 1
// (see [Run]). Stop p's other runner first: it would stop with
// [ErrRunTwice].
func Rebuild(ctx context.Context, s *local.Store, p Projection, opts Options) error {
	if err := Drop(ctx, s, p.Name()); err != nil {
		return err
	}
	return Run(ctx, s, p, opts)
}

// Drop deletes a projection's key space, checkpoint and status in one
// commit. A projection that does not exist is not an error.
func Drop(ctx context.Context, s *local.Store, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := s.DropSpace(ctx, spaceOf(name)); err != nil {
		return fmt.Errorf("drop projection %q: %w", name, err)
	}
	return nil
}

// Get returns the value a projection stored under key: nil, nil when
// there is none (or the projection never ran). The value is a copy.
func Get(s *local.Store, name string, key []byte) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.ViewSpace(spaceOf(name), func(st *local.SpaceTx) error {
		if v := st.Get(append([]byte{prefixData}, key...)); v != nil {
			out = append(make([]byte, 0, len(v)), v...)
		}
		return nil
	})
	return out, err
}

// Position returns the position of the last event a projection applied,
// 0 if it never applied any.
func Position(s *local.Store, name string) (uint64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	st, err := readState(s, name)
	return st.position, err
}

func readState(s *local.Store, name string) (state, error) {
	var st state
	err := s.ViewSpace(spaceOf(name), func(tx *local.SpaceTx) error {
		var err error
		st, err = decodeState(tx.Get(keyState))
		return err
	})
	if err != nil {
		return state{}, fmt.Errorf("projection %q: %w", name, err)
	}
	return st, nil
}

// batch is what the reader hands the applier: the events that passed the
// filters, and the last position read, which becomes the checkpoint.
type batch struct {
	events []format.Event
	last   uint64
}

type runner struct {
	s     *local.Store
	name  string
	space string
	opts  Options
	pos   uint64 // the checkpoint as this runner last committed it
	stats stats
}

type stats struct {
	batches, applied, read uint64
	started                time.Time
}

func newRunner(s *local.Store, name string, opts Options, pos uint64) *runner {
	return &runner{s: s, name: name, space: spaceOf(name), opts: opts.withDefaults(), pos: pos, stats: stats{started: time.Now()}}
}

// loop reads batches on one goroutine and commits them on this one, so
// reading and decoding the next batch overlaps the commit of this one.
func (r *runner) loop(parent context.Context, commit func(context.Context, *batch) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	r.opts.Logger.Info("projection starting", "projection", r.name, "position", r.pos, "head", r.s.Head(), "once", r.opts.Once)
	batches := make(chan *batch, 1)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(batches)
		readErr = r.read(ctx, batches)
	})
	var err error
	for b := range batches {
		if err = commit(ctx, b); err != nil {
			break
		}
	}
	cancel()
	for range batches { // let the reader see the cancel and exit
	}
	wg.Wait()
	if err == nil {
		err = readErr
	}
	if parent.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = nil
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelError
	}
	r.opts.Logger.Log(context.Background(), lvl, "projection stopped", "projection", r.name, "position", r.pos,
		"events_read", r.stats.read, "events_applied", r.stats.applied, "batches", r.stats.batches, "err", err)
	return err
}

func (r *runner) read(ctx context.Context, out chan<- *batch) error {
	from := r.pos + 1
	var target uint64
	if r.opts.Once {
		target = r.s.Head()
	}
	for {
		if r.opts.Once && from > target {
			return nil
		}
		limit := r.opts.BatchEvents
		if r.opts.Once {
			limit = int(min(uint64(limit), target-from+1))
		}
		evs, err := r.s.ReadBatch(from, limit)
		if err != nil {
			return fmt.Errorf("projection %q: read the log from position %d: %w", r.name, from, err)
		}
		if len(evs) == 0 {
			if r.opts.Once {
				return nil
			}
			if _, err := r.s.WaitHead(ctx, from-1); err != nil {
				return err
			}
			continue
		}
		b := &batch{last: evs[len(evs)-1].Position}
		kept := evs[:0]
		for i := range evs {
			if r.opts.keep(&evs[i]) {
				kept = append(kept, evs[i])
			}
		}
		b.events = kept
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		from = b.last + 1
	}
}

// maxErrorBytes bounds the error message kept in a projection's state.
const maxErrorBytes = 1024

func errorText(err error) string {
	msg := err.Error()
	if len(msg) > maxErrorBytes {
		msg = strings.ToValidUTF8(msg[:maxErrorBytes], "") + "…"
	}
	return msg
}

// inStore returns the commit step of Run: one UpdateSpace per batch that
// checks the checkpoint, applies the events and advances the checkpoint.
func (r *runner) inStore(p Projection) func(context.Context, *batch) error {
	tx := &Tx{}
	var cur format.Event
	apply := func() error { return p.Apply(tx, cur) }
	var buf []byte
	return func(ctx context.Context, b *batch) error {
		var failed *ApplyError
		pos := b.last
		applied := 0
		err := r.s.UpdateSpace(ctx, r.space, func(st *local.SpaceTx) error {
			failed, pos, applied = nil, b.last, 0
			old, err := decodeState(st.Get(keyState))
			if err != nil {
				return err
			}
			if old.position != r.pos || old.kind != KindInStore {
				return &RunTwiceError{Projection: r.name, Expected: r.pos, Found: old.position}
			}
			tx.st = st
			defer func() { tx.st = nil }()
			for i := range b.events {
				cur = b.events[i]
				sp := st.Savepoint()
				if err := st.Protect(apply); err != nil {
					if rerr := st.Rollback(sp); rerr != nil {
						return rerr
					}
					failed = &ApplyError{Projection: r.name, Position: cur.Position, Stream: cur.Stream, Type: cur.Type, Err: err}
					pos = cur.Position - 1
					break
				}
				applied++
			}
			cur = format.Event{}
			next := state{kind: KindInStore, position: pos, updated: time.Now().UTC()}
			if failed != nil {
				next.errPos, next.errMsg = failed.Position, errorText(failed.Err)
			}
			buf = next.appendTo(buf[:0])
			return st.Put(keyState, buf)
		})
		if err != nil {
			return fmt.Errorf("projection %q: commit batch ending at %d: %w", r.name, b.last, err)
		}
		r.stats.read += pos - r.pos
		r.pos = pos
		r.stats.batches++
		r.stats.applied += uint64(applied)
		if failed != nil {
			return failed
		}
		return nil
	}
}
