package executor

import (
	"bytes"
	"container/list"
	"maps"
	"sync"

	"github.com/evstore/evstore/format"
)

// streamCache keeps the decoded events of recently used streams so a command
// reads only what is past them. A stream's events are a prefix that only
// grows (events are immutable once committed), so a cached slice is never
// wrong, only short.
//
// Slices handed out are capped at their length; the cache may append in
// place past a reader's length, which the reader never looks at.
type streamCache struct {
	mu        sync.Mutex
	limit     int // total events; <= 0 disables
	byteLimit int // total approximate bytes
	total     int
	bytes     int
	lru       *list.List // of *cacheEntry, most recent at the front
	byKey     map[string]*list.Element
}

type cacheEntry struct {
	stream string
	events []format.Event
	bytes  int
}

func newStreamCache(limit, byteLimit int) *streamCache {
	return &streamCache{limit: limit, byteLimit: byteLimit, lru: list.New(), byKey: make(map[string]*list.Element)}
}

// eventOverhead approximates what a cached event costs beyond its
// variable-length fields: the Event struct, string and map headers.
const eventOverhead = 160

func eventBytes(evs []format.Event) int {
	n := 0
	for i := range evs {
		ev := &evs[i]
		n += eventOverhead + len(ev.Stream) + len(ev.Type) + len(ev.ID) + len(ev.Data)
		for k, v := range ev.Metadata {
			n += len(k) + len(v) + 32
		}
	}
	return n
}

// off reports a cache that either bound disables (Options: negative
// disables).
func (c *streamCache) off() bool { return c.limit <= 0 || c.byteLimit <= 0 }

func (c *streamCache) get(stream string) []format.Event {
	if c.off() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[stream]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	evs := el.Value.(*cacheEntry).events
	return evs[:len(evs):len(evs)]
}

// add returns have+more as one slice and caches it if it extends what is
// cached. have must be the stream's events from version 1, more the ones
// that follow.
func (c *streamCache) add(stream string, have, more []format.Event) []format.Event {
	if c.off() || len(have)+len(more) > c.limit || eventBytes(more) > c.byteLimit {
		return append(have[:len(have):len(have)], more...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[stream]
	if !ok {
		el = c.lru.PushFront(&cacheEntry{stream: stream})
		c.byKey[stream] = el
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	old, want := len(e.events), len(have)+len(more)
	switch {
	case old >= want:
		// Someone cached further meanwhile; ours is a prefix of theirs.
		return e.events[:want:want]
	case old == len(have):
		// The usual case: extend in place, amortised.
		e.events = append(e.events, more...)
	default:
		e.events = append(have[:len(have):len(have)], more...)
	}
	added := eventBytes(e.events[old:])
	c.total += len(e.events) - old
	c.bytes += added
	e.bytes += added
	c.evict(el)
	return e.events[:want:want]
}

// extend appends events a command just committed, so the next command on
// the same streams reads nothing. Events are in position order and each
// stream's are consecutive versions. Their Data and Metadata are copied:
// they are the command's own slices and the caller's Result, which either
// may reuse or change.
func (c *streamCache) extend(events []format.Event) {
	if c.off() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range events {
		el, ok := c.byKey[ev.Stream]
		if !ok {
			continue
		}
		e := el.Value.(*cacheEntry)
		if uint64(len(e.events))+1 != ev.Version {
			continue // the cache is behind; a later read fills the gap
		}
		ev.Data = bytes.Clone(ev.Data)
		ev.Metadata = maps.Clone(ev.Metadata)
		e.events = append(e.events, ev)
		size := eventBytes(e.events[len(e.events)-1:])
		c.total++
		c.bytes += size
		e.bytes += size
		c.evict(el)
	}
}

// evict drops least recently used streams until the cache fits, never keep.
func (c *streamCache) evict(keep *list.Element) {
	for c.total > c.limit || c.bytes > c.byteLimit {
		el := c.lru.Back()
		if el == nil || el == keep {
			return
		}
		e := c.lru.Remove(el).(*cacheEntry)
		delete(c.byKey, e.stream)
		c.total -= len(e.events)
		c.bytes -= e.bytes
	}
}
