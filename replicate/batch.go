package replicate

import (
	"github.com/evstore/evstore/format"
)

// batch collects consecutive events for one transaction.
type batch struct {
	events    []format.Event
	bytes     int
	maxEvents int
	maxBytes  int
}

func newBatch(maxEvents, maxBytes int) *batch {
	return &batch{maxEvents: maxEvents, maxBytes: maxBytes, events: make([]format.Event, 0, min(maxEvents, 4096))}
}

// eventSize approximates an event's share of a batch: what it costs in a
// frame or a COPY stream. The constant covers position, version, id, time
// and framing.
func eventSize(ev *format.Event) int {
	n := 64 + len(ev.Stream) + len(ev.Type) + len(ev.Data)
	for k, v := range ev.Metadata {
		n += 4 + len(k) + len(v)
	}
	return n
}

// add appends ev and reports whether the batch is now full. A single event
// larger than maxBytes still makes a batch of its own.
func (b *batch) add(ev format.Event) bool {
	b.events = append(b.events, ev)
	b.bytes += eventSize(&ev)
	return b.full()
}

func (b *batch) full() bool { return len(b.events) >= b.maxEvents || b.bytes >= b.maxBytes }
func (b *batch) len() int   { return len(b.events) }

// next is the position the next added event must have, given the position
// replicated before this batch.
func (b *batch) next(replicated uint64) uint64 { return replicated + uint64(len(b.events)) + 1 }

func (b *batch) reset() {
	clear(b.events) // drop payload references for the GC
	b.events, b.bytes = b.events[:0], 0
}
