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
	return func(yield func(format.Event, error) bool) {
		from = max(from, 1)
		for {
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
			from = items[len(items)-1].pos + 1
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
