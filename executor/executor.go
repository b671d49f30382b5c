package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/backoff"
	"github.com/evstore/evstore/local"
)

// Command is an event-sourcing command over state S.
type Command[S any] interface {
	// Streams are the streams the command reads; the only ones it may write.
	Streams() []string
	// Apply folds one event into the state.
	Apply(state *S, ev format.Event)
	// Handle decides which events to append. An error is returned to the
	// caller unchanged and nothing is written, except [ReadAlso].
	Handle(ctx context.Context, state S) ([]format.EventData, error)
}

// Options configure an [Executor].
type Options struct {
	// Every field follows one rule: zero takes the default, negative
	// disables.

	// MaxRetries is how many times a command is retried after a version
	// conflict before Execute gives up. Default 10; negative means none.
	MaxRetries int
	// BaseBackoff is the first retry's maximum wait; each retry doubles it
	// up to MaxBackoff, and the wait is drawn uniformly below that (full
	// jitter), so colliding commands spread out. Defaults 500µs and 50ms;
	// negative means retry at once.
	BaseBackoff, MaxBackoff time.Duration
	// CacheEvents bounds the decoded events kept per executor so commands
	// read only what is new in their streams. More memory, fewer reads.
	// Default 262144 events; negative disables the cache.
	CacheEvents int
	// CacheBytes bounds the same cache by the approximate memory its
	// events take (payloads, names, metadata and per-event overhead), so a
	// few large events cannot hold the process's memory. Default 32 MiB;
	// negative disables the cache.
	CacheBytes int
	// CacheStates bounds the folded states kept for commands that
	// implement [Snapshotter], one per snapshot key and read set. Default
	// 16384; negative disables it.
	CacheStates int
}

// Defaults for zero [Options] fields.
const (
	DefaultMaxRetries  = 10
	DefaultBaseBackoff = 500 * time.Microsecond
	DefaultMaxBackoff  = 50 * time.Millisecond
	DefaultCacheEvents = 1 << 18
	DefaultCacheBytes  = 32 << 20
	DefaultCacheStates = 16384
	// MaxDiscoveryRounds bounds how often Handle may ask to read more
	// streams with ReadAlso in one execution.
	MaxDiscoveryRounds = 16
)

// Executor runs commands against one store. It is safe for concurrent use.
type Executor struct {
	store  *local.Store
	opts   Options
	cache  *streamCache
	states *stateCache
}

// New returns an executor over store.
func New(store *local.Store, opts Options) *Executor {
	opts = opts.withDefaults()
	return &Executor{store: store, opts: opts, cache: newStreamCache(opts.CacheEvents, opts.CacheBytes), states: newStateCache(opts.CacheStates)}
}

// withDefaults applies the one rule of every Options field: zero takes the
// default, negative disables (no retries, no wait, no cache).
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
		*v = max(*v, 0)
	}
	def(&o.MaxRetries, DefaultMaxRetries)
	o.MaxRetries = max(o.MaxRetries, 0)
	defDur(&o.BaseBackoff, DefaultBaseBackoff)
	defDur(&o.MaxBackoff, DefaultMaxBackoff)
	def(&o.CacheEvents, DefaultCacheEvents)
	def(&o.CacheBytes, DefaultCacheBytes)
	def(&o.CacheStates, DefaultCacheStates)
	if o.CacheBytes < 0 {
		o.CacheEvents = -1 // either bound disabled disables the cache
	}
	return o
}

// Store is the store the executor writes to.
func (ex *Executor) Store() *local.Store { return ex.store }

// Result is the outcome of [Execute].
type Result struct {
	Position uint64         // last appended position, 0 if none
	Events   []format.Event // what was appended
	Retries  int            // conflicts before the commit succeeded
	// Duplicate is set when the Idempotent key had been used before:
	// nothing was appended and the other fields are the first Result's.
	Duplicate bool
}

// ExecOption changes one execution.
type ExecOption func(*execConfig)

type execConfig struct {
	key      string
	metadata map[string]string
}

// Idempotent makes the execution idempotent under key: running a command
// with the same key again returns the first Result and appends nothing, also
// after a restart.
func Idempotent(key string) ExecOption { return func(c *execConfig) { c.key = key } }

// WithMetadata merges md into the metadata of every appended event. Keys the
// command set itself win.
func WithMetadata(md map[string]string) ExecOption {
	return func(c *execConfig) {
		if c.metadata == nil {
			c.metadata = make(map[string]string, len(md))
		}
		maps.Copy(c.metadata, md)
	}
}

var (
	// ErrUndeclaredStream is returned when Handle emits an event for a
	// stream the command did not read.
	ErrUndeclaredStream = errors.New("event for a stream the command did not read")
	// ErrDiscoveryLimit is returned when Handle keeps asking for more
	// streams with ReadAlso.
	ErrDiscoveryLimit = errors.New("too many ReadAlso rounds")
)

// UndeclaredStreamError names the stream. It unwraps to [ErrUndeclaredStream].
type UndeclaredStreamError struct{ Stream string }

func (e *UndeclaredStreamError) Error() string {
	return fmt.Sprintf("stream %q: %v; add it to Streams() or return ReadAlso(%q) from Handle", e.Stream, ErrUndeclaredStream, e.Stream)
}

// Unwrap makes errors.Is(err, ErrUndeclaredStream) hold.
func (e *UndeclaredStreamError) Unwrap() error { return ErrUndeclaredStream }

// ReadAlsoError is what [ReadAlso] returns.
type ReadAlsoError struct{ Streams []string }

func (e *ReadAlsoError) Error() string {
	return fmt.Sprintf("read also %v (returned by Handle outside Execute?)", e.Streams)
}

// ReadAlso, returned by Handle, asks Execute to add streams to the read set
// (and so to the conflict checks), fold again and call Handle again. It
// serves commands that learn from one stream which others they need.
func ReadAlso(streams ...string) error { return &ReadAlsoError{Streams: streams} }

// Execute runs cmd: read, fold, decide, commit, retrying on conflict.
func Execute[S any](ctx context.Context, ex *Executor, cmd Command[S], opts ...ExecOption) (Result, error) {
	var cfg execConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.key != "" {
		rec, found, err := ex.store.LookupKey(cfg.key)
		if err != nil {
			return Result{}, fmt.Errorf("look up idempotency key: %w", err)
		}
		if found {
			return Result{Position: rec.Last(), Events: rec.Events, Retries: rec.Retries, Duplicate: true}, nil
		}
	}
	rs := &readSet{}
	if err := rs.add(cmd.Streams()); err != nil {
		return Result{}, err
	}
	rounds, retries := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if err := rs.refresh(ex); err != nil {
			return Result{}, err
		}
		state := foldState(ex, cmd, rs)
		events, err := cmd.Handle(ctx, state)
		if ra, ok := errors.AsType[*ReadAlsoError](err); ok {
			if rounds++; rounds > MaxDiscoveryRounds {
				return Result{}, fmt.Errorf("%w: Handle asked for more streams %d times (last: %v)", ErrDiscoveryLimit, MaxDiscoveryRounds, ra.Streams)
			}
			if err := rs.add(ra.Streams); err != nil {
				return Result{}, err
			}
			continue
		}
		if err != nil {
			return Result{}, err
		}
		if len(events) == 0 && cfg.key == "" {
			return Result{Retries: retries}, nil
		}
		for i := range events {
			if !rs.has(events[i].Stream) {
				return Result{}, &UndeclaredStreamError{Stream: events[i].Stream}
			}
			if cfg.metadata != nil {
				md := maps.Clone(cfg.metadata)
				maps.Copy(md, events[i].Metadata)
				events[i].Metadata = md
			}
		}
		rec, err := ex.store.Write(ctx, local.Request{Events: events, Expect: rs.expects(), Key: cfg.key, Retries: retries})
		if err == nil {
			if !rec.Duplicate {
				ex.cache.extend(rec.Events)
				return Result{Position: rec.Last(), Events: rec.Events, Retries: retries}, nil
			}
			return Result{Position: rec.Last(), Events: rec.Events, Retries: rec.Retries, Duplicate: true}, nil
		}
		if !errors.Is(err, local.ErrConflict) {
			return Result{}, err
		}
		if retries >= ex.opts.MaxRetries {
			return Result{}, fmt.Errorf("gave up after %d retries: %w", retries, err)
		}
		retries++
		if err := backoff.Sleep(ctx, ex.backoff(retries)); err != nil {
			return Result{}, err
		}
	}
}

// foldState folds the read set into a state: from zero, or for a
// [Snapshotter] from a copy of the state kept for its key, folding only the
// events that state does not cover.
func foldState[S any](ex *Executor, cmd Command[S], rs *readSet) S {
	var state S
	snap, ok := cmd.(Snapshotter[S])
	if !ok || ex.states.limit <= 0 {
		rs.fold(nil, func(e format.Event) { cmd.Apply(&state, e) })
		return state
	}
	key := snapshotKey(snap.SnapshotKey(), rs.streams)
	versions := make([]uint64, len(rs.streams))
	for i := range versions {
		versions[i] = rs.version(i)
	}
	var from []uint64
	if kept, keptVersions, ok := ex.states.get(key, versions); ok {
		// Another command type with the same key keeps another type of
		// state: no use here, but no reason to fail either.
		if kept, ok := kept.(S); ok {
			state, from = snap.CloneState(kept), keptVersions
		}
	}
	if rs.fold(from, func(e format.Event) { cmd.Apply(&state, e) }) > 0 || from == nil {
		// Kept before Handle sees it: Handle may modify its copy.
		ex.states.put(key, snap.CloneState(state), versions)
	}
	return state
}

// backoff is the wait before a retry: full jitter, so commands that
// collided spread out instead of colliding again in step.
func (ex *Executor) backoff(retry int) time.Duration {
	return backoff.Policy{Min: ex.opts.BaseBackoff, Max: ex.opts.MaxBackoff, Jitter: 1}.Wait(retry)
}

// readSet is what one execution has read: per stream, its events so far
// and the version they reach.
type readSet struct {
	streams []string
	events  [][]format.Event
}

func (rs *readSet) has(stream string) bool { return slices.Contains(rs.streams, stream) }

func (rs *readSet) add(streams []string) error {
	for _, st := range streams {
		if err := format.ValidateStream(st); err != nil {
			return fmt.Errorf("command streams: %w", err)
		}
		if !rs.has(st) {
			rs.streams = append(rs.streams, st)
			rs.events = append(rs.events, nil)
		}
	}
	return nil
}

func (rs *readSet) version(i int) uint64 { return uint64(len(rs.events[i])) }

// refresh brings every stream up to date from one snapshot, reading only
// what is past the version already held (or cached).
func (rs *readSet) refresh(ex *Executor) error {
	after := make([]uint64, len(rs.streams))
	for i, st := range rs.streams {
		if cached := ex.cache.get(st); len(cached) > len(rs.events[i]) {
			rs.events[i] = cached
		}
		after[i] = rs.version(i)
	}
	snap, err := ex.store.ReadStreams(rs.streams, after)
	if err != nil {
		return fmt.Errorf("read streams: %w", err)
	}
	for i, st := range rs.streams {
		if snap.Versions[i] < after[i] {
			// Versions only grow and the cache holds only committed events.
			return fmt.Errorf("read streams: %w: stream %q is at version %d, below the %d already read", local.ErrCorruptStore, st, snap.Versions[i], after[i])
		}
		if len(snap.Events[i]) > 0 {
			rs.events[i] = ex.cache.add(st, rs.events[i], snap.Events[i])
		}
	}
	return nil
}

func (rs *readSet) expects() []local.Expect {
	out := make([]local.Expect, len(rs.streams))
	for i, st := range rs.streams {
		out[i] = local.Expect{Stream: st, Version: rs.version(i)}
	}
	return out
}

// fold calls fn for every event of every stream past from (nil: from the
// start) in global position order: each stream is already in order, so this
// is a k-way merge. It returns how many events it folded.
func (rs *readSet) fold(from []uint64, fn func(format.Event)) int {
	idx := make([]int, len(rs.events))
	for i := range from {
		idx[i] = int(from[i])
	}
	if len(rs.events) == 1 {
		for _, e := range rs.events[0][idx[0]:] {
			fn(e)
		}
		return len(rs.events[0]) - idx[0]
	}
	n := 0
	for {
		best := -1
		for i, evs := range rs.events {
			if idx[i] < len(evs) && (best < 0 || evs[idx[i]].Position < rs.events[best][idx[best]].Position) {
				best = i
			}
		}
		if best < 0 {
			return n
		}
		fn(rs.events[best][idx[best]])
		idx[best]++
		n++
	}
}
