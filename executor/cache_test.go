package executor

import (
	"strings"
	"testing"

	"github.com/evstore/evstore/format"
)

func cacheEvents(stream string, from, n int, data string) []format.Event {
	out := make([]format.Event, n)
	for i := range out {
		out[i] = format.Event{Stream: stream, Version: uint64(from + i), Position: uint64(from + i), Type: "T", Data: []byte(data)}
	}
	return out
}

func TestStreamCacheBoundedByBytes(t *testing.T) {
	one := eventBytes(cacheEvents("a", 1, 1, strings.Repeat("x", 100)))
	c := newStreamCache(1000, 5*one)
	c.add("a", nil, cacheEvents("a", 1, 3, strings.Repeat("x", 100)))
	c.add("b", nil, cacheEvents("b", 1, 3, strings.Repeat("x", 100)))
	if got := len(c.get("a")); got != 0 {
		t.Fatalf("a has %d events cached; the byte bound should have evicted it", got)
	}
	if got := len(c.get("b")); got != 3 {
		t.Fatalf("b has %d events cached, want 3", got)
	}
	if c.bytes > 5*one || c.bytes != 3*one {
		t.Fatalf("accounted %d bytes, want %d", c.bytes, 3*one)
	}
	// A stream larger than the whole bound is not cached at all, but the
	// caller still gets its events.
	if got := c.add("huge", nil, cacheEvents("huge", 1, 6, strings.Repeat("x", 100))); len(got) != 6 || len(c.get("huge")) != 0 {
		t.Fatalf("huge: returned %d, cached %d", len(got), len(c.get("huge")))
	}
}

func TestStreamCacheCopiesCommittedEvents(t *testing.T) {
	c := newStreamCache(1000, 1<<20)
	c.add("a", nil, cacheEvents("a", 1, 1, "first"))
	committed := cacheEvents("a", 2, 1, "second")
	committed[0].Metadata = map[string]string{"k": "v"}
	c.extend(committed)
	// The command (or the caller of Execute) reuses its buffers.
	copy(committed[0].Data, "XXXXXX")
	committed[0].Metadata["k"] = "changed"
	got := c.get("a")
	if len(got) != 2 || string(got[1].Data) != "second" || got[1].Metadata["k"] != "v" {
		t.Fatalf("cache shares the committed event's memory: %+v", got)
	}
}
