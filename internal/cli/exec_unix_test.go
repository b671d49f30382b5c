//go:build unix

package cli

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFIFOsEndOnSignal: -f naming a FIFO that no one writes, and --db
// naming a FIFO, used to block in open(2) until SIGKILL.
func TestFIFOsEndOnSignal(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Unblock a reader left behind when the test ends.
	defer func() {
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- runCLIContext(t, ctx, "", "--db", filepath.Join(dir, "db"), "exec", "-f", fifo) }()
	cancel()
	select {
	case r := <-done:
		r.want(t, 1, nil, []string{"interrupted"})
	case <-time.After(30 * time.Second): // a deadlock guard
		t.Fatal("exec -f FIFO did not end on a signal")
	}
	r := runCLI(t, "", "--db", fifo, "exec", "counter.increment", `{"counter":"c"}`)
	r.want(t, 1, nil, []string{"it is a named pipe", "name a regular file"})
}
