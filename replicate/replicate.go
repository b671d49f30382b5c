package replicate

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// shutdownGrace is how long a batch already in flight may still take after
// ctx ends: long enough to commit normally, short enough not to hang a
// SIGTERM during an outage.
const shutdownGrace = 5 * time.Second

// Run copies the events of store to PostgreSQL, in order and exactly once,
// under the source name opts.Source. It follows the log until ctx ends (and
// then returns nil), or with opts.Once returns nil once PostgreSQL holds
// everything the log held when Run started.
//
// Transient failures (PostgreSQL down, network cut, server restart) are
// retried with exponential backoff; nothing is lost or duplicated, because
// every batch re-checks in its transaction where PostgreSQL stands. Without
// Once they are retried forever (unless Options.RetryFor is set); with Once
// for Options.RetryFor, then Run returns [ErrGaveUp]. With Once, ctx ending
// before PostgreSQL holds everything returns [ErrInterrupted].
// Permanent failures return at once as an [*Error] (see the sentinels), a
// damaged local record as format.ErrCorrupt, a server's refusal that no
// retry can change (bad credentials, an unknown setting in the URL, a
// reserved schema name) as the server's error.
func Run(ctx context.Context, store *local.Store, opts Options) error {
	explicit := opts.Source != ""
	opts, err := opts.withDefaults(store.ID())
	if err != nil {
		return err
	}
	r := &replicator{
		h:      newHolder(store.Path()),
		store:  store,
		o:      opts,
		m:      opts.Metrics,
		schema: pgx.Identifier{opts.Schema}.Sanitize(),
		log:    opts.Logger.With("source", opts.Source),
	}
	if r.storeID, err = uuid.Parse(store.ID()); err != nil {
		return fmt.Errorf("replicate: store id %q is not a UUID: %w", store.ID(), err)
	}
	if !explicit {
		// An older evstore named the source after the host alone: keep
		// using such a source if it is this store's (checked on connect).
		r.legacy, _ = os.Hostname()
	}
	r.m.setSource(opts.Source)
	if r.cfg, err = connConfig(opts.URL, "evstore replicate "+opts.Source, &r.m.BytesSent); err != nil {
		return err
	}
	r.codec = format.FrameCodecZstd
	if opts.Uncompressed {
		r.codec = format.FrameCodecNone
	}
	if opts.Once {
		r.target = store.Head()
	}
	liveRuns.Store(r.h.id, struct{}{})
	defer liveRuns.Delete(r.h.id)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go r.watchHead(wctx)
	return r.run(ctx)
}

type replicator struct {
	h       holder // this Run's claim on the source
	store   *local.Store
	storeID uuid.UUID
	o       Options
	m       *Metrics
	cfg     *pgx.ConnConfig
	schema  string // quoted
	log     *slog.Logger
	codec   format.FrameCodec

	target   uint64 // Once: replicate through this position
	legacy   string // the host name, while a default source name is to be resolved
	start    uint64 // replicated position at the first session
	frameBuf []byte // reused frame encoding buffer

	contacted atomic.Bool // a session reached PostgreSQL: the metrics' positions mean something
}

func (r *replicator) run(ctx context.Context) error {
	bo := newBackoff(r.o.Backoff)
	el := &errorLog{what: "replication", log: r.log, every: r.o.ErrorLogInterval}
	r.log.Info("replicating to PostgreSQL", "url", RedactURL(r.o.URL), "schema", r.o.Schema,
		"layout", r.o.Layout, "once", r.o.Once, "head", r.store.Head())
	var failingSince time.Time
	batches := r.m.Batches.Load()
	for {
		err := r.session(ctx, bo, el)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return r.interrupted(ctx)
		}
		r.m.Errors.Add(1)
		if permanent(err) {
			r.log.Error("replication stopped", "err", err)
			return err
		}
		now := time.Now()
		if failingSince.IsZero() || r.m.Batches.Load() != batches {
			failingSince, batches = now, r.m.Batches.Load()
		}
		d := bo.next()
		if r.o.RetryFor > 0 {
			left := r.o.RetryFor - now.Sub(failingSince)
			if left <= 0 {
				err = fmt.Errorf("%w for source %q: nothing succeeded for %v (Options.RetryFor); last error: %w",
					ErrGaveUp, r.o.Source, now.Sub(failingSince).Round(time.Millisecond), err)
				r.log.Error("replication stopped", "err", err)
				return err
			}
			d = min(d, left)
		}
		el.failed(err, d)
		if !r.wait(ctx, d, err) {
			return r.interrupted(ctx)
		}
	}
}

// interrupted is Run's result when ctx ended: nil when following the log
// (stopping is the normal end), an error with Once unless everything was
// shipped, so that a script can tell a finished run from a cut-short one.
func (r *replicator) interrupted(ctx context.Context) error {
	if !r.o.Once {
		return nil
	}
	pos := r.m.ReplicatedPosition.Load()
	if r.contacted.Load() && pos >= r.target {
		return nil
	}
	return fmt.Errorf("%w: source %q replicated through %d of %d; the next run resumes there: %w",
		ErrInterrupted, r.o.Source, pos, r.target, context.Cause(ctx))
}

// session is one stretch of replication: connect, migrate, claim the
// source and reconcile with what PostgreSQL has, then stream batches until
// an error or the end. The connection may be closed and reopened within a
// session while the log is idle (Options.IdleTimeout).
func (r *replicator) session(ctx context.Context, bo *backoff, el *errorLog) error {
	conn, pos, err := r.open(ctx)
	if err != nil {
		return err
	}
	// The backoff is reset by a committed batch, not by connecting: an
	// error that recurs after every connect (a batch that always times
	// out) must keep backing off.
	el.recovered()
	if !r.contacted.Load() {
		r.start = pos
	}
	head := r.store.Head()
	r.m.ReplicatedPosition.Store(pos)
	r.m.HeadPosition.Store(head)
	r.contacted.Store(true)
	r.log.Info("source ready", "position", pos, "head", head)
	r.progress(pos, head, 0, 0)
	return r.stream(ctx, conn, pos, bo)
}

// open connects, migrates and claims the source, and returns the
// connection and the position PostgreSQL has. A live claim of another
// replicator is waited for up to LockWait, then refused with ErrConcurrent.
func (r *replicator) open(ctx context.Context) (*pgx.Conn, uint64, error) {
	conn, err := pgx.ConnectConfig(ctx, r.cfg)
	if err != nil {
		return nil, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			closeConn(conn)
		}
	}()
	if _, err := migrate(ctx, conn, r.o.Schema); err != nil {
		return nil, 0, fmt.Errorf("migrate schema %q: %w", r.o.Schema, err)
	}
	if r.legacy != "" {
		if err := r.resolveLegacy(ctx, conn); err != nil {
			return nil, 0, err
		}
	}
	deadline := time.Now().Add(r.o.LockWait)
	for {
		pos, other, err := r.claim(ctx, conn)
		if err != nil {
			return nil, 0, err
		}
		if other == nil {
			ok = true
			return conn, pos, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, &Error{Kind: ErrConcurrent, Source: r.o.Source,
				Detail: other.String() + " holds the source",
				Hint: fmt.Sprintf("stop the other replicator first; if it is gone, its claim lapses at %s (three Options.HeartbeatInterval after its last contact)",
					other.until.UTC().Format(time.RFC3339))}
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil, 0, ctx.Err()
		}
	}
}

// resolveLegacy settles a default source name: the bare host name if an
// older evstore created that source for this store, otherwise the new
// default (host name and store id prefix).
func (r *replicator) resolveLegacy(ctx context.Context, conn *pgx.Conn) error {
	owns, err := ownsLegacy(ctx, conn, r.schema, r.legacy, r.storeID)
	switch {
	case err != nil:
		return err
	case owns:
		r.log.Info("keeping the source named after the host alone, which this log created", "new_default", r.o.Source)
		r.o.Source = r.legacy
		r.log = r.o.Logger.With("source", r.o.Source)
		r.m.setSource(r.o.Source)
	}
	r.legacy = ""
	return nil
}

// ownsLegacy reports whether the source named after the host alone (an
// older evstore's default) was created by this store. Status asks it too,
// so both pick the same name.
func ownsLegacy(ctx context.Context, conn *pgx.Conn, schema, host string, storeID uuid.UUID) (bool, error) {
	var owner uuid.UUID
	err := conn.QueryRow(ctx, "SELECT store_id FROM "+schema+".sources WHERE name = $1", host).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) || noTables(err) {
		return false, nil
	}
	return err == nil && owner == storeID, err
}

// claim reconciles the source row with the local log and returns the
// position PostgreSQL has: the only cursor Run trusts.
//
// It locks the source row FOR UPDATE, which conflicts with the FOR KEY
// SHARE lock an expander holds on the same row for each of its batches: an
// archive waits for an expansion batch in flight (even a source's first,
// whose expanded row is not committed yet, so nothing else could be locked)
// and an expander waits for an archive, then finds the source gone or
// renewed. Either way no batch straddles an archive.
//
// It also claims the source for this Run (see holder): a live claim of
// another replicator is returned as other, and nothing is changed.
func (r *replicator) claim(ctx context.Context, conn *pgx.Conn) (pos0 uint64, other *otherHolder, err error) {
	tx, err := begin(ctx, conn)
	if err != nil {
		return 0, nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var (
		storeID uuid.UUID
		layout  string
		pos     int64
		lastID  *uuid.UUID
		age     float64 // seconds since the row was last updated, by the server's clock
		hid     *uuid.UUID
		hlive   bool
		o       otherHolder
	)
	err = tx.QueryRow(ctx, "SELECT store_id, layout, position, last_event_id, extract(epoch FROM now() - updated_at)::float8, "+
		"holder_id, coalesce(holder_until > now(), false), coalesce(holder_host, ''), coalesce(holder_pid, 0), coalesce(holder_log, ''), coalesce(holder_until, now()) FROM "+
		r.schema+".sources WHERE name = $1 FOR UPDATE",
		r.o.Source).Scan(&storeID, &layout, &pos, &lastID, &age, &hid, &hlive, &o.host, &o.pid, &o.log, &o.until)
	if r.o.onClaim != nil {
		r.o.onClaim()
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// Two replicators may create the source at once: the second's
		// INSERT waits for the first's to commit, then does nothing, and
		// the claim starts again on the row the first made (and holds).
		tag, err := tx.Exec(ctx, "INSERT INTO "+r.schema+".sources (name, store_id, layout) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
			r.o.Source, r.storeID, string(r.o.Layout))
		if err != nil {
			return 0, nil, err
		}
		if tag.RowsAffected() == 0 {
			tx.Rollback(ctx)
			return r.claim(ctx, conn)
		}
		if err := r.hold(ctx, tx, 0); err != nil {
			return 0, nil, err
		}
		r.log.Info("created source", "store_id", r.storeID, "layout", r.o.Layout)
		return 0, nil, tx.Commit(ctx)
	}
	if err != nil {
		return 0, nil, err
	}
	if hid != nil && *hid != r.h.id && hlive && !r.o.TakeOver {
		o.id = *hid
		if !r.h.predecessor(&o) {
			return 0, &o, nil
		}
		r.log.Info("taking over the claim of an earlier run of this log", "pid", o.pid)
	}
	problem, err := r.check(storeID, Layout(layout), uint64(pos), lastID)
	if err != nil {
		return 0, nil, err
	}
	if problem == nil {
		if err := r.hold(ctx, tx, uint64(pos)); err != nil {
			return 0, nil, err
		}
		return uint64(pos), nil, tx.Commit(ctx)
	}
	if !r.o.NewSource || problem.Kind == ErrLayoutMismatch {
		return 0, nil, problem
	}
	if since := time.Duration(age * float64(time.Second)); since < r.o.ActiveWindow && !r.o.TakeOver {
		// Two logs under one name (cloned devices) would archive each
		// other in turn, each run leaving an archive: refuse instead.
		return 0, nil, &Error{Kind: ErrSourceActive, Source: r.o.Source,
			Detail: fmt.Sprintf("store %s advanced it %v ago (through position %d), within Options.ActiveWindow (%v), and %s",
				storeID, since.Round(time.Second), pos, r.o.ActiveWindow, problem.Kind),
			Hint: "if two devices share this source name (a cloned image?), give each its own Options.Source; " +
				"if the other log is gone for good, set Options.TakeOver to archive the source anyway"}
	}
	archive, err := r.archive(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	if err := r.hold(ctx, tx, 0); err != nil {
		return 0, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, nil, err
	}
	r.log.Warn("archived the old source and started it afresh", "archive", archive, "reason", problem.Error())
	return 0, nil, nil
}

// check compares the source row with the local log.
func (r *replicator) check(storeID uuid.UUID, layout Layout, pos uint64, lastID *uuid.UUID) (*Error, error) {
	if problem, err := compareSource(r.store, r.o.Source, storeID, pos, lastID); problem != nil || err != nil {
		return problem, err
	}
	if layout != r.o.Layout {
		return &Error{Kind: ErrLayoutMismatch, Source: r.o.Source,
			Detail: fmt.Sprintf("it was created with layout %s, this run asks for %s", layout, r.o.Layout),
			Hint:   fmt.Sprintf("set Options.Layout to %s, or replicate under another Options.Source", layout)}, nil
	}
	return nil, nil
}

// compareSource tells whether the source row (store id, position, last
// event id) belongs to the local log: the checks of a session start, shared
// with [Status] so that both say the same.
func compareSource(store *local.Store, source string, storeID uuid.UUID, pos uint64, lastID *uuid.UUID) (*Error, error) {
	head := store.Head()
	localID, err := uuid.Parse(store.ID())
	if err != nil {
		return nil, fmt.Errorf("replicate: store id %q is not a UUID: %w", store.ID(), err)
	}
	fresh := "set Options.NewSource to archive the old rows (renamed " + source + "@<time>) and start this source afresh, or choose another Options.Source"
	if storeID != localID {
		return &Error{Kind: ErrStoreMismatch, Source: source,
			Detail: fmt.Sprintf("PostgreSQL has it from store %s (through position %d), this log is store %s (head %d): a wiped device or a replaced log", storeID, pos, localID, head),
			Hint:   fresh}, nil
	}
	if pos > head {
		return &Error{Kind: ErrAhead, Source: source,
			Detail: fmt.Sprintf("PostgreSQL has positions through %d, the local log ends at %d: a log restored from an older copy", pos, head),
			Hint:   fresh}, nil
	}
	if pos > 0 && lastID != nil {
		ev, err := eventAt(store, pos)
		if err != nil {
			return nil, err
		}
		if id, _ := uuid.Parse(ev.ID); id != *lastID {
			return &Error{Kind: ErrDiverged, Source: source,
				Detail: fmt.Sprintf("at position %d PostgreSQL has event %s, the local log has %s", pos, *lastID, ev.ID),
				Hint:   fresh}, nil
		}
	}
	return nil, nil
}

func (r *replicator) createSource(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "INSERT INTO "+r.schema+".sources (name, store_id, layout) VALUES ($1, $2, $3)",
		r.o.Source, r.storeID, string(r.o.Layout))
	return err
}

// archive renames the source's rows to NAME@<UTC time> and recreates the
// source for this log, in the caller's transaction. It rewrites every row of
// the old source, which is slow for big sources but happens only when an
// operator asks for it.
func (r *replicator) archive(ctx context.Context, tx pgx.Tx) (string, error) {
	name := r.o.Source + "@" + time.Now().UTC().Format("20060102T150405.000Z")
	s := r.schema
	// The caller holds the source row FOR UPDATE, so no expander batch is
	// in flight for it (see claim): the statements below, each with a
	// fresh snapshot (READ COMMITTED), see every committed expansion.
	for _, q := range []string{
		"INSERT INTO " + s + ".sources (name, store_id, layout, position, last_event_id, created_at, updated_at) " +
			"SELECT $2, store_id, layout, position, last_event_id, created_at, updated_at FROM " + s + ".sources WHERE name = $1",
		"UPDATE " + s + ".events SET source = $2 WHERE source = $1",
		"UPDATE " + s + ".frames SET source = $2 WHERE source = $1",
		"UPDATE " + s + ".expanded SET source = $2 WHERE source = $1",
		"UPDATE " + s + ".idempotency_keys SET source = $2 WHERE source = $1",
	} {
		if _, err := tx.Exec(ctx, q, r.o.Source, name); err != nil {
			return "", err
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+s+".sources WHERE name = $1", r.o.Source); err != nil {
		return "", err
	}
	return name, r.createSource(ctx, tx)
}

// eventAt reads the local event at pos.
func eventAt(store *local.Store, pos uint64) (format.Event, error) {
	for ev, err := range store.ReadAll(pos) {
		if err != nil {
			return ev, &localError{err}
		}
		if ev.Position != pos {
			break
		}
		return ev, nil
	}
	return format.Event{}, &localError{fmt.Errorf("event %d is missing", pos)}
}

type item struct {
	ev  format.Event
	err error
}

// stream ships batches from position pos+1 on. A reader goroutine pulls
// events from the log (Subscribe: catch up, then wait for commits, no
// polling) into a channel; this loop groups them into batches, sending one
// when it is full or FlushInterval after its first event.
//
// While the log is idle it closes the connection after IdleTimeout (a
// fleet needs server connections for the devices shipping now, not for
// every device online) and reconnects for the next batch or heartbeat.
func (r *replicator) stream(ctx context.Context, conn *pgx.Conn, pos uint64, bo *backoff) (err error) {
	defer func() {
		if conn == nil {
			return
		}
		if err == nil || ctx.Err() != nil {
			r.release(conn, pos) // Run ends
		}
		closeConn(conn)
	}()
	if r.o.Once && pos >= r.target {
		r.log.Info("caught up", "position", pos)
		return nil
	}
	lastContact := time.Now()
	// reopen connects again after an idle close; PostgreSQL must still be
	// where this session left it.
	reopen := func() error {
		if conn != nil {
			return nil
		}
		c, p, err := r.open(ctx)
		if err != nil {
			return err
		}
		conn = c
		if p != pos {
			return fmt.Errorf("PostgreSQL is at position %d, this session at %d; resuming from PostgreSQL's", p, pos)
		}
		r.log.Debug("reconnected", "position", pos)
		return nil
	}
	rctx, cancel := context.WithCancel(ctx)
	ch := make(chan item, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		r.read(rctx, pos+1, ch)
	}()
	defer func() { cancel(); <-done }()

	b := newBatch(r.o.BatchEvents, r.o.BatchBytes)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var flushC <-chan time.Time
	// deferred: FlushInterval passed while the batch was behind the head.
	// The interval is there to bound the latency of new events, not to cut
	// catch-up batches short: such a batch goes when full or when it
	// reaches the head.
	deferred := false
	tick := time.NewTicker(r.tickInterval())
	defer tick.Stop()
	caughtUp := pos >= r.store.Head()
	if caughtUp && !r.o.Once {
		r.log.Info("caught up, following the log", "position", pos)
	}

	flush := func() error {
		if err := reopen(); err != nil {
			return err
		}
		if err := r.commit(ctx, conn, b.events); err != nil {
			return err
		}
		lastContact = time.Now()
		n, size := b.len(), b.bytes
		pos = b.events[n-1].Position
		b.reset()
		timer.Stop()
		flushC, deferred = nil, false
		bo.reset()
		head := r.store.Head()
		r.m.HeadPosition.Store(head)
		r.m.ReplicatedPosition.Store(pos)
		r.m.Batches.Add(1)
		r.m.Events.Add(uint64(n))
		r.m.LastSuccess.Store(time.Now().UnixNano())
		if pos >= head {
			r.m.OldestPending.Store(0)
			if !caughtUp && !r.o.Once {
				r.log.Info("caught up, following the log", "position", pos)
			}
			caughtUp = true
		} else if head-pos > uint64(r.o.BatchEvents) {
			caughtUp = false
		}
		r.log.Debug("batch committed", "position", pos, "events", n, "bytes", size)
		r.progress(pos, head, n, size)
		return nil
	}

	for {
		select {
		case it, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if b.len() > 0 {
					if err := flush(); err != nil {
						return err
					}
				}
				if r.o.Once && pos >= r.target {
					r.log.Info("caught up", "position", pos)
					return nil
				}
				return &localError{fmt.Errorf("the log ended at position %d, expected more", pos)}
			}
			if it.err != nil {
				return &localError{it.err}
			}
			if want := b.next(pos); it.ev.Position != want {
				return &localError{fmt.Errorf("read position %d, expected %d", it.ev.Position, want)}
			}
			if b.len() == 0 {
				timer.Reset(r.o.FlushInterval)
				flushC = timer.C
				r.m.OldestPending.Store(it.ev.Time.UnixNano())
			}
			if b.add(it.ev) || (deferred && it.ev.Position >= r.store.Head()) {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-flushC:
			if last := b.events[b.len()-1].Position; last < r.store.Head() && (!r.o.Once || last < r.target) {
				deferred, flushC = true, nil
				continue
			}
			if err := flush(); err != nil {
				return err
			}
		case <-tick.C:
			head := r.store.Head()
			r.m.HeadPosition.Store(head)
			if b.len() == 0 && pos >= head {
				r.m.OldestPending.Store(0)
			}
			idle := time.Since(lastContact)
			switch {
			case idle >= r.o.HeartbeatInterval:
				// Reconnecting claims the source again, which records the
				// same as a heartbeat.
				if conn == nil {
					if err := reopen(); err != nil {
						return err
					}
				} else if err := r.heartbeat(ctx, conn, pos); err != nil {
					return err
				}
				lastContact = time.Now()
			case conn != nil && b.len() == 0 && r.o.IdleTimeout > 0 && idle >= r.o.IdleTimeout:
				r.log.Debug("idle, closing the connection", "position", pos)
				closeConn(conn)
				conn = nil
			}
		case <-ctx.Done():
			return ctx.Err() // a partial batch is simply not sent
		}
	}
}

// tickInterval is how often stream refreshes the head and looks at the
// idle and heartbeat clocks.
func (r *replicator) tickInterval() time.Duration {
	d := min(time.Second, r.o.HeartbeatInterval/2)
	if r.o.IdleTimeout > 0 {
		d = min(d, r.o.IdleTimeout/2)
	}
	return max(d, 10*time.Millisecond)
}

// read feeds ch with events from position from: everything up to the
// target in Once mode, the live log otherwise.
func (r *replicator) read(ctx context.Context, from uint64, ch chan<- item) {
	var seq iter.Seq2[format.Event, error]
	if r.o.Once {
		seq = r.store.ReadAll(from)
	} else {
		seq = r.store.Subscribe(ctx, from)
	}
	for ev, err := range seq {
		if err == nil && r.o.Once && ev.Position > r.target {
			return
		}
		select {
		case ch <- item{ev, err}:
		case <-ctx.Done():
			return
		}
		if err != nil || (r.o.Once && ev.Position == r.target) {
			return
		}
	}
}

func (r *replicator) progress(pos, head uint64, n, size int) {
	if r.o.Progress == nil {
		return
	}
	r.o.Progress(ProgressInfo{Source: r.o.Source, Start: r.start, Position: pos, Head: head,
		Events: n, Bytes: size, CaughtUp: pos >= head})
}

// commit writes one batch in one transaction: lock the source row, check
// that PostgreSQL is exactly at the batch's first position - 1, insert,
// advance the position. A batch whose commit is lost in a network failure
// is found committed (or not) by the next session's claim.
func (r *replicator) commit(ctx context.Context, conn *pgx.Conn, evs []format.Event) error {
	// Finish the batch even if ctx ends meanwhile (within shutdownGrace), and
	// never wait on a silent connection for longer than BatchTimeout.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.BatchTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	defer stop()

	// What the batch ships beside its events is read from the log once,
	// before the source row is locked, and reused if the batch is retried.
	keys, err := r.store.KeysBetween(evs[0].Position, evs[len(evs)-1].Position)
	if err != nil {
		return &localError{err}
	}
	head, oldest := r.contact(evs[len(evs)-1].Position)
	extras := batchExtras{keys: keys, head: head, oldest: oldest}

	if r.o.Layout == LayoutFrames {
		frame, err := format.EncodeFrame(r.frameBuf[:0], evs, r.codec)
		if err != nil {
			return &localError{err}
		}
		r.frameBuf = frame
		return r.inTx(tctx, conn, evs, extras, func(tx pgx.Tx) error {
			_, err := tx.Exec(tctx, "INSERT INTO "+r.schema+".frames (source, first_position, last_position, event_count, codec, frame) VALUES ($1, $2, $3, $4, $5, $6)",
				r.o.Source, int64(evs[0].Position), int64(evs[len(evs)-1].Position), len(evs), r.codec.String(), frame)
			return err
		})
	}

	rows, sanitized, err := buildRows(evs)
	if err != nil {
		return err
	}
	if sanitized > 0 {
		r.log.Warn("metadata strings containing U+0000 stored with U+FFFD instead (PostgreSQL text cannot hold U+0000)", "count", sanitized)
	}
	insert := func(tx pgx.Tx) error { return copyEvents(tctx, tx, r.o.Schema, r.o.Source, evs, rows) }
	err = r.inTx(tctx, conn, evs, extras, insert)
	if isDataException(err) {
		// A payload passed the local JSON checks but jsonb refused it
		// (say, a number beyond numeric's range). Ask PostgreSQL which,
		// store those as bytes, and try once more.
		moved, ferr := demoteRejectedJSON(tctx, conn, r.o.Schema, evs, rows)
		if ferr != nil {
			return ferr
		}
		if len(moved) > 0 {
			r.log.Warn("payloads that jsonb refuses stored in data_raw", "positions", moved, "err", err)
			err = r.inTx(tctx, conn, evs, extras, insert)
		}
	}
	return err
}

// inTx runs insert inside the batch transaction protocol.
// batchExtras is what a batch records beside its events: the idempotency
// keys anchored in it, and the device's head and oldest unshipped event
// for the fleet view.
type batchExtras struct {
	keys   []local.ImportedKey
	head   uint64
	oldest *time.Time
}

func (r *replicator) inTx(ctx context.Context, conn *pgx.Conn, evs []format.Event, x batchExtras, insert func(pgx.Tx) error) error {
	first, last := evs[0].Position, evs[len(evs)-1].Position
	tx, err := begin(ctx, conn)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var (
		storeID uuid.UUID
		pos     int64
		hid     *uuid.UUID
		o       otherHolder
	)
	// FOR NO KEY UPDATE, not FOR UPDATE: it must not wait for an
	// expander's FOR KEY SHARE on the same row (see claim).
	err = tx.QueryRow(ctx, "SELECT store_id, position, holder_id, coalesce(holder_host, ''), coalesce(holder_pid, 0), coalesce(holder_log, '') FROM "+
		r.schema+".sources WHERE name = $1 FOR NO KEY UPDATE", r.o.Source).Scan(&storeID, &pos, &hid, &o.host, &o.pid, &o.log)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("source %q disappeared from PostgreSQL; reconnecting", r.o.Source)
	}
	if err != nil {
		return err
	}
	switch {
	case storeID != r.storeID:
		return &Error{Kind: ErrStoreMismatch, Source: r.o.Source,
			Detail: fmt.Sprintf("it was taken over by store %s while this replicator (store %s) was running", storeID, r.storeID),
			Hint:   "another replicator started this source afresh; stop one of them"}
	case hid != nil && *hid != r.h.id:
		return &Error{Kind: ErrConcurrent, Source: r.o.Source,
			Detail: "it was taken over by " + o.String() + " while this replicator was running",
			Hint:   "stop one of them: two replicators for one source take it from each other"}
	case hid == nil:
		// Released (an old evstore archived and recreated it?): claim it
		// again in a new session.
		return fmt.Errorf("source %q is no longer claimed by this replicator; reconnecting", r.o.Source)
	case uint64(pos) > first-1:
		return &Error{Kind: ErrConcurrent, Source: r.o.Source,
			Detail: fmt.Sprintf("PostgreSQL is at position %d, this replicator was about to send %d", pos, first),
			Hint:   "something else writes to this source without claiming it (an older evstore?); stop it"}
	case uint64(pos) < first-1:
		// PostgreSQL lost commits (restored from a backup?). Start a new
		// session, which resumes from what PostgreSQL has.
		return fmt.Errorf("PostgreSQL went back to position %d (expected %d); resuming from there", pos, first-1)
	}
	if err := insert(tx); err != nil {
		return err
	}
	if err := r.shipKeys(ctx, tx, x.keys); err != nil {
		return err
	}
	lastID, _ := uuid.Parse(evs[len(evs)-1].ID)
	if _, err := tx.Exec(ctx, "UPDATE "+r.schema+".sources SET position = $2, last_event_id = $3, updated_at = now(), "+
		"holder_until = now() + make_interval(secs => $4), last_seen = now(), device_head = $5, oldest_pending = $6, evstore_version = $7 WHERE name = $1",
		r.o.Source, int64(last), lastID, r.lease(), int64(x.head), x.oldest, Version()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
