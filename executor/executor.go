package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
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
	// implement [Snapshotter], one per command type, snapshot key and read
	// set (per stream for a [StreamSnapshotter]). Default 16384; negative
	// disables it.
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
	store       *local.Store
	opts        Options
	cache       *streamCache
	states      *stateCache
	locks       *streamLocks
	seq         atomic.Uint64 // orders queued writes
	inflight    sync.Map      // idempotency key -> *local.Pending, while queued
	pointerOnly sync.Map      // reflect.Type -> bool, see checkSnapshotter
}

// New returns an executor over store.
func New(store *local.Store, opts Options) *Executor {
	opts = opts.withDefaults()
	return &Executor{store: store, opts: opts, cache: newStreamCache(opts.CacheEvents, opts.CacheBytes), states: newStateCache(opts.CacheStates), locks: newStreamLocks()}
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
	key         string
	fingerprint []byte
	metadata    map[string]string
	maxRetries  *int
}

// Idempotent makes the execution idempotent under key: running a command
// with the same key again returns the first Result and appends nothing, also
// after a restart.
func Idempotent(key string) ExecOption { return func(c *execConfig) { c.key = key } }

// WithFingerprint adds b to the fingerprint stored with an [Idempotent]
// key. The fingerprint always holds the command's Go type and the streams
// it declares; add what else tells one request from another (the registry
// adds the command's name and arguments). The same key with another
// fingerprint fails with [ErrKeyReused].
func WithFingerprint(b []byte) ExecOption {
	return func(c *execConfig) { c.fingerprint = append(c.fingerprint, b...) }
}

// WithMaxRetries overrides Options.MaxRetries for one execution; negative
// means none.
func WithMaxRetries(n int) ExecOption {
	return func(c *execConfig) { n := max(n, 0); c.maxRetries = &n }
}

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
	// ErrAlreadyRead is returned when Handle asks with ReadAlso only for
	// streams the command has read already: another round would fold the
	// same state and ask again.
	ErrAlreadyRead = errors.New("ReadAlso of streams already read")
	// ErrKeyReused is returned when an [Idempotent] key comes back with a
	// different command (see [WithFingerprint]); nothing is written. It is
	// local.ErrKeyReused, and the error is a *local.KeyReusedError.
	ErrKeyReused = local.ErrKeyReused
	// ErrApply is returned when a command's [TryApplier] refuses an event.
	ErrApply = errors.New("cannot fold event")
)

// ErrReentrant is returned by an Execute called from a Handle (with
// Handle's context) for a stream the outer command holds: it would wait for
// the outer command, which waits for it.
var ErrReentrant = errors.New("Execute from Handle on a stream the outer command holds")

// ReentrantError names the stream. It unwraps to [ErrReentrant].
type ReentrantError struct{ Stream string }

func (e *ReentrantError) Error() string {
	return fmt.Sprintf("stream %q: %v; run the inner command after the outer one returns, or on another Executor", e.Stream, ErrReentrant)
}

// Unwrap makes errors.Is(err, ErrReentrant) hold.
func (e *ReentrantError) Unwrap() error { return ErrReentrant }

// AlreadyReadError names the streams. It unwraps to [ErrAlreadyRead].
type AlreadyReadError struct{ Streams []string }

func (e *AlreadyReadError) Error() string {
	return fmt.Sprintf("%v %q: they are folded into the state Handle got (an empty stream folds nothing); check executor.Read(ctx, stream) before asking", ErrAlreadyRead, e.Streams)
}

// Unwrap makes errors.Is(err, ErrAlreadyRead) hold.
func (e *AlreadyReadError) Unwrap() error { return ErrAlreadyRead }

// TryApplier is implemented by a [Command] whose fold can fail, for example
// on an event it cannot decode. The executor then calls TryApply instead of
// Apply; an error stops the execution, nothing is written, and Execute
// returns an [ApplyError].
type TryApplier[S any] interface {
	TryApply(state *S, ev format.Event) error
}

// ApplyError is a fold that failed at one event. It unwraps to [ErrApply]
// and to the command's error.
type ApplyError struct {
	Stream   string
	Version  uint64
	Position uint64 // 0 for an event that is not committed yet
	Type     string
	Err      error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("%v %s of stream %q (version %d, position %d): %v", ErrApply, e.Type, e.Stream, e.Version, e.Position, e.Err)
}

// Unwrap makes errors.Is hold for ErrApply and for the cause.
func (e *ApplyError) Unwrap() []error { return []error{ErrApply, e.Err} }

// readSetKey carries what an execution has read into Handle's context.
type readSetKey struct{}

// Read reports, inside Handle, whether the command has read stream and the
// version its state covers (0 for an empty or missing stream). It tells a
// stream that is read but empty from one that is not read yet, so Handle
// asks for ReadAlso only what it lacks. Outside Handle it returns 0, false.
func Read(ctx context.Context, stream string) (version uint64, ok bool) {
	rs, _ := ctx.Value(readSetKey{}).(*readSet)
	if rs == nil {
		return 0, false
	}
	i := slices.Index(rs.streams, stream)
	if i < 0 {
		return 0, false
	}
	return rs.version(i), true
}

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
	maxRetries := ex.opts.MaxRetries
	if cfg.maxRetries != nil {
		maxRetries = *cfg.maxRetries
	}
	f := &folder[S]{ex: ex, cmd: cmd, typ: reflect.TypeOf(cmd)}
	if snap, ok := cmd.(Snapshotter[S]); ok {
		if ex.states.limit > 0 {
			f.snap, f.mode = snap, snapWhole
			if per, ok := cmd.(StreamSnapshotter[S]); ok {
				f.per, f.mode = per, snapPerStream
			}
		}
	} else if err := ex.checkSnapshotter(f.typ); err != nil {
		return Result{}, err
	}
	declared := cmd.Streams()
	if cfg.key == "" {
		cfg.fingerprint = nil // stored only with a key: nothing to hash
	} else {
		cfg.fingerprint = fingerprint(f.typ, declared, cfg.fingerprint)
		if err := ex.waitInFlight(ctx, cfg.key); err != nil {
			return Result{}, err
		}
		if res, found, err := ex.lookup(cfg.key, cfg.fingerprint); err != nil || found {
			return res, err
		}
	}
	rs := &readSet{}
	if _, err := rs.add(declared); err != nil {
		return Result{}, err
	}
	rs.ex = ex
	outer, _ := ctx.Value(readSetKey{}).(*readSet) // set when called from a Handle
	hctx := context.WithValue(ctx, readSetKey{}, rs)
	rounds, retries := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if outer != nil && outer.ex == ex {
			for _, st := range rs.streams {
				if outer.has(st) {
					return Result{}, &ReentrantError{Stream: st}
				}
			}
		}
		h, err := ex.locks.acquire(ctx, rs.streams)
		if err != nil {
			return Result{}, err
		}
		if err := f.refresh(ctx, rs, h.queuedOn()); err != nil {
			h.release()
			return Result{}, err
		}
		state, err := f.fold(rs)
		var events []format.EventData
		if err == nil {
			events, err = cmd.Handle(hctx, state)
		}
		if ra, ok := errors.AsType[*ReadAlsoError](err); ok {
			h.release()
			err = nil
			if rounds++; rounds > MaxDiscoveryRounds {
				err = fmt.Errorf("%w: Handle asked for more streams %d times (last: %v)", ErrDiscoveryLimit, MaxDiscoveryRounds, ra.Streams)
			} else if added, aerr := rs.add(ra.Streams); aerr != nil {
				err = aerr
			} else if added == 0 {
				err = &AlreadyReadError{Streams: ra.Streams}
			} else {
				if f.mode == snapWhole {
					rs.reset() // a state kept for the old read set does not cover the new one
				}
				continue
			}
		}
		for i := range events {
			if err != nil {
				break
			}
			if !rs.has(events[i].Stream) {
				err = &UndeclaredStreamError{Stream: events[i].Stream}
			}
		}
		if err != nil || len(events) == 0 && cfg.key == "" {
			h.release()
			// The decision may rest on queued writes: it stands only if
			// they commit.
			if settled, werr := rs.waitQueued(ctx); werr != nil {
				return Result{}, werr
			} else if !settled {
				if retries >= maxRetries {
					return Result{}, fmt.Errorf("gave up after %d retries: %w", retries, &local.DependencyError{})
				}
				retries++
				continue
			}
			if err != nil {
				return ex.refused(ctx, cfg, err)
			}
			return Result{Retries: retries}, nil
		}
		for i := range events {
			if cfg.metadata != nil {
				md := maps.Clone(cfg.metadata)
				maps.Copy(md, events[i].Metadata)
				events[i].Metadata = md
			}
		}
		seq, after := ex.seq.Add(1), rs.after()
		p, err := ex.store.Enqueue(ctx, local.Request{Events: events, Expect: rs.expects(), Key: cfg.key, Retries: retries, Fingerprint: cfg.fingerprint, After: after})
		if err != nil {
			h.release()
			return Result{}, err
		}
		h.queue(&queuedWrite{p: p, seq: seq, after: after, events: provisional(events, p.IDs(), rs.versionOf)})
		if cfg.key != "" {
			ex.inflight.Store(cfg.key, p)
		}
		h.unlock()
		rec, err := p.Wait()
		h.release()
		if cfg.key != "" {
			ex.inflight.CompareAndDelete(cfg.key, p)
		}
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
		if retries >= maxRetries {
			return Result{}, fmt.Errorf("gave up after %d retries: %w", retries, err)
		}
		retries++
		if _, ok := errors.AsType[*local.DependencyError](err); ok {
			continue // what it built on failed and is settled: no one to make way for
		}
		if err := backoff.Sleep(ctx, ex.backoff(retries)); err != nil {
			return Result{}, err
		}
	}
}

// waitInFlight waits for a write of this executor queued under key, so a
// copy of a request that is being committed gets its Result.
func (ex *Executor) waitInFlight(ctx context.Context, key string) error {
	v, ok := ex.inflight.Load(key)
	if !ok {
		return nil
	}
	select {
	case <-v.(*local.Pending).Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookup returns the first Result of an idempotency key, if it was used.
func (ex *Executor) lookup(key string, fp []byte) (Result, bool, error) {
	rec, found, err := ex.store.LookupRequest(key, fp)
	switch {
	case errors.Is(err, local.ErrKeyReused):
		return Result{}, false, err
	case err != nil:
		return Result{}, false, fmt.Errorf("look up idempotency key: %w", err)
	case !found:
		return Result{}, false, nil
	}
	return Result{Position: rec.Last(), Events: rec.Events, Retries: rec.Retries, Duplicate: true}, true, nil
}

// refused answers an execution that decided not to write (Handle or the
// fold failed). With an idempotency key the same request may have been
// committed since the key was first looked up; its state then made this
// one fail ("already done"), and the caller must get the first Result, not
// the error.
func (ex *Executor) refused(ctx context.Context, cfg execConfig, err error) (Result, error) {
	if cfg.key == "" || ctx.Err() != nil {
		return Result{}, err
	}
	if werr := ex.waitInFlight(ctx, cfg.key); werr != nil {
		return Result{}, err
	}
	res, found, lerr := ex.lookup(cfg.key, cfg.fingerprint)
	switch {
	case errors.Is(lerr, local.ErrKeyReused):
		return Result{}, lerr
	case found:
		return res, nil
	}
	return Result{}, err
}

// fingerprint identifies a command for its idempotency key: its Go type,
// the streams it declares and what the caller added.
func fingerprint(typ reflect.Type, streams []string, extra []byte) []byte {
	var b []byte
	b = append(b, "executor/1\x00"...)
	b = append(b, typeName(typ)...)
	for _, st := range streams {
		b = append(b, 0)
		b = append(b, st...)
	}
	b = append(b, 1)
	return append(b, extra...)
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "<nil>"
	}
	prefix := ""
	for t.Kind() == reflect.Pointer && t.Name() == "" {
		prefix += "*"
		t = t.Elem()
	}
	if t.PkgPath() != "" {
		return prefix + t.PkgPath() + "." + t.Name()
	}
	return prefix + t.String()
}

// applier is the fold step of cmd into state: TryApply if cmd has it.
func applier[S any](cmd Command[S], state *S) func(format.Event) error {
	if ta, ok := cmd.(TryApplier[S]); ok {
		return func(ev format.Event) error {
			if err := ta.TryApply(state, ev); err != nil {
				return &ApplyError{Stream: ev.Stream, Version: ev.Version, Position: ev.Position, Type: ev.Type, Err: err}
			}
			return nil
		}
	}
	return func(ev format.Event) error { cmd.Apply(state, ev); return nil }
}

// backoff is the wait before a retry: full jitter, so commands that
// collided spread out instead of colliding again in step.
func (ex *Executor) backoff(retry int) time.Duration {
	return backoff.Policy{Min: ex.opts.BaseBackoff, Max: ex.opts.MaxBackoff, Jitter: 1}.Wait(retry)
}
