package local

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/evstore/evstore/format"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Key spaces are named key/value maps in the log's file, next to the log,
// written through the group-commit writer. They exist so that a read model
// (package projection) can commit its state and its checkpoint in the same
// transaction as other writers' events: one fsync, the same durability
// rules, and a crash leaves either all of an update or none of it.

// bucketSpaces holds one nested bucket per key space. It is created by the
// first update of a space, so files that never use one are unchanged.
var bucketSpaces = []byte("spaces")

// Limits of key spaces.
const (
	// MaxSpaceNameBytes is the longest key-space name.
	MaxSpaceNameBytes = 255
	// MaxSpaceKeyBytes is the longest key in a key space (bbolt's limit).
	MaxSpaceKeyBytes = bolt.MaxKeySize
	// MaxSpaceValueBytes is the largest value in a key space.
	MaxSpaceValueBytes = 64 << 20
)

// ErrReadOnlySpace is returned by a write to a [SpaceTx] outside an update:
// in [Store.ViewSpace] or after the update's function returned.
var ErrReadOnlySpace = errors.New("key space is read-only here")

// PanicError is what [Store.UpdateSpace] returns when its function panics:
// the panic is contained to that request, whose writes are undone.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// SpaceTx is one key space as seen by one transaction. It is valid only
// inside the function it was passed to; slices returned by Get are valid
// only there too and must not be modified.
//
// In an update, writes collect in memory (later writes to a key replace
// earlier ones) and reach bbolt only when the function returns nil: a
// failed update never touched the file, a savepoint costs nothing, and a
// key written many times is written to bbolt once.
type SpaceTx struct {
	b        *bolt.Bucket // nil in a view of a space that does not exist
	writable bool
	pending  map[string]int // key -> index in writes
	writes   []spaceWrite
	undo     []spaceUndo // for Rollback
	arena    []byte      // copies of keys and values; bbolt keeps them until commit
	inBolt   bool        // a panic now came from bbolt, not from the caller's code
}

type spaceWrite struct {
	key, value []byte
	deleted    bool
}

// spaceUndo restores writes[idx] to prev, or removes it if it was new.
type spaceUndo struct {
	idx  int
	prev spaceWrite
	new  bool
}

// Savepoint marks a point in an update that [SpaceTx.Rollback] returns to.
type Savepoint int

// Get returns the value stored under key, nil if there is none.
func (t *SpaceTx) Get(key []byte) []byte {
	if len(key) == 0 {
		return nil
	}
	if i, ok := t.pending[string(key)]; ok {
		w := t.writes[i]
		if w.deleted {
			return nil
		}
		if w.value == nil {
			return []byte{}
		}
		return w.value
	}
	if t.b == nil {
		return nil
	}
	t.inBolt = true
	v := t.b.Get(key)
	t.inBolt = false
	return v
}

// Put stores value under key. Key and value are copied.
func (t *SpaceTx) Put(key, value []byte) error {
	if err := t.writeCheck(key); err != nil {
		return err
	}
	if len(value) > MaxSpaceValueBytes {
		return &format.InvalidError{Field: "value", Reason: fmt.Sprintf("is %d bytes, the limit is %d", len(value), MaxSpaceValueBytes)}
	}
	t.write(key, value, false)
	return nil
}

// Delete removes key; a missing key is not an error.
func (t *SpaceTx) Delete(key []byte) error {
	if err := t.writeCheck(key); err != nil {
		return err
	}
	t.write(key, nil, true)
	return nil
}

func (t *SpaceTx) write(key, value []byte, deleted bool) {
	w := spaceWrite{deleted: deleted}
	if !deleted {
		w.value = t.keep(value)
	}
	if i, ok := t.pending[string(key)]; ok {
		w.key = t.writes[i].key
		t.undo = append(t.undo, spaceUndo{idx: i, prev: t.writes[i]})
		t.writes[i] = w
		return
	}
	w.key = t.keep(key)
	if t.pending == nil {
		t.pending = make(map[string]int, 64)
	}
	t.pending[string(w.key)] = len(t.writes)
	t.undo = append(t.undo, spaceUndo{idx: len(t.writes), new: true})
	t.writes = append(t.writes, w)
}

// Savepoint returns the current point of the update.
func (t *SpaceTx) Savepoint() Savepoint { return Savepoint(len(t.undo)) }

// Rollback undoes every write made since sp.
func (t *SpaceTx) Rollback(sp Savepoint) error {
	if !t.writable {
		return ErrReadOnlySpace
	}
	for i := len(t.undo) - 1; i >= int(sp) && i >= 0; i-- {
		u := t.undo[i]
		if u.new {
			// New keys are appended in order, so undoing in reverse
			// always removes the last one.
			delete(t.pending, string(t.writes[u.idx].key))
			t.writes = t.writes[:u.idx]
		} else {
			t.writes[u.idx] = u.prev
		}
	}
	t.undo = t.undo[:min(max(int(sp), 0), len(t.undo))]
	return nil
}

// flush writes what the update collected into bbolt.
func (t *SpaceTx) flush() error {
	for _, w := range t.writes {
		var err error
		if w.deleted {
			err = t.b.Delete(w.key)
		} else {
			v := w.value
			if v == nil {
				v = []byte{}
			}
			err = t.b.Put(w.key, v)
		}
		if err != nil {
			return fmt.Errorf("write key space: %w", err)
		}
	}
	return nil
}

func (t *SpaceTx) writeCheck(key []byte) error {
	switch {
	case !t.writable:
		return ErrReadOnlySpace
	case len(key) == 0:
		return &format.InvalidError{Field: "key", Reason: "must not be empty"}
	case len(key) > MaxSpaceKeyBytes:
		return &format.InvalidError{Field: "key", Reason: fmt.Sprintf("is %d bytes, the limit is %d", len(key), MaxSpaceKeyBytes)}
	}
	return nil
}

// keep copies b into the arena. Sub-slices stay valid when append moves
// the arena: the old array is kept alive by them and never written again.
func (t *SpaceTx) keep(b []byte) []byte {
	start := len(t.arena)
	t.arena = append(t.arena, b...)
	return t.arena[start:len(t.arena):len(t.arena)]
}

// spaceOp is an UpdateSpace or DropSpace request for the writer.
type spaceOp struct {
	name string
	fn   func(*SpaceTx) error // nil: drop the space
}

// ValidateSpaceName reports whether name can name a key space: 1 to 255
// bytes of valid UTF-8.
func ValidateSpaceName(name string) error {
	switch {
	case name == "":
		return &format.InvalidError{Field: "key space", Reason: "name must not be empty"}
	case len(name) > MaxSpaceNameBytes:
		return &format.InvalidError{Field: "key space", Value: strings.ToValidUTF8(name[:32], "") + "…", Reason: fmt.Sprintf("name is %d bytes, the limit is %d", len(name), MaxSpaceNameBytes)}
	case !utf8.ValidString(name):
		return &format.InvalidError{Field: "key space", Reason: "name is not valid UTF-8"}
	}
	return nil
}

// UpdateSpace runs fn on the key space name (created if missing) inside
// the writer's next group commit, and returns once that commit is durable
// (or, with Options.NoSync, committed). What fn writes commits atomically
// with the rest of the group, or not at all.
//
// If fn returns an error or panics, every write it made is undone, the
// request alone fails with that error (a panic as a [*PanicError]) and the
// rest of the group commits. fn runs on the writer goroutine, which every
// append waits on: it must be quick and must not call the store's write
// methods (that would deadlock). A context cancelled before the writer
// picks the request up means fn never runs.
func (s *Store) UpdateSpace(ctx context.Context, name string, fn func(*SpaceTx) error) error {
	if err := ValidateSpaceName(name); err != nil {
		return err
	}
	if fn == nil {
		return errors.New("update key space: nil function")
	}
	return s.submitSpace(ctx, &spaceOp{name: name, fn: fn})
}

// DropSpace deletes the key space name and everything in it, through the
// writer. A missing space is not an error.
func (s *Store) DropSpace(ctx context.Context, name string) error {
	if err := ValidateSpaceName(name); err != nil {
		return err
	}
	return s.submitSpace(ctx, &spaceOp{name: name})
}

func (s *Store) submitSpace(ctx context.Context, op *spaceOp) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, space: op, done: make(chan struct{})}
	if err := s.submit(ctx, r); err != nil {
		return err
	}
	<-r.done
	return r.err
}

// applySpace runs a key-space request inside the group's transaction. A
// returned error is a bbolt failure and fails the group; the caller's own
// failure is recorded in r.err after its writes are undone.
func (g *groupTx) applySpace(r *request) error {
	op := r.space
	tx := g.log.Tx()
	root, err := tx.CreateBucketIfNotExists(bucketSpaces)
	if err != nil {
		return fmt.Errorf("create the key spaces bucket: %w", err)
	}
	if op.fn == nil {
		if err := root.DeleteBucket([]byte(op.name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("drop key space %s: %w", op.name, err)
		}
		return nil
	}
	existed := root.Bucket([]byte(op.name)) != nil
	b, err := root.CreateBucketIfNotExists([]byte(op.name))
	if err != nil {
		return fmt.Errorf("create key space %s: %w", op.name, err)
	}
	t := &SpaceTx{b: b, writable: true}
	if buf, ok := spaceBufs.Get().(*spaceBuf); ok {
		t.pending, t.writes, t.undo = buf.pending, buf.writes, buf.undo
	}
	defer t.release()
	ferr := t.run(op.fn)
	t.writable = false
	if ferr == nil {
		t.inBolt = true // a panic in flush is bbolt's
		err = t.flush()
		t.inBolt = false
		if err != nil {
			return err
		}
	} else {
		if !existed {
			if err := root.DeleteBucket([]byte(op.name)); err != nil {
				return fmt.Errorf("remove key space %s again: %w", op.name, err)
			}
		}
		r.err = ferr
	}
	return nil
}

// spaceBuf is what an update's bookkeeping can hand to the next one: a
// map that grew to a batch's size costs as much to grow again as the
// batch's writes themselves. The arena is not reused: bbolt holds on to
// its bytes until the group commits.
type spaceBuf struct {
	pending map[string]int
	writes  []spaceWrite
	undo    []spaceUndo
}

var spaceBufs sync.Pool

// maxKeptWrites bounds what a pooled buffer keeps, so one huge update does
// not pin its size for good.
const maxKeptWrites = 1 << 16

func (t *SpaceTx) release() {
	if t.pending != nil && len(t.writes) <= maxKeptWrites {
		clear(t.pending)
		clear(t.writes) // drop references into the arena
		spaceBufs.Put(&spaceBuf{pending: t.pending, writes: t.writes[:0], undo: t.undo[:0]})
	}
	t.b, t.writable, t.pending, t.writes, t.undo, t.arena = nil, false, nil, nil, nil, nil
}

// run calls fn, turning a panic in the caller's code into an error. A panic
// inside bbolt goes on up: the transaction may be half-changed, so the
// group must fail (recoverCorrupt reports it).
func (t *SpaceTx) run(fn func(*SpaceTx) error) error {
	return t.Protect(func() error { return fn(t) })
}

// Protect calls fn inside an update and turns a panic in it into a
// [*PanicError], so a caller that runs other code per item (a projection's
// Apply per event) can stop at the item that failed. A panic inside bbolt
// itself is not caught.
func (t *SpaceTx) Protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if t.inBolt {
				panic(p)
			}
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// ViewSpace runs fn on the key space name in a read transaction. A missing
// space reads as empty. Writes fail with [ErrReadOnlySpace].
func (s *Store) ViewSpace(name string, fn func(*SpaceTx) error) error {
	if err := ValidateSpaceName(name); err != nil {
		return err
	}
	return s.view(func(tx *bolt.Tx) error {
		t := &SpaceTx{}
		if root := tx.Bucket(bucketSpaces); root != nil {
			t.b = root.Bucket([]byte(name))
		}
		defer func() { t.b = nil }()
		return fn(t)
	})
}

// Spaces returns the names of the key spaces that start with prefix, in
// byte order.
func (s *Store) Spaces(prefix string) ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSpaces)
		if root == nil {
			return nil
		}
		c := root.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	return slices.Clip(out), err
}
