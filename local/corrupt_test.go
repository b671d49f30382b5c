package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/evstore/evstore/format"
)

// damagedStore writes a few hundred events across streams and returns the
// file's bytes.
func damagedStoreBytes(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := s.Append(context.Background(), []format.EventData{{Stream: fmt.Sprintf("s-%d", i%7), Type: "T", Data: []byte(`{"n":1}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTruncatedFileIsRefused cuts a real store at several lengths: Open
// must say the file is damaged, never panic (bbolt would, on a goroutine
// nobody can recover).
func TestTruncatedFileIsRefused(t *testing.T) {
	full := damagedStoreBytes(t)
	for _, n := range []int{4096 * 2, 4096 * 4, 40000, 4096 * 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cut.db")
			if err := os.WriteFile(path, full[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("a store cut to %d of %d bytes opened", n, len(full))
			}
			var pe *OpenError
			if !errors.Is(err, ErrCorruptStore) || !errors.As(err, &pe) || pe.Hint == "" {
				t.Fatalf("got %v, want ErrCorruptStore with a hint", err)
			}
		})
	}
}

// TestDamagedPagesAreErrors overwrites one page at a time with garbage and
// reads everything back: each read either succeeds or fails with an error
// (ErrCorruptStore, format.ErrCorrupt, ErrNotStore), and the process does
// not crash.
func TestDamagedPagesAreErrors(t *testing.T) {
	full := damagedStoreBytes(t)
	const page = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	failed := 0
	for p := 2; p < len(full)/page; p++ {
		b := append([]byte(nil), full...)
		for i := p * page; i < (p+1)*page; i++ {
			b[i] = byte(rng.Uint32())
		}
		path := filepath.Join(t.TempDir(), "damaged.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := readEverything(path)
		if err != nil {
			failed++
			if !errors.Is(err, ErrCorruptStore) && !errors.Is(err, format.ErrCorrupt) && !errors.Is(err, ErrNotStore) {
				t.Fatalf("page %d damaged: unexpected error %v", p, err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no damaged page was noticed")
	}
}

func readEverything(path string) error {
	s, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	for _, err := range s.ReadAll(1) {
		if err != nil {
			return err
		}
	}
	for i := range 7 {
		for _, err := range s.ReadStream(fmt.Sprintf("s-%d", i), 1) {
			if err != nil {
				return err
			}
		}
	}
	_, err = s.Append(context.Background(), []format.EventData{{Stream: "s-0", Type: "T"}})
	return err
}

// TestFailedCommitStopsWrites damages pages the writer needs and appends
// at once: a commit that fails leaves the store refusing every later write
// (its state on disk is unknown), until it is reopened.
func TestFailedCommitStopsWrites(t *testing.T) {
	full := damagedStoreBytes(t)
	const page = 4096
	stopped := 0
	for p := 2; p < len(full)/page; p++ {
		b := append([]byte(nil), full...)
		for i := p * page; i < (p+1)*page; i++ {
			b[i] = 0xA5
		}
		path := filepath.Join(t.TempDir(), "damaged.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		if err != nil {
			continue
		}
		_, err = s.Append(context.Background(), []format.EventData{{Stream: "s-0", Type: "T"}})
		if errors.Is(err, ErrWriteFailed) {
			stopped++
			if !errors.Is(err, ErrCorruptStore) {
				t.Errorf("page %d: the commit error lost its cause: %v", p, err)
			}
			if _, again := s.Append(context.Background(), []format.EventData{{Stream: "elsewhere", Type: "T"}}); !errors.Is(again, ErrWriteFailed) {
				t.Errorf("page %d: a write after the failed commit got %v", p, again)
			}
		}
		s.Close()
	}
	if stopped == 0 {
		t.Fatal("no damaged page failed a commit: the test exercised nothing")
	}
}
