package executor

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// readSet is what one execution has read. Per stream: the version its
// start state covers (base), the committed events after it, and the events
// of queued writes folded on top (provisional).
type readSet struct {
	ex      *Executor // whose execution this is
	streams []string
	base    []uint64
	events  [][]format.Event
	starts  []any          // per stream, for a StreamSnapshotter: the kept state at base
	whole   any            // for a Snapshotter: the kept state at base, for the whole set
	prov    []format.Event // queued events on top, in queue order
	provN   []uint64       // per stream, how many of prov
	deps    []*queuedWrite // the queued writes prov comes from
}

func (rs *readSet) has(stream string) bool { return slices.Contains(rs.streams, stream) }

// add adds the streams not read yet and says how many there were.
func (rs *readSet) add(streams []string) (int, error) {
	n := 0
	for _, st := range streams {
		if err := format.ValidateStream(st); err != nil {
			return n, fmt.Errorf("command streams: %w", err)
		}
		if !rs.has(st) {
			rs.streams = append(rs.streams, st)
			rs.base = append(rs.base, 0)
			rs.events = append(rs.events, nil)
			rs.starts = append(rs.starts, nil)
			rs.provN = append(rs.provN, 0)
			n++
		}
	}
	return n, nil
}

// reset forgets the start state and what was read, to fold from zero.
func (rs *readSet) reset() {
	rs.whole = nil
	for i := range rs.streams {
		rs.base[i], rs.events[i], rs.starts[i] = 0, nil, nil
	}
}

// committed is the stream's version as far as committed events go.
func (rs *readSet) committed(i int) uint64 { return rs.base[i] + uint64(len(rs.events[i])) }

// version is the version the command's state covers, queued events included.
func (rs *readSet) version(i int) uint64 { return rs.committed(i) + rs.provN[i] }

func (rs *readSet) versionOf(stream string) uint64 {
	return rs.version(slices.Index(rs.streams, stream))
}

func (rs *readSet) expects() []local.Expect {
	out := make([]local.Expect, len(rs.streams))
	for i, st := range rs.streams {
		out[i] = local.Expect{Stream: st, Version: rs.version(i)}
	}
	return out
}

// after is what the write must be built on: the queued writes folded.
func (rs *readSet) after() []*local.Pending {
	if len(rs.deps) == 0 {
		return nil
	}
	out := make([]*local.Pending, len(rs.deps))
	for i, w := range rs.deps {
		out[i] = w.p
	}
	return out
}

// waitQueued waits for the queued writes the state was built on and
// reports whether all of them committed.
func (rs *readSet) waitQueued(ctx context.Context) (bool, error) {
	for _, w := range rs.deps {
		select {
		case <-w.p.Done():
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if _, wrote := w.state(); !wrote {
			return false, nil
		}
	}
	return true, nil
}

// takeQueued puts the queued writes on top of the committed events, in
// queue order, keeping the view one that can come to be: a write is taken
// only if it continues every read stream it writes from where the view is,
// and nothing it was built on is known to have failed or was left out.
// A write whose versions are already committed is either committed (its
// answer may still be on its way: it is waited for) or lost to another
// writer; one that leaves a gap was built on a write that failed. Those are
// left out, and so is everything built on them. It fails only when ctx
// ends.
func (rs *readSet) takeQueued(ctx context.Context, queued []*queuedWrite) error {
	rs.prov, rs.deps = rs.prov[:0], rs.deps[:0]
	clear(rs.provN)
	var out map[*local.Pending]bool // left out
	var next map[int]uint64         // tentative versions while checking one write
	leaveOut := func(w *queuedWrite) {
		if out == nil {
			out = make(map[*local.Pending]bool)
		}
		out[w.p] = true
	}
	for _, w := range queued {
		built := true
		for _, d := range w.after {
			if done, wrote := pendingState(d); out[d] || done && !wrote {
				built = false
				break
			}
		}
		if !built {
			leaveOut(w)
			continue
		}
		fits, touches, behind := true, false, false
		clear(next)
		for _, ev := range w.events {
			i := slices.Index(rs.streams, ev.Stream)
			if i < 0 {
				continue
			}
			touches = true
			v, ok := next[i]
			if !ok {
				v = rs.version(i)
			}
			if ev.Version <= rs.committed(i) {
				behind = true
			}
			if ev.Version != v+1 {
				fits = false
				break
			}
			if next == nil {
				next = make(map[int]uint64)
			}
			next[i] = v + 1
		}
		switch {
		case !touches:
		case behind:
			// Committed before the read, its answer not out yet, or
			// overtaken by another writer: its answer says which.
			select {
			case <-w.p.Done():
			case <-ctx.Done():
				return ctx.Err()
			}
			if _, wrote := w.state(); !wrote {
				leaveOut(w)
			}
		case !fits:
			leaveOut(w)
		default:
			for _, ev := range w.events {
				if i := slices.Index(rs.streams, ev.Stream); i >= 0 {
					rs.prov = append(rs.prov, ev)
					rs.provN[i]++
				}
			}
			rs.deps = append(rs.deps, w)
		}
	}
	return nil
}

// folder folds one command's read set, keeping states as its type allows.
type folder[S any] struct {
	ex   *Executor
	cmd  Command[S]
	typ  reflect.Type
	mode snapMode
	snap Snapshotter[S]
	per  StreamSnapshotter[S]
}

func (f *folder[S]) key(streams []string) stateKey {
	return snapshotKey(f.typ, f.snap.SnapshotKey(), streams)
}

// refresh brings the read set up to date: it starts from the newest kept
// state, reads only the committed events past it (from the event cache or
// one snapshot of the store), and puts the queued writes on top.
func (f *folder[S]) refresh(ctx context.Context, rs *readSet, queued []*queuedWrite) error {
	ex := f.ex
	switch f.mode {
	case snapWhole:
		if kept, vs, ok := ex.states.get(f.key(rs.streams)); ok {
			if st, ok := kept.(S); ok && len(vs) == len(rs.streams) && rs.behind(vs) {
				rs.whole = st
				for i := range rs.streams {
					rs.rebase(i, vs[i])
				}
			}
		}
	case snapPerStream:
		for i := range rs.streams {
			if kept, vs, ok := ex.states.get(f.key(rs.streams[i : i+1])); ok && vs[0] >= rs.base[i] {
				if st, ok := kept.(S); ok {
					rs.starts[i] = st
					rs.rebase(i, vs[0])
				}
			}
		}
	}
	after := make([]uint64, len(rs.streams))
	for i, st := range rs.streams {
		if cached := ex.cache.get(st); uint64(len(cached)) > rs.committed(i) && uint64(len(cached)) >= rs.base[i] {
			rs.events[i] = cached[rs.base[i]:]
		}
		after[i] = rs.committed(i)
	}
	snap, err := ex.store.ReadStreams(rs.streams, after)
	if err != nil {
		return fmt.Errorf("read streams: %w", err)
	}
	for i, st := range rs.streams {
		if snap.Versions[i] < after[i] {
			// Versions only grow; the cache and kept states hold only
			// committed events.
			return fmt.Errorf("read streams: %w: stream %q is at version %d, below the %d already read", local.ErrCorruptStore, st, snap.Versions[i], after[i])
		}
		if len(snap.Events[i]) == 0 {
			continue
		}
		if rs.base[i] == 0 {
			rs.events[i] = ex.cache.add(st, rs.events[i], snap.Events[i])
		} else {
			// Past a kept state the stream's head is not at hand, so the
			// cache (which holds streams from their first event) is left
			// alone: a command that keeps states does not need it.
			rs.events[i] = append(rs.events[i][:len(rs.events[i]):len(rs.events[i])], snap.Events[i]...)
		}
	}
	return rs.takeQueued(ctx, queued)
}

// behind reports whether a kept state at vs covers at least what the read
// set starts from, in every stream.
func (rs *readSet) behind(vs []uint64) bool {
	for i, v := range vs {
		if v < rs.base[i] {
			return false
		}
	}
	return true
}

// rebase moves stream i's start to version v (>= base), dropping the
// events the new start covers.
func (rs *readSet) rebase(i int, v uint64) {
	if v >= rs.committed(i) {
		rs.events[i] = nil
	} else {
		rs.events[i] = rs.events[i][v-rs.base[i]:]
	}
	rs.base[i] = v
}

// fold builds the state Handle gets and keeps what a later command can
// start from. Kept states cover committed events only: queued ones may
// still fail.
func (f *folder[S]) fold(rs *readSet) (S, error) {
	if f.mode == snapPerStream {
		return f.foldPerStream(rs)
	}
	var state S
	if f.mode == snapWhole && rs.whole != nil {
		state = f.snap.CloneState(rs.whole.(S))
	}
	apply := applier(f.cmd, &state)
	n, err := rs.foldCommitted(apply)
	if err != nil {
		var zero S
		return zero, err
	}
	// Empty streams keep nothing: a zero state costs nothing to rebuild.
	if f.mode == snapWhole && n > 0 {
		// Kept before Handle sees it: Handle may modify its copy.
		kept := f.snap.CloneState(state)
		vs := make([]uint64, len(rs.streams))
		for i := range vs {
			vs[i] = rs.committed(i)
			rs.rebase(i, vs[i])
		}
		rs.whole = kept
		f.ex.states.put(f.key(rs.streams), kept, vs)
	}
	for _, ev := range rs.prov {
		if err := apply(ev); err != nil {
			var zero S
			return zero, err
		}
	}
	return state, nil
}

func (f *folder[S]) foldPerStream(rs *readSet) (S, error) {
	var out, zero S
	for i, st := range rs.streams {
		var part S
		if rs.starts[i] != nil {
			part = f.snap.CloneState(rs.starts[i].(S))
		}
		apply := applier(f.cmd, &part)
		for _, ev := range rs.events[i] {
			if err := apply(ev); err != nil {
				return zero, err
			}
		}
		// A stream with no committed events (a fresh basket) keeps
		// nothing: its zero state costs nothing to rebuild, and keeping
		// one per fresh stream would push useful states out.
		if len(rs.events[i]) > 0 || rs.starts[i] == nil && rs.committed(i) > 0 {
			kept := f.snap.CloneState(part)
			v := rs.committed(i)
			rs.starts[i] = kept
			rs.rebase(i, v)
			f.ex.states.put(f.key(rs.streams[i:i+1]), kept, []uint64{v})
		}
		for _, ev := range rs.prov {
			if ev.Stream == st {
				if err := apply(ev); err != nil {
					return zero, err
				}
			}
		}
		f.per.MergeState(&out, part, st)
	}
	return out, nil
}

// foldCommitted calls fn for every committed event held, in global
// position order: each stream is already in order, so this is a k-way
// merge. It returns how many events it folded, and stops at the first
// error of fn.
func (rs *readSet) foldCommitted(fn func(format.Event) error) (int, error) {
	if len(rs.events) == 1 {
		for _, e := range rs.events[0] {
			if err := fn(e); err != nil {
				return 0, err
			}
		}
		return len(rs.events[0]), nil
	}
	idx := make([]int, len(rs.events))
	n := 0
	for {
		best := -1
		for i, evs := range rs.events {
			if idx[i] < len(evs) && (best < 0 || evs[idx[i]].Position < rs.events[best][idx[best]].Position) {
				best = i
			}
		}
		if best < 0 {
			return n, nil
		}
		if err := fn(rs.events[best][idx[best]]); err != nil {
			return n, err
		}
		idx[best]++
		n++
	}
}
