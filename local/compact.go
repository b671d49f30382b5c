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

// compactInto copies every top-level bucket of src into dst (evstore's
// layout has no nested buckets), committing every compactTxBytes.
func compactInto(ctx context.Context, dst *bolt.DB, src *bolt.Tx, progress func(done, total int64)) error {
	var total int64
	var names [][]byte
	if err := src.ForEach(func(name []byte, b *bolt.Bucket) error {
		names = append(names, append([]byte(nil), name...))
		total += int64(b.Stats().KeyN)
		return nil
	}); err != nil {
		return err
	}
	tx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	defer func() { tx.Rollback() }()
	var size, done int64
	for _, name := range names {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
		c := src.Bucket(name).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if size > compactTxBytes {
				if err := tx.Commit(); err != nil {
					return err
				}
				if tx, err = dst.Begin(true); err != nil {
					return err
				}
				size = 0
				if err := ctx.Err(); err != nil {
					return err
				}
				if progress != nil {
					progress(done, total)
				}
			}
			b := tx.Bucket(name)
			// Keys arrive in order: full pages waste nothing.
			b.FillPercent = 1.0
			if v == nil {
				continue // a nested bucket; the layout has none
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
			size += int64(len(k) + len(v))
			done++
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if progress != nil {
		progress(total, total)
	}
	return nil
}
