package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/projection"
)

// lastPerStream is the projection the catch-up workload runs: one Put per
// event, the stream's latest payload under the stream's id.
type lastPerStream struct{}

func (lastPerStream) Name() string { return "bench-last-per-stream" }

func (lastPerStream) Apply(tx *projection.Tx, ev format.Event) error {
	return tx.Put([]byte(ev.Stream), ev.Data)
}

// perEvent is the worst case for the write path: one Put per event under
// a key no other event uses (its position), so nothing coalesces within a
// batch and the key space grows to a million keys.
type perEvent struct{}

func (perEvent) Name() string { return "bench-per-event" }

func (perEvent) Apply(tx *projection.Tx, ev format.Event) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], ev.Position)
	return tx.Put(k[:], ev.Data)
}

// projectionWorkload fills a log of a million events and times one
// projection catching up with all of it from position 1.
func projectionWorkload(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("projection")
	if err != nil {
		return nil, err
	}
	defer done()
	total := env.scaled(1_000_000, 100)
	if err := fillLog(ctx, store, total, min(1000, total)); err != nil {
		return nil, err
	}
	var rows []Result
	for _, p := range []struct {
		row  string
		proj projection.Projection
		note string
	}{
		{"projection", lastPerStream{}, fmt.Sprintf("one Put per event under its stream (%d streams of 100 consecutive events: a batch writes each key once)", (total+99)/100)},
		{"projection-unique", perEvent{}, "one Put per event under its position: every event a new key"},
	} {
		debug.FreeOSMemory()
		s := &sample{}
		start := time.Now()
		err = projection.Run(ctx, store, p.proj, projection.Options{Once: true})
		elapsed := time.Since(start)
		s.record(elapsed, total, 0, err)
		if err != nil {
			return nil, err
		}
		if pos, err := projection.Position(store, p.proj.Name()); err != nil || pos != uint64(total) {
			return nil, fmt.Errorf("projection ended at %d (%v), want %d", pos, err, total)
		}
		r := summarize(p.row, "", elapsed, s)
		r.Note = fmt.Sprintf("catch-up of %d events from position 1 in batches of %d, %s; target 500,000 events/s",
			total, projection.DefaultBatchEvents, p.note)
		rows = append(rows, r)
	}
	return rows, nil
}
