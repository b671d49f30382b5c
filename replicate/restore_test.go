package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestRestoreInterruptedAndResumed restores a frames source in small
// batches, interrupts the first run, and checks that running again finishes
// with every event byte for byte and every key.
func TestRestoreInterruptedAndResumed(t *testing.T) {
	url, schema := pgtest.Schema(t)
	s := openStore(t)
	ctx := context.Background()
	for i := range 40 {
		req := local.Request{Events: []format.EventData{{Stream: fmt.Sprintf("s-%d", i%3), Type: "T", Data: fmt.Appendf(nil, `{ "i" : %d }`, i)}}}
		if i%4 == 0 {
			req.Key = fmt.Sprintf("key-%d", i)
		}
		if _, err := s.Write(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	o := fastOpts(url, schema, t)
	o.Once, o.Layout, o.BatchEvents = true, LayoutFrames, 7
	if err := Run(ctx, s, o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	rctx, cancel := context.WithCancel(ctx)
	_, err := Restore(rctx, RestoreOptions{URL: url, Schema: schema, Source: "test", Path: path, BatchEvents: 5,
		Progress: func(done, total int64) {
			if done >= 10 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted restore: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("an interrupted restore created the destination")
	}
	info, err := Restore(ctx, RestoreOptions{URL: url, Schema: schema, Source: "test", Path: path, BatchEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	if info.Head != 40 || info.Events >= 40 || info.Keys != 10 || info.StoreID != s.ID() {
		t.Fatalf("resumed restore %+v", info)
	}
	r, err := local.Open(path, local.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.ID() != s.ID() {
		t.Fatal("store id not kept")
	}
	var want, got []format.Event
	for ev, err := range s.ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	for ev, err := range r.ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events restored, want %d", len(got), len(want))
	}
	for i := range want {
		a, _ := format.AppendRecord(nil, &want[i])
		b, _ := format.AppendRecord(nil, &got[i])
		if string(a) != string(b) || want[i].Position != got[i].Position {
			t.Fatalf("event %d differs", i+1)
		}
	}
	if rec, ok, err := r.LookupKey("key-8"); err != nil || !ok || rec.Last() != 9 {
		t.Fatalf("key-8: %+v %v %v", rec, ok, err)
	}

	if _, err := Restore(ctx, RestoreOptions{URL: url, Schema: schema, Source: "test", Path: path}); !errors.Is(err, ErrRestoreExists) {
		t.Fatalf("restore over a file: %v", err)
	}
	if _, err := Restore(ctx, RestoreOptions{URL: url, Schema: schema, Source: "nope", Path: path + "2"}); !errors.Is(err, ErrNoSource) {
		t.Fatalf("unknown source: %v", err)
	}
}
