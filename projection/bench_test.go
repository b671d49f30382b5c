package projection_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/projection"
)

type putStream struct{}

func (putStream) Name() string { return "put-stream" }
func (putStream) Apply(tx *projection.Tx, ev format.Event) error {
	return tx.Put([]byte(ev.Stream), ev.Data)
}

type putPosition struct{}

func (putPosition) Name() string { return "put-position" }
func (putPosition) Apply(tx *projection.Tx, ev format.Event) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], ev.Position)
	return tx.Put(k[:], ev.Data)
}

// BenchmarkCatchUp times a projection catching up with 100,000 events from
// position 1 (no fsync), per event: the CPU cost of reading, filtering,
// applying and committing, without the disk.
func BenchmarkCatchUp(b *testing.B) {
	s, err := local.Open(filepath.Join(b.TempDir(), "bench.db"), local.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const total = 100_000
	evs := make([]format.EventData, 0, 2000)
	for i := 0; i < total; i += cap(evs) {
		evs = evs[:0]
		for j := range cap(evs) {
			n := i + j
			// Streams interleave: a batch writes each stream's key many times.
			evs = append(evs, format.EventData{Stream: fmt.Sprintf("s-%d", n%1000), Type: "T", Data: fmt.Appendf(nil, `{"amount":%d,"balance":%d}`, n%100, n)})
		}
		if _, err := s.Append(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range []projection.Projection{putStream{}, putPosition{}} {
		b.Run(p.Name(), func(b *testing.B) {
			var elapsed time.Duration
			for b.Loop() {
				start := time.Now()
				if err := projection.Rebuild(context.Background(), s, p, projection.Options{Once: true}); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*total), "ns/event")
			b.ReportMetric(float64(b.N*total)/elapsed.Seconds(), "events/s")
		})
	}
}
