package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
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
		cpu0, start := cpuTime(), time.Now()
		err = projection.Run(ctx, store, p.proj, projection.Options{Once: true})
		elapsed, cpu := time.Since(start), cpuTime()-cpu0
		s.record(elapsed, total, 0, err)
		if err != nil {
			return nil, err
		}
		if pos, err := projection.Position(store, p.proj.Name()); err != nil || pos != uint64(total) {
			return nil, fmt.Errorf("projection ended at %d (%v), want %d", pos, err, total)
		}
		r := summarize(p.row, "", elapsed, s)
		cpuPer := float64(cpu.Nanoseconds()) / float64(total)
		r.Extra = map[string]float64{"cpu_ns_per_event": cpuPer, "cpu_seconds": cpu.Seconds()}
		r.Note = fmt.Sprintf("catch-up of %d events from position 1 in batches of %d, %s; CPU %.0f ns per event (user+system, all goroutines: %.2f CPU-s in %.2f s); target 500,000 events/s",
			total, projection.DefaultBatchEvents, p.note, cpuPer, cpu.Seconds(), elapsed.Seconds())
		rows = append(rows, r)
	}
	live, err := projectionLive(ctx, env, store)
	if err != nil {
		return nil, err
	}
	return append(rows, live), nil
}

// projectionLive measures the lag of a caught-up projection: one client
// appends an event, then waits until the projection has committed it. The
// latency columns are that lag, append included.
func projectionLive(ctx context.Context, env *workloadEnv, store *local.Store) (Result, error) {
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- projection.Run(pctx, store, lastPerStream{}, projection.Options{}) }()
	n := env.scaled(1000, 5)
	s := &sample{lat: make([]time.Duration, 0, n)}
	start := time.Now()
	for i := range n {
		t := time.Now()
		last, err := store.Append(ctx, []format.EventData{{Stream: "live-" + strconv.Itoa(i%10), Type: "Live", Data: payloadOf(i)}})
		if err != nil {
			return Result{}, err
		}
		for {
			pos, err := projection.Position(store, lastPerStream{}.Name())
			if err != nil {
				return Result{}, err
			}
			if pos >= last {
				break
			}
			select {
			case err := <-ran:
				return Result{}, fmt.Errorf("the projection stopped: %v", err)
			case <-time.After(20 * time.Microsecond):
			}
		}
		s.record(time.Since(t), 1, 0, nil)
	}
	r := summarize("projection-live", "", time.Since(start), s)
	r.Note = fmt.Sprintf("caught-up projection following %d single-event appends made one after another; latency = append until the projection's commit of it (polled every 20 µs)", n)
	stop()
	if err := <-ran; err != nil {
		return Result{}, err
	}
	return r, nil
}
