package local

import (
	"context"
	"time"

	"github.com/evstore/evstore/format"
)

// now is the commit time of the next group.
func (s *Store) now() time.Time {
	if s.opts.Clock != nil {
		return s.opts.Clock().UTC()
	}
	return time.Now().UTC()
}

// MaxReadBatch is the most events one [Store.ReadBatch] returns.
const MaxReadBatch = 65536

// ReadBatch returns up to limit events of the log from position from, read
// in one transaction: what a consumer that applies events in batches (a
// projection) needs, without the per-event calls of ReadAll. limit is
// capped at [MaxReadBatch]; fewer events than limit means the log ended.
func (s *Store) ReadBatch(from uint64, limit int) ([]format.Event, error) {
	return s.logChunk(max(from, 1), min(max(limit, 1), MaxReadBatch))
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
