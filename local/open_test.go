package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
)

// TestOpenRefusesNonRegularFiles: a directory or a device is refused by
// name, with what to do, instead of "invalid argument".
func TestOpenRefusesNonRegularFiles(t *testing.T) {
	for _, tt := range []struct{ path, what string }{
		{t.TempDir(), "it is a directory"},
		{os.DevNull, "it is a device"},
	} {
		_, err := Open(tt.path, Options{})
		var oe *OpenError
		if !errors.Is(err, ErrNotStore) || !errors.As(err, &oe) || oe.Hint == "" || !strings.Contains(err.Error(), tt.what) {
			t.Errorf("%s: got %v, want ErrNotStore saying %q with a hint", tt.path, err, tt.what)
		}
	}
}

// TestBothMetaPagesDamaged: a file that has bbolt's shape but no readable
// meta page is a damaged database, not "not an evstore database".
func TestBothMetaPagesDamaged(t *testing.T) {
	b := damagedStoreBytes(t)
	for i := range 2 * 4096 {
		b[i] = 0xA5
	}
	path := filepath.Join(t.TempDir(), "metas.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("got %v, want ErrCorruptStore saying it looks damaged", err)
	}
	// Garbage of the same length is still not a database.
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("x", len(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage, Options{}); !errors.Is(err, ErrNotStore) || errors.Is(err, ErrCorruptStore) {
		t.Fatalf("garbage: got %v, want ErrNotStore", err)
	}
}

// TestNewerLayout: a database from a newer evstore asks for an upgrade,
// not for a backup.
func TestNewerLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaKeyFormat, binary.BigEndian.AppendUint32(nil, layoutVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrNewerLayout) || !strings.Contains(err.Error(), "upgrade") || strings.Contains(err.Error(), "backup") {
		t.Fatalf("got %v, want ErrNewerLayout asking for an upgrade", err)
	}
}

// TestManyShortOpensAllGetTheLock: many short-lived users of one file,
// started at once, all get in. bbolt's own wait polls every 50 ms, so its
// waiters retried in lockstep and the lock sat idle: about one opener got
// in per 50 ms, and 40 of these 100 timed out after 3 s. Each needs a few
// milliseconds under the lock, so 3 s leaves room for a loaded machine.
func TestManyShortOpensAllGetTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s, err := Open(path, Options{LockTimeout: 3 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if _, err := s.Append(context.Background(), []format.EventData{{Stream: "c", Type: "T", Data: fmt.Appendf(nil, "%d", i)}}); err != nil {
				errs <- err
			}
		})
	}
	start := time.Now()
	wg.Wait()
	t.Logf("%d opens, appends and closes took %v", n, time.Since(start))
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		t.Log(err)
	}
	if failed > 0 {
		t.Fatalf("%d of %d opens failed", failed, n)
	}
}

// TestWaiterFollowsARemovedFile: a process that created the file removes
// it again before closing (the CLI does when nothing was written). A
// waiter for the lock must then open the file the path names, not write
// into the removed one, whose data nobody could ever read.
func TestWaiterFollowsARemovedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "removed.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	var once sync.Once
	type opened struct {
		s   *Store
		err error
	}
	second := make(chan opened, 1)
	go func() {
		s, err := Open(path, Options{LockTimeout: 30 * time.Second, lockBusy: func() { once.Do(func() { close(busy) }) }})
		second <- opened{s, err}
	}()
	select {
	case <-busy:
	case <-time.After(30 * time.Second): // a deadlock guard
		t.Fatal("the second Open never found the lock taken")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	first.Close()
	o := <-second
	if o.err != nil {
		t.Fatal(o.err)
	}
	if _, err := o.s.Append(context.Background(), []format.EventData{{Stream: "s", Type: "T"}}); err != nil {
		t.Fatal(err)
	}
	o.s.Close()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Head() != 1 {
		t.Fatalf("the path holds head %d, want the waiter's event", s.Head())
	}
}
