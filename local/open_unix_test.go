//go:build unix

package local

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenRefusesFIFO: opening a named pipe for reading blocks until a
// writer comes, so Open must refuse it before opening it.
func TestOpenRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo.db")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Open(path, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("got %v, want ErrNotStore naming a named pipe", err)
		}
	case <-time.After(30 * time.Second): // a deadlock guard, not a timing claim
		t.Fatal("Open of a FIFO hangs")
	}
}

// TestReadersShareTheFile: read-only opens share the file (as bbolt's own
// shared lock intends) and keep a writer out while they hold it.
func TestReadersShareTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	opts := Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond}
	r1, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, opts)
	if err != nil {
		t.Fatalf("a second reader beside the first: %v", err)
	}
	defer r2.Close()
	if w, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if err == nil {
			w.Close()
		}
		t.Fatalf("a writer beside two readers: %v, want ErrLocked", err)
	}
}
