package local

import (
	"context"
	"os"

	bolt "go.etcd.io/bbolt"
)

// compactTxBytes bounds one transaction of a compaction, so copying a large
// file does not hold it all in memory.
const compactTxBytes = 32 << 20

// CompactFile writes a copy of the store without free pages to path, the
// way [Store.BackupFile] does (temporary file, fsync, verification,
// rename). Keys are inserted in order into full pages, so the copy is as
// small as bbolt can make it. The store is read in one read transaction:
// the copy is consistent while writers go on.
func (s *Store) CompactFile(ctx context.Context, path string, opts BackupOptions) (BackupInfo, error) {
	return s.copyFile(ctx, path, opts, func(tmp string) error {
		dst, err := bolt.Open(tmp, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
		if err != nil {
			return err
		}
		var size int64
		err = s.view(func(src *bolt.Tx) error { return compactInto(ctx, dst, src, opts.Progress) })
		if err == nil {
			err = dst.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
		}
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		// bbolt grows a file in large steps ahead of its data; the copy
		// needs only what its metadata covers.
		return os.Truncate(tmp, size)
	})
}

// compactInto copies every bucket of src into dst, nested ones (the key
// spaces under "spaces") included, committing every compactTxBytes.
func compactInto(ctx context.Context, dst *bolt.DB, src *bolt.Tx, progress func(done, total int64)) error {
	var total int64
	if err := src.ForEach(func(_ []byte, b *bolt.Bucket) error {
		total += int64(b.Stats().KeyN)
		return nil
	}); err != nil {
		return err
	}
	tx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	cp := &compactor{ctx: ctx, db: dst, tx: tx, progress: progress, total: total}
	defer func() { cp.tx.Rollback() }()
	if err := src.ForEach(func(name []byte, b *bolt.Bucket) error {
		return cp.copyBucket([][]byte{append([]byte(nil), name...)}, b)
	}); err != nil {
		return err
	}
	if err := cp.tx.Commit(); err != nil {
		return err
	}
	if progress != nil {
		progress(total, total)
	}
	return nil
}

// compactor copies buckets into a sequence of write transactions.
type compactor struct {
	ctx         context.Context
	db          *bolt.DB
	tx          *bolt.Tx
	progress    func(done, total int64)
	size        int64 // bytes put in the current transaction
	done, total int64 // keys copied, keys in all
}

// copyBucket copies b, found at path in the source, to the same path.
func (cp *compactor) copyBucket(path [][]byte, b *bolt.Bucket) error {
	dst, err := cp.bucket(path)
	if err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil { // a nested bucket
			if err := cp.copyBucket(append(path[:len(path):len(path)], append([]byte(nil), k...)), b.Bucket(k)); err != nil {
				return err
			}
			if dst, err = cp.bucket(path); err != nil { // the copy may have committed
				return err
			}
			continue
		}
		if cp.size > compactTxBytes {
			if err := cp.commit(); err != nil {
				return err
			}
			if dst, err = cp.bucket(path); err != nil {
				return err
			}
		}
		if err := dst.Put(k, v); err != nil {
			return err
		}
		cp.size += int64(len(k) + len(v))
		cp.done++
	}
	return nil
}

// bucket is the bucket at path in the current transaction, created if
// need be. Keys arrive in order, so full pages waste nothing.
func (cp *compactor) bucket(path [][]byte) (*bolt.Bucket, error) {
	b, err := cp.tx.CreateBucketIfNotExists(path[0])
	for _, name := range path[1:] {
		if err != nil {
			return nil, err
		}
		b.FillPercent = 1.0
		b, err = b.CreateBucketIfNotExists(name)
	}
	if err != nil {
		return nil, err
	}
	b.FillPercent = 1.0
	return b, nil
}

// commit ends the current transaction and starts the next.
func (cp *compactor) commit() error {
	if err := cp.tx.Commit(); err != nil {
		return err
	}
	tx, err := cp.db.Begin(true)
	if err != nil {
		return err
	}
	cp.tx, cp.size = tx, 0
	if err := cp.ctx.Err(); err != nil {
		return err
	}
	if cp.progress != nil {
		cp.progress(cp.done, cp.total)
	}
	return nil
}
