//go:build linux

package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/evstore/evstore/format"
)

// storeFD finds the descriptor this process holds on path (bbolt's).
func storeFD(t *testing.T, path string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == path {
			var fd int
			fmt.Sscan(e.Name(), &fd)
			return fd
		}
	}
	t.Fatalf("no descriptor on %s", path)
	return -1
}

// faultRun appends acknowledged events, then breaks the disk with fault,
// appends until a commit fails, and checks the contract: the failed commit
// is a CommitError with its cause, every later write is refused with
// "nothing was written", reads go on, and after reopening the file is
// consistent with every acknowledged event and the failed group whole or
// absent. It returns the failed commit's error.
func faultRun(t *testing.T, path string, fault func(), heal func()) error {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acked := 0
	group := func(i int) []format.EventData {
		return []format.EventData{
			{Stream: fmt.Sprintf("s-%d", i%3), Type: "Part", Data: []byte(strings.Repeat("d", 1000))},
			{Stream: "other", Type: "Part", Data: fmt.Appendf(nil, "%d", i)},
		}
	}
	for i := range 50 {
		if _, err := s.Append(ctx, group(i)); err != nil {
			t.Fatal(err)
		}
		acked += 2
	}
	fault()
	var failed error
	for i := 50; i < 100_000; i++ {
		if _, err := s.Append(ctx, group(i)); err != nil {
			failed = err
			break
		}
		acked += 2
	}
	var ce *CommitError
	if !errors.As(failed, &ce) || !errors.Is(failed, ErrWriteFailed) {
		t.Fatalf("the failed commit returned %v, want a CommitError", failed)
	}
	for range 3 {
		_, err := s.Append(ctx, []format.EventData{{Stream: "after", Type: "T"}})
		var re *RefusedError
		if !errors.As(err, &re) || !errors.Is(err, ErrWriteFailed) || !strings.Contains(err.Error(), "nothing was written") {
			t.Fatalf("a write after the failed commit got %v, want a refusal saying nothing was written", err)
		}
	}
	if n := len(collect(t, s.ReadAll(1))); n != acked {
		t.Fatalf("reads after the failure: %d events, want %d", n, acked)
	}
	s.Close()
	heal()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after the fault: %v", err)
	}
	defer s.Close()
	evs := collect(t, s.ReadAll(1))
	if len(evs) != acked && len(evs) != acked+2 {
		t.Fatalf("after reopening: %d events, want the %d acknowledged (and the failed group whole or absent)", len(evs), acked)
	}
	for i, ev := range evs {
		if ev.Position != uint64(i+1) {
			t.Fatalf("position %d at index %d", ev.Position, i)
		}
	}
	if _, err := s.Append(ctx, []format.EventData{{Stream: "healed", Type: "T"}}); err != nil {
		t.Fatalf("a write after reopening: %v", err)
	}
	return failed
}

// TestFsyncFailure points the store's descriptor at /dev/null, where
// writes succeed and fsync fails (EINVAL): the commit fails at the fsync
// boundary, as on a disk that reports an I/O error.
func TestFsyncFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsync.db")
	err := faultRun(t, path, func() {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		fd := storeFD(t, path)
		if err := syscall.Dup3(int(null.Fd()), fd, syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
	}, func() {})
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("the cause is lost: %v", err)
	}
}

// TestFileSizeLimit makes the file unable to grow (RLIMIT_FSIZE, what a
// quota or a full disk looks like to a writer that needs more pages).
//
// The limit is the whole process's: lowered here, it would also fail the
// test framework's own log and any test running beside this one. So the
// test runs itself again in a child process and the limit is the child's.
func TestFileSizeLimit(t *testing.T) {
	if os.Getenv("EVSTORE_FSIZE_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileSizeLimit$", "-test.v")
		cmd.Env = append(os.Environ(), "EVSTORE_FSIZE_CHILD=1")
		out, err := cmd.CombinedOutput()
		switch {
		case strings.Contains(string(out), "--- SKIP"):
			t.Skipf("the child skipped:\n%s", out)
		case err != nil || !strings.Contains(string(out), "--- PASS: TestFileSizeLimit"):
			t.Fatalf("the child failed (%v):\n%s", err, out)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "full.db")
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	restore := func() { syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old) }
	defer restore()
	err := faultRun(t, path, func() {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		lim := syscall.Rlimit{Cur: uint64(info.Size()) + 64<<10, Max: old.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Skipf("setrlimit: %v", err)
		}
	}, restore)
	// bbolt words a failed resize with %s, so only the text carries EFBIG.
	if !errors.Is(err, syscall.EFBIG) && !strings.Contains(err.Error(), syscall.EFBIG.Error()) {
		t.Fatalf("the cause is lost: %v", err)
	}
}

// TestDiskFull fills a small ext4 file system until ENOSPC. Mounting one
// needs root and loop devices; elsewhere the test skips (RLIMIT_FSIZE above
// covers the same code path without them).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small file system; TestFileSizeLimit covers the same path")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	for _, c := range [][]string{{"truncate", "-s", "8M", img}, {"mkfs.ext4", "-q", "-F", img}, {"mount", "-o", "loop", img, mnt}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%v: %v %s", c, err, out)
		}
	}
	defer exec.Command("umount", mnt).Run()
	path := filepath.Join(mnt, "full.db")
	filler := filepath.Join(mnt, "filler")
	err := faultRun(t, path, func() {
		// Leave a few hundred KiB: the store fills them, then ENOSPC.
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var st syscall.Statfs_t
		syscall.Statfs(mnt, &st)
		free := int64(st.Bavail) * int64(st.Bsize) // Bsize is int32 on 32-bit ARM
		f.Write(make([]byte, max(free-512<<10, 0)))
		f.Sync()
	}, func() { os.Remove(filler) })
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the cause is lost: %v", err)
	}
}
