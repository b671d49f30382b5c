package local

import (
	"encoding/binary"
	"fmt"
	"iter"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
)

// Stats describes a store.
type Stats struct {
	StoreID    string    `json:"store_id"`
	Created    time.Time `json:"created"`
	Head       uint64    `json:"head"`   // last position
	Events     uint64    `json:"events"` // equal to Head: positions have no gaps
	Streams    uint64    `json:"streams"`
	Keys       uint64    `json:"idempotency_keys"`
	LastCommit time.Time `json:"last_commit,omitzero"` // time of the last event; zero when empty
	FileBytes  int64     `json:"file_bytes"`
	PageSize   int       `json:"page_size"`
	FreePages  int       `json:"free_pages"` // reusable pages inside the file ([Store.CompactFile] drops them)
}

// Stats reports the store's counts and sizes from one read transaction. It
// walks the pages of the versions and idempotency buckets to count them,
// not the log.
func (s *Store) Stats() (Stats, error) {
	st := Stats{StoreID: s.id, Created: s.created}
	err := s.view(func(tx *bolt.Tx) error {
		st.FileBytes = tx.Size()
		st.PageSize = tx.DB().Info().PageSize
		st.Streams = uint64(tx.Bucket(bucketVersions).Stats().KeyN)
		st.Keys = uint64(tx.Bucket(bucketIdem).Stats().KeyN)
		k, v := tx.Bucket(bucketLog).Cursor().Last()
		if k == nil {
			return nil
		}
		st.Head = binary.BigEndian.Uint64(k)
		st.Events = st.Head
		ev, err := format.DecodeRecord(st.Head, v)
		if err != nil {
			return err
		}
		st.LastCommit = ev.Time
		return nil
	})
	dbs := s.db.Stats()
	st.FreePages = dbs.FreePageN + dbs.PendingPageN
	return st, err
}

// StreamInfo describes one stream.
type StreamInfo struct {
	Stream       string    `json:"stream"`
	Version      uint64    `json:"version"`
	LastPosition uint64    `json:"last_position"`
	LastTime     time.Time `json:"last_time"` // commit time of its last event
}

// Streams yields the streams whose names start with prefix ("" for all),
// in name order, read in chunks (a fresh read transaction each).
func (s *Store) Streams(prefix string) iter.Seq2[StreamInfo, error] {
	return func(yield func(StreamInfo, error) bool) {
		from := []byte(prefix)
		for {
			var chunk []StreamInfo
			err := s.view(func(tx *bolt.Tx) error {
				log := logReader{c: tx.Bucket(bucketLog).Cursor()}
				c := tx.Bucket(bucketVersions).Cursor()
				for k, v := c.Seek(from); k != nil && hasPrefix(k, []byte(prefix)) && len(chunk) < readChunk; k, v = c.Next() {
					st, err := decodeStreamState(v)
					if err != nil {
						return fmt.Errorf("%w: stream %q: %v", ErrCorruptStore, k, err)
					}
					ev, err := log.get(st.last)
					if err != nil {
						return err
					}
					chunk = append(chunk, StreamInfo{Stream: string(k), Version: st.version, LastPosition: st.last, LastTime: ev.Time})
				}
				return nil
			})
			if err != nil {
				yield(StreamInfo{}, err)
				return
			}
			for _, si := range chunk {
				if !yield(si, nil) {
					return
				}
			}
			if len(chunk) < readChunk {
				return
			}
			// The smallest key after the last one.
			from = append([]byte(chunk[len(chunk)-1].Stream), 0)
		}
	}
}
