package executor

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/seedcmd"
	"github.com/evstore/evstore/local"
)

// The benchmarks run with NoSync: they measure the executor's CPU cost per
// command. Durable figures come from `evstore bench`.

func benchStore(b *testing.B) *local.Store {
	b.Helper()
	s, err := local.Open(filepath.Join(b.TempDir(), "bench.db"), local.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// prefill gives each stream n events.
func prefill(b *testing.B, s *local.Store, streams []string, n int) {
	b.Helper()
	var batch []format.EventData
	for range n {
		for _, st := range streams {
			batch = append(batch, format.EventData{Stream: st, Type: "Bumped", Data: []byte(`{}`)})
		}
	}
	for len(batch) > 0 {
		k := min(len(batch), 10_000)
		if _, err := s.Append(context.Background(), batch[:k]); err != nil {
			b.Fatal(err)
		}
		batch = batch[k:]
	}
}

// BenchmarkExecuteOneStream is seed-single's command at several stream
// lengths: a cost that grows with the length is the fold.
func BenchmarkExecuteOneStream(b *testing.B) {
	for _, snap := range []bool{false, true} {
		for _, n := range []int{0, 1000, 10_000} {
			b.Run(fmt.Sprintf("snapshot=%v/len=%d", snap, n), func(b *testing.B) {
				s := benchStore(b)
				var cmd Command[seedcmd.State] = seedcmd.Cmd{"one"}
				if snap {
					cmd = seedcmd.Kept{Cmd: seedcmd.Cmd{"one"}}
				}
				prefill(b, s, cmd.Streams(), n)
				ex := New(s, Options{})
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Execute(ctx, ex, cmd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkExecuteTwoStreams is seed-multi's command: it reads and writes
// the same two streams.
func BenchmarkExecuteTwoStreams(b *testing.B) {
	s := benchStore(b)
	cmd := seedcmd.Cmd{"a", "b"}
	ex := New(s, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Execute(ctx, ex, Command[seedcmd.State](cmd)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecuteParallel is deposit's shape: many clients, each command
// on one of 10,000 streams.
func BenchmarkExecuteParallel(b *testing.B) {
	s := benchStore(b)
	ex := New(s, Options{})
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cmd := seedcmd.Cmd{"acct-" + strconv.Itoa(int(n.Add(7919)%10_000))}
			if _, err := Execute(ctx, ex, Command[seedcmd.State](cmd)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFold is the k-way merge over two cached streams of 1,000 events.
func BenchmarkFold(b *testing.B) {
	rs := &readSet{streams: []string{"a", "b"}, events: make([][]format.Event, 2)}
	for i := range 2000 {
		rs.events[i%2] = append(rs.events[i%2], format.Event{Position: uint64(i + 1), Version: uint64(i/2 + 1)})
	}
	var sum uint64
	b.ReportAllocs()
	for b.Loop() {
		rs.foldCommitted(func(e format.Event) error { sum += e.Version; return nil })
	}
}
