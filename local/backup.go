package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// ErrExists is returned by [Store.BackupFile] and [Store.CompactFile] when
// the destination exists and BackupOptions.Overwrite is not set.
var ErrExists = errors.New("destination exists")

// ErrBackupInvalid is returned when a copy fails its verification; the copy
// is removed and the destination is left as it was.
var ErrBackupInvalid = errors.New("the copy failed verification")

// Backup writes a consistent copy of the whole file to w, as of one moment,
// while the store stays in use: it runs in one read transaction, so writers
// go on committing (they only wait if the file has to grow its memory map).
// It returns the bytes written. A plain copy of a live file (cp) is not
// consistent: bbolt rewrites pages in place.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupOptions configure [Store.BackupFile] and [Store.CompactFile].
type BackupOptions struct {
	// Overwrite allows replacing an existing destination file. Without it
	// an existing destination is refused with [ErrExists].
	Overwrite bool
	// Progress, if set, is called now and then with the work done and the
	// total (bytes for a backup, records for a compaction).
	Progress func(done, total int64)
}

// BackupInfo describes a verified copy.
type BackupInfo struct {
	Path   string
	Bytes  int64  // size of the copy
	Head   uint64 // last position the copy holds
	Report Report // the copy's verification
}

// BackupFile writes a verified copy of the store to path: it writes a
// temporary file next to path, fsyncs it, opens it read-only and runs
// [Store.Check] on it, and only then renames it to path. On any failure the
// temporary file is removed and path is untouched.
func (s *Store) BackupFile(ctx context.Context, path string, opts BackupOptions) (BackupInfo, error) {
	return s.copyFile(ctx, path, opts, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		var total int64
		err = s.view(func(tx *bolt.Tx) error {
			total = tx.Size()
			_, err := tx.WriteTo(&progressWriter{ctx: ctx, w: f, total: total, fn: opts.Progress})
			return err
		})
		if err == nil && opts.Progress != nil {
			opts.Progress(total, total)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// copyFile is the common part of BackupFile and CompactFile: temporary
// file, fsync, verification, rename.
func (s *Store) copyFile(ctx context.Context, path string, opts BackupOptions, write func(tmp string) error) (info BackupInfo, err error) {
	if !opts.Overwrite {
		if _, err := os.Lstat(path); err == nil {
			return info, fmt.Errorf("%s: %w: set BackupOptions.Overwrite to replace it", path, ErrExists)
		}
	}
	if abs, err := filepath.Abs(path); err == nil {
		if self, err := filepath.Abs(s.path); err == nil && abs == self {
			return info, fmt.Errorf("%s: %w: it is the store's own file", path, ErrExists)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return info, fmt.Errorf("create the copy: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := write(tmp); err != nil {
		return info, fmt.Errorf("write the copy: %w", err)
	}
	if f, err = os.OpenFile(tmp, os.O_RDWR, 0); err != nil {
		return info, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return info, fmt.Errorf("sync the copy: %w", err)
	}
	if err := f.Close(); err != nil {
		return info, fmt.Errorf("close the copy: %w", err)
	}
	if info, err = verifyCopy(ctx, tmp); err != nil {
		return info, err
	}
	info.Path = path
	if err := place(tmp, path, opts.Overwrite); err != nil {
		return info, err
	}
	syncDir(filepath.Dir(path))
	return info, nil
}

// verifyCopy opens a copy read-only and checks it.
func verifyCopy(ctx context.Context, path string) (BackupInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, err
	}
	c, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: %v", ErrBackupInvalid, err)
	}
	defer c.Close()
	rep, err := c.Check(ctx)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("verify the copy: %w", err)
	}
	info := BackupInfo{Bytes: st.Size(), Head: rep.Head, Report: rep}
	if !rep.OK() {
		return info, fmt.Errorf("%w: %d problems, the first: %s", ErrBackupInvalid, len(rep.Problems), rep.Problems[0])
	}
	return info, nil
}

// place moves the finished copy to path. Without overwrite a hard link
// makes the step atomic (it fails if path appeared meanwhile); file systems
// without links fall back to a rename.
func place(tmp, path string, overwrite bool) error {
	if !overwrite {
		err := os.Link(tmp, path)
		if err == nil {
			return os.Remove(tmp)
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w: set BackupOptions.Overwrite to replace it", path, ErrExists)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("move the copy into place: %w", err)
	}
	return nil
}

// syncDir makes a rename durable where the system allows it (not on
// Windows, where a directory cannot be opened for syncing).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// progressWriter reports bytes written and stops when ctx ends.
type progressWriter struct {
	ctx         context.Context
	w           io.Writer
	done, total int64
	fn          func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
	return n, err
}
