package local

import (
	"context"

	"github.com/evstore/evstore/format"
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
	return s.logChunk(from, limit)
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
