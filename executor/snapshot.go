package executor

import (
	"container/list"
	"strings"
	"sync"
)

// Snapshotter is implemented by a [Command] whose folded state the executor
// may keep and fold further later, so that a command on a long stream folds
// only the events that are new since the last command with the same key.
//
// Apply must be deterministic (the same events in the same order give the
// same state), as retries already require. The result is then exactly the
// state a fold from zero would give: events are immutable, streams only grow,
// and a kept state always covers a consistent prefix of every read stream
// (everything up to one moment of the log), so the events folded afterwards
// all follow it in position order.
type Snapshotter[S any] interface {
	// SnapshotKey names the fold. Commands that return the same key and
	// read the same streams (in the same order) must fold any events into
	// the same state; commands whose Apply depends on their own fields must
	// put those fields in the key. Keys are shared by all commands run by
	// one Executor, so prefix them with the command's name.
	SnapshotKey() string
	// CloneState returns a copy of s that shares nothing Apply or Handle
	// may modify. For a state without maps, slices or pointers, that is s.
	CloneState(s S) S
}

// stateCache keeps the last folded state per snapshot key, least recently
// used out first. A kept state is never modified: readers clone it.
type stateCache struct {
	mu    sync.Mutex
	limit int // entries; <= 0 disables
	lru   *list.List
	byKey map[string]*list.Element
}

type stateEntry struct {
	key      string
	state    any
	versions []uint64 // per read stream, what state covers
}

func newStateCache(limit int) *stateCache {
	return &stateCache{limit: limit, lru: list.New(), byKey: make(map[string]*list.Element)}
}

func snapshotKey(name string, streams []string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, st := range streams {
		b.WriteByte(0) // stream ids contain no control characters
		b.WriteString(st)
	}
	return b.String()
}

// get returns the kept state for key if it covers no more than versions of
// each stream; otherwise it is from a later read than this one and useless
// to it.
func (c *stateCache) get(key string, versions []uint64) (any, []uint64, bool) {
	if c.limit <= 0 {
		return nil, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*stateEntry)
	for i, v := range e.versions {
		if v > versions[i] {
			return nil, nil, false
		}
	}
	c.lru.MoveToFront(el)
	return e.state, e.versions, true
}

// put keeps state as covering versions, unless what is kept covers more.
// put owns state and versions from now on.
func (c *stateCache) put(key string, state any, versions []uint64) {
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*stateEntry)
		newer := false
		for i, v := range versions {
			if v < e.versions[i] {
				return // a concurrent command folded further; keep that
			}
			newer = newer || v > e.versions[i]
		}
		if newer {
			e.state, e.versions = state, versions
		}
		c.lru.MoveToFront(el)
		return
	}
	c.byKey[key] = c.lru.PushFront(&stateEntry{key: key, state: state, versions: versions})
	for c.lru.Len() > c.limit {
		e := c.lru.Remove(c.lru.Back()).(*stateEntry)
		delete(c.byKey, e.key)
	}
}
