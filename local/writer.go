package local

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
)

// request is a Request queued for the writer, with the answer slots the
// writer fills before closing done.
type request struct {
	ctx  context.Context
	req  Request
	ids  []string // UUIDv7 text, one per event
	fp   []byte   // fingerprintOf(req.Fingerprint), hashed by the caller, not the writer
	done chan struct{}

	receipt Receipt
	err     error
	dupOf   *request // same key as an earlier request in this group

	space   *spaceOp // a key-space update instead of events (space.go)
	applied bool     // the writer has decided it (set by the writer only)
}

// wrote reports whether r committed its own events. Only the writer may
// call it, for a request it has applied.
func (r *request) wrote() bool {
	return r.applied && r.err == nil && r.dupOf == nil && !r.receipt.Duplicate
}

// writer is the only goroutine that writes to bbolt. It takes everything
// queued (up to MaxGroupEvents), commits it in one transaction with one
// fsync, and answers each caller. Requests that fail their expectations are
// rejected alone; the rest of the group still commits.
func (s *Store) writer() {
	defer close(s.stopped)
	var group []*request
	for {
		r, ok := <-s.reqs
		if !ok {
			return
		}
		group = append(group[:0], r)
		events := len(r.req.Events)
		open := true
	drain:
		for events < s.opts.MaxGroupEvents {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					open = false
					break drain
				}
				group = append(group, r)
				events += len(r.req.Events)
			default:
				break drain
			}
		}
		s.commit(group)
		clear(group) // drop references so answered requests can be collected
		if !open {
			return
		}
	}
}

// groupTx is the state of one group commit.
type groupTx struct {
	log, versions, streams, idem *bolt.Bucket
	now                          time.Time
	next                         uint64                  // next position to assign
	states                       map[string]*streamState // read once per transaction, then kept current
	dirty                        map[string]bool
	keys                         map[string]*request
	arena                        []byte // bbolt keeps references to keys and values until commit
}

// maxKeptArena bounds the encoding buffer the writer keeps between group
// commits, so one huge group does not pin its size for good.
const maxKeptArena = 4 << 20

func (s *Store) commit(group []*request) {
	if err := s.failure(); err != nil {
		for _, r := range group {
			r.err = err
			close(r.done)
		}
		return
	}
	g := &groupTx{
		now:    s.opts.Clock().UTC(),
		states: make(map[string]*streamState),
		dirty:  make(map[string]bool),
		keys:   make(map[string]*request),
		// bbolt is done with the keys and values of the previous commit
		// once it returned, so its buffer can take this one's: growing a
		// fresh one for every group cost a fifth of a batch append's CPU.
		arena: s.arena[:0],
	}
	err := s.update(func(tx *bolt.Tx) error {
		g.log, g.versions, g.streams, g.idem = tx.Bucket(bucketLog), tx.Bucket(bucketVersions), tx.Bucket(bucketStreams), tx.Bucket(bucketIdem)
		// Both buckets only ever grow at their ends (the log) or per stream
		// in order (the index), so full pages waste no space and split less.
		g.log.FillPercent = 1.0
		g.streams.FillPercent = 0.9
		// The next position comes from the log itself, not from memory,
		// so nothing can ever overwrite a record.
		g.next = 1
		if k, _ := g.log.Cursor().Last(); k != nil {
			g.next = binary.BigEndian.Uint64(k) + 1
		}
		for _, r := range group {
			if err := g.apply(r); err != nil {
				return err
			}
		}
		for stream := range g.dirty {
			start := len(g.arena)
			g.arena = g.states[stream].appendTo(g.arena)
			if err := g.versions.Put([]byte(stream), g.arena[start:len(g.arena):len(g.arena)]); err != nil {
				return fmt.Errorf("update version of %s: %w", stream, err)
			}
		}
		return nil
	})
	if cap(g.arena) <= maxKeptArena {
		s.arena = g.arena[:0]
	} else {
		s.arena = nil
	}
	if err != nil {
		// After a failed commit (a failed fsync above all) the file's
		// state is unknown: bbolt may have published pages it reported as
		// failed. Stop writing rather than guess; reopening re-reads it.
		ce := &CommitError{Err: err}
		s.fail(ce)
		err = ce
		s.opts.Logger.Error("group commit failed; the store refuses writes until it is reopened", "requests", len(group), "err", err)
	} else if g.next-1 != s.head.Load() {
		s.raiseHead(g.next - 1)
		s.broadcast()
	}
	for _, r := range group {
		switch {
		case r.err != nil: // rejected on its own; stands whatever the group did
		case err != nil:
			r.err = err
			r.receipt = Receipt{}
		case r.dupOf != nil:
			// Its own copy: callers may change what they were given.
			r.receipt, r.err = r.dupOf.receipt.clone(), r.dupOf.err
			r.receipt.Duplicate = true
		}
		close(r.done)
	}
}

// update is db.Update for the writer: a damaged page fails the group
// instead of killing the writer goroutine (and with it every caller).
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorrupt(&err)
	return s.db.Update(fn)
}

// apply checks one request and, if it passes, writes it into the group's
// transaction. A returned error aborts the whole group (a bbolt failure); a
// request-level failure is recorded in r.err instead.
func (g *groupTx) apply(r *request) error {
	r.applied = true
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return nil
	}
	if r.space != nil {
		return g.applySpace(r)
	}
	for _, dep := range r.req.After {
		if !dep.r.wrote() {
			r.err = &DependencyError{}
			break
		}
	}
	// Drop the references: a hot stream's requests would otherwise chain
	// every earlier one in memory.
	r.req.After = nil
	if r.err != nil {
		return nil
	}
	if key := r.req.Key; key != "" {
		fp := r.fp
		if first, ok := g.keys[key]; ok {
			if r.err = checkFingerprint(key, first.fp, fp); r.err == nil {
				r.dupOf = first
			}
			return nil
		}
		if v := g.idem.Get([]byte(key)); v != nil {
			rec, err := decodeReceipt(v)
			if err != nil {
				err = fmt.Errorf("%w: idempotency key %q: %v", ErrCorruptStore, key, err)
			}
			if err == nil {
				err = checkFingerprint(key, rec.fingerprint, fp)
			}
			if err == nil {
				r.receipt, err = rebuildReceipt(g.log, rec)
			}
			r.err = err
			return nil
		}
	}
	// Every stream's state is read before anything changes, so a damaged
	// versions entry fails this request alone and leaves the group intact.
	for _, e := range r.req.Expect {
		if _, err := g.state(e.Stream); err != nil {
			r.err = err
			return nil
		}
	}
	for _, d := range r.req.Events {
		if _, err := g.state(d.Stream); err != nil {
			r.err = err
			return nil
		}
	}
	for _, e := range r.req.Expect {
		if st := g.states[e.Stream]; st.version != e.Version {
			r.err = &ConflictError{Stream: e.Stream, Expected: e.Version, Actual: st.version}
			return nil
		}
	}
	events := make([]format.Event, len(r.req.Events))
	for i, d := range r.req.Events {
		st := g.states[d.Stream]
		st.version++
		st.last = g.next
		g.dirty[d.Stream] = true
		events[i] = format.Event{
			Position: g.next, Stream: d.Stream, Version: st.version, Type: d.Type,
			Data: d.Data, Metadata: d.Metadata, ID: r.ids[i], Time: g.now,
		}
		if err := g.put(&events[i]); err != nil {
			return err
		}
		g.next++
	}
	r.receipt = Receipt{Events: events, Retries: r.req.Retries}
	if key := r.req.Key; key != "" {
		rec := receipt{retries: uint32(r.req.Retries), fingerprint: r.fp}
		if len(events) > 0 {
			rec.first, rec.last = events[0].Position, events[len(events)-1].Position
		}
		if err := g.idem.Put([]byte(key), rec.appendTo(nil)); err != nil {
			return fmt.Errorf("store idempotency key: %w", err)
		}
		if err := putKeyAnchor(g.idem.Tx(), key, keyAnchor(rec, g.next)); err != nil {
			return err
		}
		g.keys[key] = r
	}
	return nil
}

func (g *groupTx) put(ev *format.Event) error {
	start := len(g.arena)
	g.arena = binary.BigEndian.AppendUint64(g.arena, ev.Position)
	keyEnd := len(g.arena)
	var err error
	if g.arena, err = format.AppendRecord(g.arena, ev); err != nil {
		return err
	}
	recEnd := len(g.arena)
	g.arena = appendStreamKey(g.arena, ev.Stream, ev.Version)
	idxEnd := len(g.arena)
	// Sub-slices stay valid when append moves the arena: the old array is
	// kept alive by them and never written again.
	pos, rec, idx := g.arena[start:keyEnd:keyEnd], g.arena[keyEnd:recEnd:recEnd], g.arena[recEnd:idxEnd:idxEnd]
	if err := g.log.Put(pos, rec); err != nil {
		return fmt.Errorf("append %s: %w", ev.Stream, err)
	}
	if err := g.streams.Put(idx, pos); err != nil {
		return fmt.Errorf("index %s: %w", ev.Stream, err)
	}
	return nil
}

// state returns the stream's version as of this transaction, reading the
// versions bucket at most once per stream.
func (g *groupTx) state(stream string) (*streamState, error) {
	if st, ok := g.states[stream]; ok {
		return st, nil
	}
	st := &streamState{}
	if v := g.versions.Get([]byte(stream)); v != nil {
		var err error
		if *st, err = decodeStreamState(v); err != nil {
			return nil, fmt.Errorf("%w: stream %q: %v", ErrCorruptStore, stream, err)
		}
	}
	g.states[stream] = st
	return st, nil
}
