package local

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The key-anchors bucket orders idempotency keys by log position, so a
// replicator can ship, with each batch of events, the keys of the requests
// that wrote them (see [Store.KeysBetween]), and a restore can bring them
// back. Its key is anchor(8, BE) followed by the idempotency key; the value
// is empty. A key's anchor is the last position its request appended or,
// for a request that appended nothing, the position the next event gets.
//
// Files made before the bucket existed get it on their first writable
// open, filled from the idempotency bucket.
var bucketKeyAnchors = []byte("idempotency-anchors")

// keyAnchor is the anchor of a receipt committed when next was the next
// position to assign.
func keyAnchor(rec receipt, next uint64) uint64 {
	if rec.last != 0 {
		return rec.last
	}
	return next
}

func putKeyAnchor(tx *bolt.Tx, key string, anchor uint64) error {
	b := tx.Bucket(bucketKeyAnchors)
	if b == nil {
		return nil // a read-only file from before the bucket: nothing to keep current
	}
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), anchor)
	if err := b.Put(append(k, key...), []byte{}); err != nil {
		return fmt.Errorf("index idempotency key: %w", err)
	}
	return nil
}

// initKeyAnchors creates and fills the bucket in a file that lacks it.
func initKeyAnchors(tx *bolt.Tx) error {
	if !tx.Writable() || tx.Bucket(bucketKeyAnchors) != nil {
		return nil
	}
	if _, err := tx.CreateBucket(bucketKeyAnchors); err != nil {
		return err
	}
	next := uint64(1)
	if k, _ := tx.Bucket(bucketLog).Cursor().Last(); len(k) == 8 {
		next = binary.BigEndian.Uint64(k) + 1
	}
	return tx.Bucket(bucketIdem).ForEach(func(k, v []byte) error {
		rec, err := decodeReceipt(v)
		if err != nil {
			return nil // Check reports it; it cannot be replicated
		}
		return putKeyAnchor(tx, string(k), keyAnchor(rec, next))
	})
}

// KeysBetween returns the idempotency keys anchored at positions from..to
// (see the key-anchors bucket above): the keys of the requests that
// appended events in that range, and of requests that appended nothing
// while the next position was in it. A replicator ships them with the
// batch that holds those positions.
func (s *Store) KeysBetween(from, to uint64) ([]ImportedKey, error) {
	var out []ImportedKey
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeyAnchors)
		if b == nil {
			return nil
		}
		idem := tx.Bucket(bucketIdem)
		c := b.Cursor()
		for k, _ := c.Seek(u64(from)); len(k) >= 8 && binary.BigEndian.Uint64(k) <= to; k, _ = c.Next() {
			key := k[8:]
			v := idem.Get(key)
			if v == nil {
				continue
			}
			rec, err := decodeReceipt(v)
			if err != nil {
				return fmt.Errorf("%w: idempotency key %q: %v", ErrCorruptStore, key, err)
			}
			out = append(out, ImportedKey{Key: string(key), First: rec.first, Last: rec.last, Retries: int(rec.retries)})
		}
		return nil
	})
	return out, err
}
