package local

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
)

func TestKeyReusedWithAnotherFingerprint(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	if _, err := s.Write(ctx, Request{Events: []format.EventData{ev("a", "T", "1")}, Key: "k1", Fingerprint: []byte("increment a")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Write(ctx, Request{Events: []format.EventData{ev("b", "T", "2")}, Key: "k1", Fingerprint: []byte("append b")})
	var kr *KeyReusedError
	if !errors.Is(err, ErrKeyReused) || !errors.As(err, &kr) || kr.Key != "k1" || s.Head() != 1 {
		t.Fatalf("reused key: %v, head %d", err, s.Head())
	}
	if _, _, err := s.LookupRequest("k1", []byte("append b")); !errors.Is(err, ErrKeyReused) {
		t.Fatalf("lookup: %v", err)
	}
	for _, fp := range [][]byte{[]byte("increment a"), nil} {
		if r, err := s.Write(ctx, Request{Events: []format.EventData{ev("a", "T", "1")}, Key: "k1", Fingerprint: fp}); err != nil || !r.Duplicate {
			t.Fatalf("same request (fingerprint %q): %+v %v", fp, r, err)
		}
	}
}

// Two requests with one key in one group commit: the second is checked
// against the first, not against the bucket.
func TestKeyReusedInOneGroup(t *testing.T) {
	s := openTemp(t, Options{})
	for round := range 20 {
		key := string(rune('a' + round))
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = s.Write(context.Background(), Request{Events: []format.EventData{ev("s", "T", "x")}, Key: key, Fingerprint: []byte{byte(i % 2)}})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrKeyReused):
				t.Fatal(err)
			}
		}
		if ok != 4 {
			t.Fatalf("round %d: %d requests succeeded, want the 4 with the first one's fingerprint", round, ok)
		}
	}
	if s.Head() != 20 {
		t.Fatalf("head %d", s.Head())
	}
}

// A file written by layout 1 has 20-byte idempotency entries without a
// fingerprint: they stay readable and match any request, and opening the
// file marks it as layout 2.
func TestLayout1IdempotencyEntries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []format.EventData{ev("a", "T", "1")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := receipt{first: 1, last: 1, retries: 2}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketIdem).Put([]byte("old"), old.appendTo(nil)); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketKeyAnchors); err != nil { // layout 1 had none
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaKeyFormat, binary.BigEndian.AppendUint32(nil, 1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A read-only open reads the older layout as it is, without marking it.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a layout 1 file: %v", err)
	}
	if rep, err := ro.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check of a layout 1 file: %v %+v", err, rep)
	}
	ro.Close()
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Write(ctx, Request{Events: []format.EventData{ev("b", "T", "2")}, Key: "old", Fingerprint: []byte("anything")})
	if err != nil || !r.Duplicate || r.Retries != 2 || r.Last() != 1 || s.Head() != 1 {
		t.Fatalf("old entry: %+v %v", r, err)
	}
	s.Close()
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(metaKeyFormat)); v != layoutVersion {
			t.Errorf("layout %d after open, want %d", v, layoutVersion)
		}
		return nil
	})
}

func TestClockSetsEventTime(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	s := openTemp(t, Options{Clock: func() time.Time { return at }})
	if _, err := s.Append(context.Background(), []format.EventData{ev("a", "T", "1")}); err != nil {
		t.Fatal(err)
	}
	for e, err := range s.ReadStream("a", 1) {
		if err != nil || !e.Time.Equal(at) || e.Time.Location() != time.UTC {
			t.Fatalf("time %v (%v), want %v in UTC", e.Time, err, at)
		}
	}
}

func FuzzDecodeReceipt(f *testing.F) {
	f.Add(receipt{first: 1, last: 3, retries: 2}.appendTo(nil))
	f.Add(receipt{retries: 1, fingerprint: fingerprintOf([]byte("x"))}.appendTo(nil))
	f.Add(receipt{first: 5, last: 5, fingerprint: fingerprintOf([]byte("y"))}.appendTo(nil))
	f.Add([]byte{})
	f.Add(make([]byte, 19))
	f.Add(receipt{first: 3, last: 1}.appendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReceipt(b)
		if err != nil {
			return
		}
		if got := r.appendTo(nil); string(got) != string(b) {
			t.Fatalf("round trip %x -> %+v -> %x", b, r, got)
		}
		if r.first > r.last {
			t.Fatalf("accepted %+v", r)
		}
	})
}
