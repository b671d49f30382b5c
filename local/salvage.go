package local

import (
	"encoding/binary"
	"errors"
	"iter"

	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
)

// ReadAllSalvage is [Store.ReadAll] for a damaged log: a record that fails
// its checksum (or is missing from a gap in positions) is yielded as an
// error, a *format.CorruptError with its position, and the iteration goes
// on with the next intact record if the caller continues. Other errors end
// the iteration as in ReadAll. Use it to get back what a damaged file still
// holds; ReadAll stops at the first damaged record instead.
func (s *Store) ReadAllSalvage(from uint64) iter.Seq2[format.Event, error] {
	return salvageChunked(from, func(from uint64) ([]salvaged, uint64, error) {
		var items []salvaged
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketLog).Cursor()
			next := from
			for k, v := c.Seek(u64(from)); k != nil && len(items) < readChunk; k, v = c.Next() {
				if len(k) != 8 {
					continue // not a position; verify reports it
				}
				pos := binary.BigEndian.Uint64(k)
				for ; next < pos && len(items) < readChunk; next++ {
					items = append(items, salvaged{pos: next, err: &format.CorruptError{Position: next, Reason: "missing from the log"}})
				}
				if len(items) >= readChunk {
					break
				}
				ev, err := format.DecodeRecord(pos, v)
				items = append(items, salvaged{pos: pos, ev: ev, err: err})
				next = pos + 1
			}
			return nil
		})
		if len(items) == 0 {
			return items, from, err
		}
		return items, items[len(items)-1].pos + 1, err
	})
}

// salvageChunked yields the items of successive chunks, each fetched (in a
// read transaction of its own) from where the one before ended, until a
// chunk comes back short. Like chunked, it keeps its cursor local so the
// sequence can be ranged over again.
func salvageChunked(from uint64, fetch func(from uint64) (items []salvaged, next uint64, err error)) iter.Seq2[format.Event, error] {
	return func(yield func(format.Event, error) bool) {
		at := max(from, 1)
		for {
			items, next, err := fetch(at)
			if err != nil {
				yield(format.Event{}, err)
				return
			}
			for _, it := range items {
				if !yield(it.ev, it.err) {
					return
				}
			}
			if len(items) < readChunk {
				return
			}
			at = next
		}
	}
}

type salvaged struct {
	pos uint64
	ev  format.Event
	err error
}

// IsDamagedRecord reports whether err is one record's damage, as yielded by
// [Store.ReadAllSalvage]: a reader may skip it and go on.
func IsDamagedRecord(err error) bool {
	_, ok := errors.AsType[*format.CorruptError](err)
	return ok
}

// ReadStreamSalvage is [Store.ReadStream] for a damaged log: an event of
// the stream whose record is damaged or missing is yielded as a
// *format.CorruptError with its position, and the iteration goes on with
// the stream's next version if the caller continues.
func (s *Store) ReadStreamSalvage(stream string, from uint64) iter.Seq2[format.Event, error] {
	if err := format.ValidateStream(stream); err != nil {
		return func(yield func(format.Event, error) bool) { yield(format.Event{}, err) }
	}
	prefix := append([]byte(stream), 0)
	return salvageChunked(from, func(from uint64) ([]salvaged, uint64, error) {
		var items []salvaged
		last := from - 1 // last version looked at
		err := s.view(func(tx *bolt.Tx) error {
			log := logReader{c: tx.Bucket(bucketLog).Cursor()}
			c := tx.Bucket(bucketStreams).Cursor()
			for k, v := c.Seek(appendStreamKey(nil, stream, from)); k != nil && hasPrefix(k, prefix) && len(items) < readChunk; k, v = c.Next() {
				last = binary.BigEndian.Uint64(k[len(prefix):])
				if len(v) != 8 {
					items = append(items, salvaged{err: &format.CorruptError{Reason: "index entry of " + stream + " is damaged"}})
					continue
				}
				pos := binary.BigEndian.Uint64(v)
				ev, err := log.get(pos)
				items = append(items, salvaged{pos: pos, ev: ev, err: err})
			}
			return nil
		})
		return items, last + 1, err
	})
}
