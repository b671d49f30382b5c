package local

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/evstore/evstore/format"
)

// The benchmarks run with NoSync: they measure the CPU cost of the write
// and read paths. Durable throughput is dominated by fsync and is measured
// by `evstore bench` (see docs/benchmarks.md).

func benchPayload(i int) []byte {
	return fmt.Appendf(nil, `{"amount":%d,"balance":%d}`, i%1000+1, i)
}

// BenchmarkAppend is one single-event request at a time: the cost of a
// whole group commit with nothing to share it with.
func BenchmarkAppend(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if _, err := s.Append(ctx, []format.EventData{{Stream: "s-" + strconv.Itoa(i%1000), Type: "Deposited", Data: benchPayload(i)}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel has many writers, as under load: requests share
// group commits, so this is the writer's per-request cost.
func BenchmarkAppendParallel(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			st := "s-" + strconv.Itoa(i%10000)
			if _, err := s.Write(ctx, Request{
				Events: []format.EventData{{Stream: st, Type: "Deposited", Data: benchPayload(i)}},
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendBatch is seed-batch's request: 200 events to a new stream.
func BenchmarkAppendBatch(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	ctx := context.Background()
	events := make([]format.EventData, 200)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		st := "batch-" + strconv.Itoa(i)
		for j := range events {
			events[j] = format.EventData{Stream: st, Type: "Seeded", Data: benchPayload(j)}
		}
		if _, err := s.Append(ctx, events, Expect{Stream: st}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}

// fill writes n events: one stream "read" of streamLen events spread
// through the log, the rest to other streams.
func fill(b *testing.B, s *Store, n, streamLen int) {
	b.Helper()
	every := n / streamLen
	batch := make([]format.EventData, 0, 1000)
	for i := range n {
		st := "other-" + strconv.Itoa(i%5000)
		if i%every == 0 {
			st = "read"
		}
		batch = append(batch, format.EventData{Stream: st, Type: "Filled", Data: benchPayload(i)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkReadStream reads a 1,000-event stream whose events are spread
// over a 100,000-event log.
func BenchmarkReadStream(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	fill(b, s, 100_000, 1000)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range s.ReadStream("read", 1) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("read %d events", n)
		}
	}
}

// BenchmarkReadStreams is the executor's read of one stream that has
// nothing new: a version lookup in one transaction.
func BenchmarkReadStreams(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	fill(b, s, 10_000, 100)
	streams, after := []string{"read"}, []uint64{100}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ReadStreams(streams, after); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAll scans a 100,000-event log; see events/s.
func BenchmarkReadAll(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	const n = 100_000
	fill(b, s, n, 1000)
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		for _, err := range s.ReadAll(1) {
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != n {
			b.Fatalf("read %d events", got)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}
