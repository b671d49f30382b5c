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
