//go:build unix

package local

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// lockingOpener returns the function bbolt opens the file with. It takes
// the file's lock itself, before bbolt asks for it on the same descriptor
// (flock on a descriptor that already holds the lock succeeds at once).
//
// bbolt's own wait polls every 50 ms, so when many short processes queue
// for one file (a script starting a hundred execs) the lock sits free
// between polls and the unlucky ones run out of time while the file is
// mostly idle. Polling every few milliseconds, with jitter so the waiters
// do not try in lockstep, keeps the lock busy.
//
// After locking it also checks that the path still names the file it
// locked: a process that created the file and removes it again before
// closing (the CLI does when a command wrote nothing) would otherwise leave
// its waiter writing into a file that no longer has a name.
func lockingOpener(timeout time.Duration, onBusy func()) func(string, int, os.FileMode) (*os.File, error) {
	return func(path string, flag int, mode os.FileMode) (*os.File, error) {
		deadline := time.Now().Add(timeout)
		wait := time.Millisecond
		// A read-only open shares the file with other readers, as bbolt's
		// own lock (LOCK_SH) would; a writer has it alone.
		how := syscall.LOCK_EX
		if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
			how = syscall.LOCK_SH
		}
		for {
			f, err := os.OpenFile(path, flag, mode)
			if err != nil {
				return nil, err
			}
			err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
			switch {
			case err == nil:
				if same, serr := stillNamed(path, f); serr != nil || same {
					if serr != nil {
						f.Close()
						return nil, serr
					}
					return f, nil
				}
				// Removed or replaced while we waited: start again on
				// whatever the path names now.
				f.Close()
				continue
			case !errors.Is(err, syscall.EWOULDBLOCK):
				f.Close()
				return nil, fmt.Errorf("lock: %w", err)
			}
			f.Close()
			if onBusy != nil {
				onBusy()
			}
			if time.Now().After(deadline) {
				return nil, berrors.ErrTimeout
			}
			time.Sleep(wait/2 + rand.N(wait)) // jitter: waiters drift apart
			wait = min(2*wait, 10*time.Millisecond)
		}
	}
}

// stillNamed reports whether path still names the open file f.
func stillNamed(path string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}
