package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
)

// readChunk is how many events one read transaction fetches. Iterators
// yield only between transactions, so user code never holds one open (an
// open read transaction makes bbolt's remap, and so a growing writer, wait).
const readChunk = 512

// Version returns the stream's current version, 0 if it does not exist.
func (s *Store) Version(stream string) (uint64, error) {
	vs, err := s.Versions(stream)
	if err != nil {
		return 0, err
	}
	return vs[0], nil
}

// Versions returns the current version of each stream from one snapshot.
func (s *Store) Versions(streams ...string) ([]uint64, error) {
	for _, st := range streams {
		if err := format.ValidateStream(st); err != nil {
			return nil, err
		}
	}
	out := make([]uint64, len(streams))
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVersions)
		for i, st := range streams {
			if v := b.Get([]byte(st)); v != nil {
				state, err := decodeStreamState(v)
				if err != nil {
					return fmt.Errorf("%w: stream %q: %v", ErrCorruptStore, st, err)
				}
				out[i] = state.version
			}
		}
		return nil
	})
	return out, err
}

// ReadStream yields the stream's events with Version >= from, in order. A
// missing stream yields nothing.
func (s *Store) ReadStream(stream string, from uint64) iter.Seq2[format.Event, error] {
	return s.ReadStreamRange(stream, from, 0)
}

// ReadStreamRange yields the stream's events with from <= Version <= to
// (to 0: no upper bound).
func (s *Store) ReadStreamRange(stream string, from, to uint64) iter.Seq2[format.Event, error] {
	if err := format.ValidateStream(stream); err != nil {
		return func(yield func(format.Event, error) bool) { yield(format.Event{}, err) }
	}
	return chunked(from, func(from uint64) ([]format.Event, error) {
		if to != 0 && from > to {
			return nil, nil
		}
		return s.streamChunk(stream, from, to)
	}, func(ev format.Event) uint64 { return ev.Version })
}

// chunked yields the events of successive chunks, each fetched (in a
// transaction of its own) from the key after the last event of the one
// before, until a chunk comes back short.
func chunked(from uint64, fetch func(from uint64) ([]format.Event, error), key func(format.Event) uint64) iter.Seq2[format.Event, error] {
	return func(yield func(format.Event, error) bool) {
		// A local cursor: the sequence may be ranged over again, and each
		// pass must start at from.
		next := max(from, 1)
		for {
			chunk, err := fetch(next)
			if err != nil {
				yield(format.Event{}, err)
				return
			}
			for _, ev := range chunk {
				if !yield(ev, nil) {
					return
				}
			}
			if len(chunk) < readChunk {
				return
			}
			next = key(chunk[len(chunk)-1]) + 1
		}
	}
}

func (s *Store) streamChunk(stream string, from, to uint64) ([]format.Event, error) {
	var out []format.Event
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = readStreamTx(tx, stream, from, to, readChunk, out)
		return err
	})
	return out, err
}

// readStreamTx appends up to limit events of stream with from <= Version
// <= to (to 0: unbounded) to out.
func readStreamTx(tx *bolt.Tx, stream string, from, to uint64, limit int, out []format.Event) ([]format.Event, error) {
	log := logReader{c: tx.Bucket(bucketLog).Cursor()}
	prefix := append([]byte(stream), 0)
	c := tx.Bucket(bucketStreams).Cursor()
	n := 0
	for k, v := c.Seek(appendStreamKey(nil, stream, from)); k != nil && hasPrefix(k, prefix) && n < limit; k, v = c.Next() {
		version := binary.BigEndian.Uint64(k[len(prefix):])
		if to != 0 && version > to {
			break
		}
		if len(v) != 8 {
			return out, fmt.Errorf("%w: index entry of %q version %d", ErrCorruptStore, stream, version)
		}
		ev, err := log.get(binary.BigEndian.Uint64(v))
		if err != nil {
			return out, err
		}
		out = append(out, ev)
		n++
	}
	return out, nil
}

// logReader fetches records by position with one cursor: Bucket.Get
// allocates a cursor per call, which for a stream read was a third of the
// allocations per event.
type logReader struct {
	c   *bolt.Cursor
	key [8]byte
}

func (r *logReader) get(pos uint64) (format.Event, error) {
	binary.BigEndian.PutUint64(r.key[:], pos)
	k, v := r.c.Seek(r.key[:])
	if !bytes.Equal(k, r.key[:]) {
		return format.Event{}, &format.CorruptError{Position: pos, Reason: "missing from the log"}
	}
	return format.DecodeRecord(pos, v)
}

// ReadAll yields the log's events with Position >= from, in order.
func (s *Store) ReadAll(from uint64) iter.Seq2[format.Event, error] {
	return chunked(from, func(from uint64) ([]format.Event, error) {
		return s.logChunk(from, readChunk)
	}, func(ev format.Event) uint64 { return ev.Position })
}

func (s *Store) logChunk(from uint64, limit int) ([]format.Event, error) {
	var out []format.Event
	if head := s.Head(); from <= head { // sized for what is committed now; more may land
		out = make([]format.Event, 0, min(uint64(limit), head-from+1))
	}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(u64(from)); k != nil && len(out) < limit; k, v = c.Next() {
			pos := binary.BigEndian.Uint64(k)
			ev, err := format.DecodeRecord(pos, v)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// ReadSet is what [Store.ReadStreams] saw: the streams' versions and
// their events, all from one read transaction.
type ReadSet struct {
	Versions []uint64         // per requested stream
	Events   [][]format.Event // per requested stream, in version order
}

// ReadStreams reads several streams as of one moment: it returns each
// stream's version and its events with after[i] < Version <= that version.
// Events are immutable once committed, so reading past the first chunk in
// later transactions, bounded by the versions seen in the first, still gives
// one consistent snapshot.
func (s *Store) ReadStreams(streams []string, after []uint64) (ReadSet, error) {
	if len(after) != len(streams) {
		return ReadSet{}, fmt.Errorf("read streams: %d streams but %d start versions", len(streams), len(after))
	}
	for _, st := range streams {
		if err := format.ValidateStream(st); err != nil {
			return ReadSet{}, err
		}
	}
	snap := ReadSet{Versions: make([]uint64, len(streams)), Events: make([][]format.Event, len(streams))}
	next := make([]uint64, len(streams)) // next version to read per stream
	err := s.view(func(tx *bolt.Tx) error {
		vb := tx.Bucket(bucketVersions)
		budget := readChunk
		for i, st := range streams {
			if v := vb.Get([]byte(st)); v != nil {
				state, err := decodeStreamState(v)
				if err != nil {
					return fmt.Errorf("%w: stream %q: %v", ErrCorruptStore, st, err)
				}
				snap.Versions[i] = state.version
			}
			next[i] = after[i] + 1
			if budget <= 0 || next[i] > snap.Versions[i] {
				continue
			}
			evs, err := readStreamTx(tx, st, next[i], snap.Versions[i], budget, nil)
			if err != nil {
				return err
			}
			snap.Events[i] = evs
			next[i] += uint64(len(evs))
			budget -= len(evs)
		}
		return nil
	})
	if err != nil {
		return ReadSet{}, err
	}
	for i, st := range streams {
		for next[i] <= snap.Versions[i] {
			chunk, err := s.streamChunk(st, next[i], snap.Versions[i])
			if err != nil {
				return ReadSet{}, err
			}
			if len(chunk) == 0 {
				return ReadSet{}, fmt.Errorf("%w: stream %q ends before its version %d", ErrCorruptStore, st, snap.Versions[i])
			}
			snap.Events[i] = append(snap.Events[i], chunk...)
			next[i] += uint64(len(chunk))
		}
	}
	return snap, nil
}

// LookupKey returns the receipt stored for an idempotency key, if any.
func (s *Store) LookupKey(key string) (Receipt, bool, error) {
	return s.LookupRequest(key, nil)
}

// LookupRequest is [Store.LookupKey] for a request with the given
// fingerprint (see [Request]): a key stored for another request fails with
// a [KeyReusedError].
func (s *Store) LookupRequest(key string, fingerprint []byte) (Receipt, bool, error) {
	fp := fingerprintOf(fingerprint)
	var out Receipt
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIdem).Get([]byte(key))
		if v == nil {
			return nil
		}
		rec, err := decodeReceipt(v)
		if err != nil {
			return fmt.Errorf("%w: idempotency key %q: %v", ErrCorruptStore, key, err)
		}
		if err := checkFingerprint(key, rec.fingerprint, fp); err != nil {
			return err
		}
		found = true
		out, err = rebuildReceipt(tx.Bucket(bucketLog), rec)
		return err
	})
	return out, found, err
}

// Subscribe yields the log's events from position from, then new events as
// they are committed, until ctx ends (the iteration then just stops) or the
// store closes (it yields ErrClosed). It waits on commit notifications, not
// by polling.
func (s *Store) Subscribe(ctx context.Context, from uint64) iter.Seq2[format.Event, error] {
	return func(yield func(format.Event, error) bool) {
		next := max(from, 1) // local, so the sequence is reusable
		for {
			changed := s.changed()
			chunk, err := s.logChunk(next, readChunk)
			if err != nil {
				yield(format.Event{}, err)
				return
			}
			for _, ev := range chunk {
				if ctx.Err() != nil || !yield(ev, nil) {
					return
				}
			}
			if len(chunk) > 0 {
				next = chunk[len(chunk)-1].Position + 1
			}
			if len(chunk) == readChunk {
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-s.closing:
				yield(format.Event{}, ErrClosed)
				return
			}
		}
	}
}

// rebuildReceipt rebuilds the answer to an earlier request from its stored
// positions. Both the writer (a duplicate in a group) and LookupKey use it.
func rebuildReceipt(log *bolt.Bucket, rec receipt) (Receipt, error) {
	out := Receipt{Duplicate: true, Retries: int(rec.retries)}
	if rec.first == 0 {
		return out, nil
	}
	for p := rec.first; p <= rec.last; p++ {
		ev, err := getEvent(log, p)
		if err != nil {
			return Receipt{}, err
		}
		out.Events = append(out.Events, ev)
	}
	return out, nil
}

func getEvent(log *bolt.Bucket, pos uint64) (format.Event, error) {
	v := log.Get(u64(pos))
	if v == nil {
		return format.Event{}, &format.CorruptError{Position: pos, Reason: "missing from the log"}
	}
	return format.DecodeRecord(pos, v)
}
