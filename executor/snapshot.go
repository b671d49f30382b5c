package executor

import (
	"container/list"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// Snapshotter is implemented by a [Command] whose folded state the executor
// may keep and fold further later, so that a command on a long stream folds
// (and reads) only the events that are new since the last command with the
// same key.
//
// Apply must be deterministic (the same events in the same order give the
// same state), as retries already require. The result is then exactly the
// state a fold from zero would give: events are immutable, streams only grow,
// and a kept state always covers a consistent prefix of every read stream
// (everything up to one moment of the log), so the events folded afterwards
// all follow it in position order.
//
// States are kept per command type, SnapshotKey and read set (the streams,
// in order). A command whose read set changes from call to call (a new
// basket stream each time, next to long stock streams) reuses nothing
// through it: make it a [StreamSnapshotter].
//
// The type is part of the key, so a type that embeds a Snapshotter and so
// promotes its SnapshotKey never shares states with the embedded type. The
// methods must be on the value the command is passed as: a type with
// SnapshotKey on its pointer, passed by value, is refused
// ([ErrPointerSnapshotter]) rather than silently folded from zero.
type Snapshotter[S any] interface {
	// SnapshotKey names the fold. Commands of one type that return the
	// same key and read the same streams (in the same order) must fold any
	// events into the same state; commands whose Apply depends on their
	// own fields must put those fields in the key.
	SnapshotKey() string
	// CloneState returns a copy of s that shares nothing Apply or Handle
	// may modify. For a state without maps, slices or pointers, that is s.
	CloneState(s S) S
}

// StreamSnapshotter is a [Snapshotter] whose fold keeps streams apart: the
// events of one stream change only that stream's part of the state, and
// what Apply does with them does not depend on other streams' events. The
// executor then keeps one state per stream (and type and SnapshotKey),
// folded from that stream's events alone, and builds the command's state by
// merging the parts in read-set order into a zero state. A command that
// reads a long stream and fresh ones (a new basket and the stock of its
// items) reads and folds only what is new in each, however its read sets
// combine.
type StreamSnapshotter[S any] interface {
	Snapshotter[S]
	// MergeState copies into dst the part of part that stream's events
	// built (part was folded from that stream alone). It may take part's
	// maps and slices: part is a copy made for this call.
	MergeState(dst *S, part S, stream string)
}

// ErrPointerSnapshotter is returned for a command passed by value whose
// type has Snapshotter's methods on its pointer only.
var ErrPointerSnapshotter = errors.New("Snapshotter methods on the pointer, command passed by value")

// PointerSnapshotterError names the type. It unwraps to
// [ErrPointerSnapshotter].
type PointerSnapshotterError struct{ Type string }

func (e *PointerSnapshotterError) Error() string {
	return fmt.Sprintf("command %s: %v: pass a *%s, or declare SnapshotKey and CloneState on the value", e.Type, ErrPointerSnapshotter, e.Type)
}

// Unwrap makes errors.Is(err, ErrPointerSnapshotter) hold.
func (e *PointerSnapshotterError) Unwrap() error { return ErrPointerSnapshotter }

// snapMode is how an execution keeps states.
type snapMode int

const (
	snapNone      snapMode = iota // fold from zero
	snapWhole                     // one state per read set
	snapPerStream                 // one state per stream
)

// checkSnapshotter refuses a command type with SnapshotKey on its pointer
// only; the answer is cached per type (ex.pointerOnly).
func (ex *Executor) checkSnapshotter(t reflect.Type) error {
	if t == nil || t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return nil
	}
	v, ok := ex.pointerOnly.Load(t)
	if !ok {
		_, onValue := t.MethodByName("SnapshotKey")
		_, onPointer := reflect.PointerTo(t).MethodByName("SnapshotKey")
		v, _ = ex.pointerOnly.LoadOrStore(t, onPointer && !onValue)
	}
	if v.(bool) {
		return &PointerSnapshotterError{Type: t.String()}
	}
	return nil
}

// stateCache keeps the last folded state per snapshot key, least recently
// used out first. A kept state is never modified: readers clone it.
type stateCache struct {
	mu    sync.Mutex
	limit int // entries; <= 0 disables
	lru   *list.List
	byKey map[stateKey]*list.Element
}

// stateKey names a kept state: the command's type, its SnapshotKey and
// the streams the state was folded from.
type stateKey struct {
	typ     reflect.Type
	name    string
	streams string
}

type stateEntry struct {
	key      stateKey
	state    any
	versions []uint64 // per read stream, what state covers
}

func newStateCache(limit int) *stateCache {
	return &stateCache{limit: limit, lru: list.New(), byKey: make(map[stateKey]*list.Element)}
}

func snapshotKey(typ reflect.Type, name string, streams []string) stateKey {
	return stateKey{typ: typ, name: name, streams: strings.Join(streams, "\x00")} // stream ids contain no control characters
}

// get returns the kept state for key and the versions it covers. Kept
// states cover committed prefixes only, so a read that starts after get
// reaches at least those versions.
func (c *stateCache) get(key stateKey) (any, []uint64, bool) {
	if c.limit <= 0 {
		return nil, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil, nil, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*stateEntry)
	return e.state, e.versions, true
}

// put keeps state as covering versions, unless what is kept covers more.
// put owns state and versions from now on.
func (c *stateCache) put(key stateKey, state any, versions []uint64) {
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
