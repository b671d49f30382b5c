package executor

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// streamLocks orders the commands of one executor on each stream. A command
// holds the locks of its read set from its read to the moment its write is
// queued, not until it is durable: the next command on those streams folds
// the queued events on top of what is committed, and its write is queued
// after them and built on them (local.Request.After). So commands of this
// process never conflict with each other, and a hot stream moves at the
// speed of group commit, not of one fsync per command.
type streamLocks struct {
	mu    sync.Mutex
	slots map[string]*slot
}

// slot is one stream's lock and the writes queued on it.
type slot struct {
	sem  chan struct{} // capacity 1: holding the lock is having sent
	refs int           // executions that hold or wait for it, or have a write on it in flight; under streamLocks.mu
	// queued are writes to the stream not known to be answered, oldest
	// first. Only the lock holder touches it.
	queued []*queuedWrite
}

// queuedWrite is a write that was queued but may not be durable yet.
type queuedWrite struct {
	p   *local.Pending
	seq uint64 // from the executor, taken under the locks just before queueing
	// after are the queued writes it was built on (its Request.After).
	// They are local.Pending, not queuedWrites: the writer drops a
	// request's After once it decided it, so a hot stream's writes do not
	// chain each other in memory.
	after []*local.Pending
	// events are its events as they will be committed, but without
	// Position and Time, which only the commit assigns.
	events []format.Event
}

// state reports whether w was answered and, if so, whether it committed
// its own events.
func (w *queuedWrite) state() (done, wrote bool) { return pendingState(w.p) }

func pendingState(p *local.Pending) (done, wrote bool) {
	select {
	case <-p.Done():
		rec, err := p.Wait()
		return true, err == nil && !rec.Duplicate
	default:
		return false, false
	}
}

// held is the locks one execution holds or has held.
type held struct {
	t      *streamLocks
	names  []string
	slots  []*slot
	locked bool
}

func newStreamLocks() *streamLocks { return &streamLocks{slots: make(map[string]*slot)} }

// acquire locks streams in name order (so that two executions never wait
// for each other in a cycle), or fails when ctx ends first.
func (t *streamLocks) acquire(ctx context.Context, streams []string) (*held, error) {
	h := &held{t: t, names: slices.Clone(streams)}
	slices.Sort(h.names)
	h.names = slices.Compact(h.names)
	t.mu.Lock()
	for _, st := range h.names {
		sl := t.slots[st]
		if sl == nil {
			sl = &slot{sem: make(chan struct{}, 1)}
			t.slots[st] = sl
		}
		sl.refs++
		h.slots = append(h.slots, sl)
	}
	t.mu.Unlock()
	for i, sl := range h.slots {
		select {
		case sl.sem <- struct{}{}:
		case <-ctx.Done():
			for _, got := range h.slots[:i] {
				<-got.sem
			}
			h.release()
			return nil, ctx.Err()
		}
	}
	h.locked = true
	return h, nil
}

// unlock lets the next execution on these streams in. It may be called
// more than once.
func (h *held) unlock() {
	if !h.locked {
		return
	}
	h.locked = false
	for _, sl := range h.slots {
		<-sl.sem
	}
}

// release unlocks and forgets the streams once nothing of this execution
// is in flight on them.
func (h *held) release() {
	h.unlock()
	h.t.mu.Lock()
	for i, sl := range h.slots {
		if sl.refs--; sl.refs == 0 {
			delete(h.t.slots, h.names[i])
		}
	}
	h.t.mu.Unlock()
	h.slots = nil
}

// queuedOn returns, under the locks, the writes queued on the held streams
// that are not known to have failed, in the order they were queued (which
// is the order the writer takes them in). Answered ones are forgotten: a
// committed write is visible to any read that starts after this call.
func (h *held) queuedOn() []*queuedWrite {
	var out []*queuedWrite
	for _, sl := range h.slots {
		keep := sl.queued[:0]
		for _, w := range sl.queued {
			if done, _ := w.state(); done {
				continue
			}
			keep = append(keep, w)
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
		clear(sl.queued[len(keep):])
		sl.queued = keep
	}
	// Each stream's list is in queue order; a write on several streams
	// appears in several lists. Writes that share a stream were queued
	// under its lock, so their seq order is their queue order.
	slices.SortFunc(out, func(a, b *queuedWrite) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// queue records w on the streams it writes; the caller holds their locks.
func (h *held) queue(w *queuedWrite) {
	for i, name := range h.names {
		for _, ev := range w.events {
			if ev.Stream == name {
				h.slots[i].queued = append(h.slots[i].queued, w)
				break
			}
		}
	}
}

// provisional builds the events of a write as they will be committed.
// Data and metadata are copied: other commands fold them while the caller
// may still change its own.
func provisional(events []format.EventData, ids []string, versionOf func(stream string) uint64) []format.Event {
	out := make([]format.Event, len(events))
	next := map[string]uint64{}
	for i, d := range events {
		v, ok := next[d.Stream]
		if !ok {
			v = versionOf(d.Stream)
		}
		v++
		next[d.Stream] = v
		out[i] = format.Event{Stream: d.Stream, Version: v, Type: d.Type, Data: bytes.Clone(d.Data), Metadata: maps.Clone(d.Metadata), ID: ids[i]}
	}
	return out
}
