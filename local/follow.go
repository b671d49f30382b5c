package local

import (
	"context"
	"encoding/binary"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
)

// MaxReadBatch is the most events one [Store.ReadBatch] returns.
const MaxReadBatch = 65536

// ReadBatch returns up to limit events of the log from position from, read
// in one transaction: what a consumer that applies events in batches (a
// projection) needs, without the per-event calls of ReadAll. limit is
// capped at [MaxReadBatch]; fewer events than limit means the log ended.
func (s *Store) ReadBatch(from uint64, limit int) ([]format.Event, error) {
	from = max(from, 1)
	limit = min(max(limit, 1), MaxReadBatch)
	head := s.Head()
	if from > head {
		return s.logChunk(from, limit) // a commit may have landed since
	}
	out := make([]format.Event, 0, min(uint64(limit), head-from+1))
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(u64(from)); k != nil && len(out) < limit; k, v = c.Next() {
			ev, err := format.DecodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// WaitHead blocks until the head is past after and returns it. It returns
// early with ctx's error when ctx ends, or with ErrClosed when the store
// closes. It waits on commit notifications, not by polling.
func (s *Store) WaitHead(ctx context.Context, after uint64) (uint64, error) {
	for {
		changed := s.changed()
		if h := s.Head(); h > after {
			return h, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Head(), ctx.Err()
		case <-s.closing:
			return s.Head(), ErrClosed
		}
	}
}
