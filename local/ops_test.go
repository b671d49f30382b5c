package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
)

// fillStore writes n events over a few streams, with a key per request.
func fillStore(t testing.TB, s *Store, n int) {
	t.Helper()
	for i := range n {
		_, err := s.Write(context.Background(), Request{
			Events: []format.EventData{{Stream: fmt.Sprintf("acct-%d", i%5), Type: "T", Data: fmt.Appendf(nil, `{"i":%d}`, i), Metadata: map[string]string{"n": fmt.Sprint(i)}}},
			Key:    fmt.Sprintf("k%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestReadOnlyWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillStore(t, s, 20)
	s.Close()
	if os.Geteuid() != 0 { // root may write anyway; the bytes are checked below regardless
		if err := os.Chmod(path, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	before := fileSum(t, path)
	for range 2 { // two opens: the second sees what the first left
		ro, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := collect(t, ro.ReadAll(1)); len(got) != 20 {
			t.Fatalf("read %d events", len(got))
		}
		if _, err := ro.Append(context.Background(), []format.EventData{ev("a", "T", "{}")}); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("append on a read-only store: %v", err)
		}
		if err := ro.UpdateSpace(context.Background(), "p", func(tx *SpaceTx) error { return tx.Put([]byte("k"), []byte("v")) }); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("key-space update on a read-only store: %v", err)
		}
		if rep, err := ro.Check(context.Background()); err != nil || !rep.OK() || !rep.Pages {
			t.Fatalf("check: %+v %v", rep, err)
		}
		if st, err := ro.Stats(); err != nil || st.Events != 20 || st.Streams != 5 || st.Keys != 20 {
			t.Fatalf("stats %+v %v", st, err)
		}
		if err := ro.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if fileSum(t, path) != before {
		t.Fatal("a read-only open changed the file")
	}
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, err := Open(missing, Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("read-only open created a file")
	}
}

func TestStoreIDOption(t *testing.T) {
	const id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
	path := filepath.Join(t.TempDir(), "id.db")
	s, err := Open(path, Options{StoreID: id})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != id {
		t.Fatalf("id %s", s.ID())
	}
	s.Close()
	if _, err := Open(path, Options{StoreID: "0190a1b2-c3d4-7e5f-8a9b-000000000000"}); !errors.Is(err, ErrStoreID) {
		t.Fatalf("another id: %v", err)
	}
	if _, err := Open(path, Options{StoreID: "nope"}); !errors.Is(err, format.ErrInvalid) || !strings.Contains(err.Error(), "Options.StoreID") {
		t.Fatalf("bad id: %v", err)
	}
}

func TestStatsAndStreams(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	st, err := s.Stats()
	if err != nil || st.Events != 0 || !st.LastCommit.IsZero() || st.StoreID != s.ID() {
		t.Fatalf("empty stats %+v %v", st, err)
	}
	fillStore(t, s, 12)
	for i := range readChunk + 3 { // more streams than one chunk
		if _, err := s.Append(context.Background(), []format.EventData{ev(fmt.Sprintf("many-%04d", i), "T", "{}")}); err != nil {
			t.Fatal(err)
		}
	}
	st, err = s.Stats()
	if err != nil || st.Events != 12+readChunk+3 || st.Streams != 5+readChunk+3 || st.Keys != 12 || st.LastCommit.IsZero() || st.FileBytes == 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	var got []StreamInfo
	for si, err := range s.Streams("acct-") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, si)
	}
	if len(got) != 5 || got[0].Stream != "acct-0" || got[0].Version != 3 || got[0].LastPosition != 11 || got[4].Version != 2 || got[0].LastTime.IsZero() {
		t.Fatalf("streams %+v", got)
	}
	n := 0
	for si, err := range s.Streams("many-") {
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("many-%04d", n); si.Stream != want {
			t.Fatalf("stream %d is %s, want %s", n, si.Stream, want)
		}
		n++
	}
	if n != readChunk+3 {
		t.Fatalf("%d streams", n)
	}
}

// damage builds a healthy store of 30 events, closes it, changes it with
// fn through bbolt directly, and returns its path.
func damage(t *testing.T, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "damaged.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	fillStore(t, s, 30)
	s.Close()
	if fn == nil {
		return path
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return path
}

func TestCheckFindsDamage(t *testing.T) {
	for _, tt := range []struct {
		name string
		fn   func(tx *bolt.Tx) error
		want []string // Problem.String() substrings, each must appear
	}{
		{"healthy", nil, nil},
		{"flipped byte", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketLog)
			rec := bytes.Clone(b.Get(u64(17)))
			rec[len(rec)-3] ^= 0x01
			return b.Put(u64(17), rec)
		}, []string{"log position 17: damaged record: checksum mismatch"}},
		{"missing index entry", func(tx *bolt.Tx) error {
			// Event 12 is acct-1 version 3.
			return tx.Bucket(bucketStreams).Delete(appendStreamKey(nil, "acct-1", 3))
		}, []string{`index "acct-1" version 3 position 12: no index entry for this event`, `index "acct-1" version 3: missing (a gap in the stream's versions)`}},
		{"wrong versions entry", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketVersions).Put([]byte("acct-2"), streamState{version: 5, last: 28}.appendTo(nil))
		}, []string{`versions "acct-2": says version 5 at position 28, the index ends at version 6, position 28`}},
		{"gap in positions", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketLog).Delete(u64(9))
		}, []string{"log position 9: missing (a gap in positions)", "points at position 9, which is not in the log"}},
		{"versions of no stream", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketVersions).Put([]byte("ghost"), streamState{version: 1, last: 3}.appendTo(nil))
		}, []string{`versions "ghost": says version 1 at position 3, the index has no event of the stream`}},
		{"key past the log", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketIdem).Put([]byte("k3"), receipt{first: 31, last: 32}.appendTo(nil))
		}, []string{`idempotency key "k3": positions 31..32 do not lie in the log 1..30`}},
		{"key not anchored", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketKeyAnchors).Delete(append(u64(4), "k3"...))
		}, []string{`idempotency key "k3": not in the key-anchors index at position 4`}},
		{"anchor of no key", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketKeyAnchors).Put(append(u64(7), "ghost"...), []byte{})
		}, []string{`idempotency key "ghost" position 7: in the key-anchors index but not stored`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := damage(t, tt.fn)
			for _, ro := range []bool{true, false} {
				s, err := Open(path, Options{ReadOnly: ro})
				if err != nil {
					t.Fatal(err)
				}
				rep, err := s.Check(context.Background())
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				var all []string
				for _, p := range rep.Problems {
					all = append(all, p.String())
				}
				text := strings.Join(all, "\n")
				if len(tt.want) == 0 && !rep.OK() {
					t.Fatalf("healthy file reported:\n%s", text)
				}
				if len(tt.want) > 0 && rep.OK() {
					t.Fatal("damage not found")
				}
				for _, w := range tt.want {
					if !strings.Contains(text, w) {
						t.Errorf("read-only %v: want %q in\n%s", ro, w, text)
					}
				}
				if rep.Head != 30 && tt.name != "gap in positions" {
					t.Errorf("head %d", rep.Head)
				}
			}
		})
	}
}

func TestCheckStopsOnCancel(t *testing.T) {
	s := openTemp(t, Options{})
	fillStore(t, s, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Check(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestBackupUnderLoad takes 20 backups while 64 writers append. Each backup
// must verify clean and hold every event acknowledged before it started.
// The writers take tokens, a batch released as each backup starts, so they
// write during the backups without growing the file (and the test's time)
// without bound.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	s := openTemp(t, Options{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	tokens := make(chan struct{}, 1024)
	var acked atomic.Uint64 // every position up to this one is acknowledged
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := map[uint64]bool{}
	for w := range 64 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-tokens:
				case <-ctx.Done():
					return
				}
				last, err := s.Append(ctx, []format.EventData{ev(fmt.Sprintf("w%d", w), "T", fmt.Sprintf(`{"i":%d}`, i))})
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				done[last] = true
				for done[acked.Load()+1] {
					delete(done, acked.Load()+1)
					acked.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	for i := range 20 {
		for range 256 {
			tokens <- struct{}{}
		}
		before := acked.Load()
		path := filepath.Join(dir, fmt.Sprintf("backup-%d.db", i))
		var info BackupInfo
		var err error
		if i%2 == 0 {
			info, err = s.BackupFile(context.Background(), path, BackupOptions{})
		} else { // the writer variant
			var buf bytes.Buffer
			if _, err = s.Backup(&buf); err == nil {
				err = os.WriteFile(path, buf.Bytes(), 0o600)
			}
		}
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		b, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		rep, err := b.Check(context.Background())
		if err != nil || !rep.OK() || !rep.Pages {
			t.Fatalf("backup %d: %v %v", i, err, rep.Problems)
		}
		if rep.Head < before {
			t.Fatalf("backup %d holds %d events, %d were acknowledged before it started", i, rep.Head, before)
		}
		if i%2 == 0 && info.Head != rep.Head {
			t.Fatalf("backup %d: info head %d, check %d", i, info.Head, rep.Head)
		}
		b.Close()
	}
	cancel()
	wg.Wait()
	if s.Head() == 0 {
		t.Fatal("no load")
	}
}

func TestBackupFileRefusesOverwrite(t *testing.T) {
	s := openTemp(t, Options{})
	fillStore(t, s, 5)
	dest := filepath.Join(t.TempDir(), "b.db")
	os.WriteFile(dest, []byte("keep me"), 0o600)
	if _, err := s.BackupFile(context.Background(), dest, BackupOptions{}); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "BackupOptions.Overwrite") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "keep me" {
		t.Fatal("destination changed")
	}
	if _, err := s.BackupFile(context.Background(), s.Path(), BackupOptions{Overwrite: true}); !errors.Is(err, ErrExists) {
		t.Fatalf("backup onto itself: %v", err)
	}
	if _, err := s.BackupFile(context.Background(), dest, BackupOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dest))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestCompactFile(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	fillStore(t, s, 300)
	// Key spaces are nested buckets: the copy must keep them.
	if err := s.UpdateSpace(context.Background(), "balances", func(tx *SpaceTx) error { return tx.Put([]byte("a"), []byte("42")) }); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "c.db")
	var calls int
	info, err := s.CompactFile(context.Background(), dest, BackupOptions{Progress: func(done, total int64) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if info.Head != 300 || !info.Report.OK() || calls == 0 {
		t.Fatalf("info %+v, %d progress calls", info, calls)
	}
	if st, _ := s.Stats(); info.Bytes >= st.FileBytes {
		t.Errorf("the compacted copy has %d bytes, the store %d", info.Bytes, st.FileBytes)
	}
	c, err := Open(dest, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ID() != s.ID() {
		t.Fatal("compaction changed the store id")
	}
	if err := c.ViewSpace("balances", func(tx *SpaceTx) error {
		if v := tx.Get([]byte("a")); string(v) != "42" {
			t.Errorf("key space after compaction: %q, want 42", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a, b := collect(t, s.ReadAll(1)), collect(t, c.ReadAll(1))
	if len(a) != len(b) {
		t.Fatalf("%d vs %d events", len(a), len(b))
	}
	for i := range a {
		if !sameEvent(a[i], b[i]) {
			t.Fatalf("event %d differs", i)
		}
	}
}

func TestExportImport(t *testing.T) {
	src := openTemp(t, Options{})
	fillStore(t, src, 50)
	src.Append(context.Background(), []format.EventData{{Stream: "bin", Type: "B", Data: []byte{0xff, 0, 1}}, {Stream: "bin", Type: "B"}})
	var buf bytes.Buffer
	info, err := src.Export(context.Background(), &buf, ExportOptions{FrameEvents: 7})
	if err != nil || info.From != 1 || info.To != 52 || info.Frames != 8 {
		t.Fatalf("export %+v %v", info, err)
	}
	dst := openTemp(t, Options{})
	in, err := dst.ImportExport(context.Background(), bytes.NewReader(buf.Bytes()), nil)
	if err != nil || in.Imported != 52 || in.Skipped != 0 {
		t.Fatalf("import %+v %v", in, err)
	}
	a, b := collect(t, src.ReadAll(1)), collect(t, dst.ReadAll(1))
	if len(a) != len(b) {
		t.Fatalf("%d vs %d events", len(a), len(b))
	}
	for i := range a {
		if !sameEvent(a[i], b[i]) {
			t.Fatalf("event %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	if rep, err := dst.Check(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("check %v %v", rep.Problems, err)
	}
	// Running it again skips what is there.
	if in, err = dst.ImportExport(context.Background(), bytes.NewReader(buf.Bytes()), nil); err != nil || in.Skipped != 52 || in.Imported != 0 {
		t.Fatalf("re-import %+v %v", in, err)
	}
	// New writes continue the imported streams.
	if last, err := dst.Append(context.Background(), []format.EventData{ev("acct-0", "T", "{}")}, Expect{Stream: "acct-0", Version: 10}); err != nil || last != 53 {
		t.Fatalf("append after import: %d %v", last, err)
	}
	// A damaged file imports nothing.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)/2] ^= 1
	empty := openTemp(t, Options{})
	_, err = empty.ImportExport(context.Background(), bytes.NewReader(bad), nil)
	if ee, ok := errors.AsType[*format.ExportError](err); !ok || ee.Frame < 1 {
		t.Fatalf("damaged export: %v", err)
	}
	if empty.Head() != 0 {
		t.Fatal("a damaged export imported events")
	}
}

func TestImportRefusesWhatDoesNotFollow(t *testing.T) {
	s := openTemp(t, Options{})
	fillStore(t, s, 3)
	evs := collect(t, s.ReadAll(1))
	other := openTemp(t, Options{})
	if err := other.Import(context.Background(), evs[1:], nil); !errors.Is(err, ErrImport) {
		t.Fatalf("gap: %v", err)
	}
	e := evs[0]
	e.Version = 2
	if err := other.Import(context.Background(), []format.Event{e}, nil); !errors.Is(err, ErrImport) {
		t.Fatalf("version: %v", err)
	}
	if err := other.Import(context.Background(), evs, []ImportedKey{{Key: "k", First: 1, Last: 9}}); !errors.Is(err, ErrImport) {
		t.Fatalf("key past the log: %v", err)
	}
	if other.Head() != 0 {
		t.Fatal("a refused import wrote")
	}
	if err := other.Import(context.Background(), evs, []ImportedKey{{Key: "k0", First: 1, Last: 1}}); err != nil {
		t.Fatal(err)
	}
	r, err := other.Write(context.Background(), Request{Key: "k0", Events: []format.EventData{ev("x", "T", "{}")}})
	if err != nil || !r.Duplicate || r.Last() != 1 {
		t.Fatalf("imported key: %+v %v", r, err)
	}
}

func TestKeysBetween(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Write(ctx, Request{Key: "one", Events: []format.EventData{ev("a", "T", "{}"), ev("b", "T", "{}")}}) // 1..2
	s.Write(ctx, Request{Key: "none"})                                                                    // nothing, anchored at 3
	s.Write(ctx, Request{Key: "two", Retries: 2, Events: []format.EventData{ev("a", "T", "{}")}})         // 3
	s.Write(ctx, Request{Events: []format.EventData{ev("a", "T", "{}")}})                                 // 4, no key
	want := func(s *Store, from, to uint64, keys ...string) {
		t.Helper()
		got, err := s.KeysBetween(from, to)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range got {
			names = append(names, k.Key)
		}
		if strings.Join(names, ",") != strings.Join(keys, ",") {
			t.Fatalf("keys %d..%d: %v, want %v", from, to, got, keys)
		}
	}
	want(s, 1, 1)
	want(s, 1, 2, "one")
	want(s, 3, 4, "none", "two")
	got, _ := s.KeysBetween(3, 3)
	if got[1] != (ImportedKey{Key: "two", First: 3, Last: 3, Retries: 2}) || got[0] != (ImportedKey{Key: "none"}) {
		t.Fatalf("receipts %+v", got)
	}
	s.Close()
	// A file from before the anchors bucket gets it on a writable open.
	db, _ := bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketKeyAnchors) })
	db.Close()
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	want(ro, 1, 9)
	ro.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want(s, 1, 9, "one", "two", "none") // backfilled: "none" anchors after the head
}

func TestReadAllSalvage(t *testing.T) {
	path := damage(t, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		rec := bytes.Clone(b.Get(u64(5)))
		rec[len(rec)-1] ^= 0xff
		if err := b.Put(u64(5), rec); err != nil {
			return err
		}
		return b.Delete(u64(9))
	})
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ok []uint64
	var bad []uint64
	for ev, err := range s.ReadAllSalvage(1) {
		if err != nil {
			ce, isCE := errors.AsType[*format.CorruptError](err)
			if !isCE || !IsDamagedRecord(err) {
				t.Fatal(err)
			}
			bad = append(bad, ce.Position)
			continue
		}
		ok = append(ok, ev.Position)
	}
	if len(ok) != 28 || fmt.Sprint(bad) != "[5 9]" || ok[3] != 4 || ok[4] != 6 || ok[27] != 30 {
		t.Fatalf("intact %v, damaged %v", ok, bad)
	}
	// ReadAll stops at the damage.
	n := 0
	for _, err := range s.ReadAll(1) {
		if err != nil {
			break
		}
		n++
	}
	if n != 0 { // the chunk holding position 5 fails whole
		t.Fatalf("ReadAll yielded %d events before the damage", n)
	}
}

func TestReadStreamSalvage(t *testing.T) {
	// acct-0 is at positions 1, 6, 11, 16, 21, 26; damage 11.
	path := damage(t, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		rec := bytes.Clone(b.Get(u64(11)))
		rec[len(rec)-1] ^= 0xff
		return b.Put(u64(11), rec)
	})
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ok, bad []uint64
	for ev, err := range s.ReadStreamSalvage("acct-0", 2) {
		if ce, isCE := errors.AsType[*format.CorruptError](err); isCE {
			bad = append(bad, ce.Position)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		ok = append(ok, ev.Version)
	}
	if fmt.Sprint(ok) != "[2 4 5 6]" || fmt.Sprint(bad) != "[11]" {
		t.Fatalf("intact versions %v, damaged positions %v", ok, bad)
	}
}

// TestImportBesideWriters imports while writers append: positions stay
// gapless and the head ends at the log's last position.
func TestImportBesideWriters(t *testing.T) {
	src := openTemp(t, Options{NoSync: true})
	fillStore(t, src, 1)
	evs := collect(t, src.ReadAll(1))
	s := openTemp(t, Options{NoSync: true})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.Append(context.Background(), []format.EventData{ev(fmt.Sprintf("w%d", w), "T", "{}")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	imported := 0
	for imported < 20 {
		e := evs[0]
		e.Position = s.Head() + 1
		e.Stream = "imported"
		e.Version = uint64(imported + 1)
		e.ID = fmt.Sprintf("0190a1b2-c3d4-7e5f-8a9b-%012d", imported)
		err := s.Import(context.Background(), []format.Event{e}, nil)
		if errors.Is(err, ErrImport) {
			continue // a writer took the position first
		}
		if err != nil {
			t.Fatal(err)
		}
		imported++
	}
	wg.Wait()
	rep, err := s.Check(context.Background())
	if err != nil || !rep.OK() || rep.Head != 420 || s.Head() != 420 {
		t.Fatalf("head %d, check %+v %v", s.Head(), rep, err)
	}
}
