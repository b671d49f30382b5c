package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
)

// ExpandOptions configure [Expand].
type ExpandOptions struct {
	URL    string
	Schema string // default "evstore"
	// Source limits the work to one source; default: every source with
	// the frames layout.
	Source string
	// Once expands the frames present and returns; otherwise Expand polls
	// for new frames every PollInterval until ctx ends.
	Once         bool
	PollInterval time.Duration // default 1s
	// BatchEvents caps the events expanded in one transaction (whole
	// frames are taken, so a batch may exceed it by one frame). Default
	// 10,000.
	BatchEvents      int
	Backoff          Backoff
	ErrorLogInterval time.Duration // default 30s
	Logger           *slog.Logger
	// Progress, if set, is called after every committed batch.
	Progress func(ExpandProgress)

	// beforeCommit, if set, is called with a batch's events inserted and
	// its transaction still open (tests hold it open with it).
	beforeCommit func(source string, events int)
}

// ExpandProgress reports one committed expansion batch.
type ExpandProgress struct {
	Source   string
	Position uint64 // expanded through
	Events   int    // in this batch
}

// Expand turns frames rows into events rows, exactly once: each batch reads
// the source's expanded position under a row lock, inserts the events of
// the frames that follow it and advances the position in the same
// transaction. Several Expand workers may run at once; they take turns per
// source. Transient errors are retried with backoff like [Run]'s.
func Expand(ctx context.Context, opts ExpandOptions) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	cfg, err := connConfig(opts.URL, "evstore expand", nil)
	if err != nil {
		return err
	}
	x := &expander{o: opts, cfg: cfg, schema: pgx.Identifier{opts.Schema}.Sanitize(), log: opts.Logger}
	bo := newBackoff(opts.Backoff)
	// The outage log speaks of replication; an operator reading expand's
	// log must not think the replicator is the one failing.
	el := &errorLog{what: "expansion", log: x.log, every: opts.ErrorLogInterval}
	x.log.Info("expanding frames", "url", RedactURL(opts.URL), "schema", opts.Schema, "once", opts.Once)
	for {
		err := x.session(ctx, bo, el)
		if ctx.Err() != nil || err == nil {
			return nil
		}
		if permanent(err) {
			x.log.Error("expansion stopped", "err", err)
			return err
		}
		d := bo.next()
		el.failed(err, d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

type expander struct {
	o      ExpandOptions
	cfg    *pgx.ConnConfig
	schema string
	log    *slog.Logger
}

func (x *expander) session(ctx context.Context, bo *backoff, el *errorLog) error {
	conn, err := pgx.ConnectConfig(ctx, x.cfg)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if _, err := migrate(ctx, conn, x.o.Schema); err != nil {
		return fmt.Errorf("migrate schema %q: %w", x.o.Schema, err)
	}
	el.recovered() // the backoff resets on a committed batch, not on connecting
	for {
		sources, err := x.sources(ctx, conn)
		if err != nil {
			return err
		}
		// A source that cannot be expanded (a damaged frame) must not
		// hold the others back: they are expanded first, then Expand
		// stops with the first such error.
		var broken error
		for _, src := range sources {
			for {
				n, err := x.batch(ctx, conn, src)
				if err != nil && permanent(err) && ctx.Err() == nil {
					x.log.Error("cannot expand source", "source", src, "err", err)
					broken = cmp.Or(broken, err)
					break
				}
				if err != nil {
					return err
				}
				if n == 0 {
					break
				}
				bo.reset()
			}
		}
		if broken != nil {
			return broken
		}
		if x.o.Once {
			return nil
		}
		if !sleep(ctx, x.o.PollInterval) {
			return nil
		}
	}
}

// sources lists the frames-layout sources to work on.
func (x *expander) sources(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	if x.o.Source == "" {
		rs, err := conn.Query(ctx, "SELECT name FROM "+x.schema+".sources WHERE layout = 'frames' ORDER BY name")
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rs, pgx.RowTo[string])
	}
	var layout string
	err := conn.QueryRow(ctx, "SELECT layout FROM "+x.schema+".sources WHERE name = $1", x.o.Source).Scan(&layout)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil // not replicated yet
	case err != nil:
		return nil, err
	case Layout(layout) != LayoutFrames:
		return nil, &Error{Kind: ErrLayoutMismatch, Source: x.o.Source,
			Detail: "it uses the rows layout, there is nothing to expand", Hint: "expand only sources replicated with LayoutFrames"}
	}
	return []string{x.o.Source}, nil
}

// maxDemoteRounds bounds the jsonb fallback of one batch.
const maxDemoteRounds = 8

// batch expands the frames following the source's expanded position, up to
// about BatchEvents events, and returns how many it expanded.
func (x *expander) batch(ctx context.Context, conn *pgx.Conn, source string) (int, error) {
	// A retry re-reads from the current position and may meet frames the
	// first try did not (new ones, or another expander moved on), so the
	// fallback may be needed more than once; bounded, since each round
	// only adds to demoted.
	demoted := map[uint64]bool{}
	for round := 0; ; round++ {
		n, pos, evs, rows, err := x.tryBatch(ctx, conn, source, demoted)
		if round < maxDemoteRounds && isDataException(err) && rows != nil {
			// Same fallback as Run: payloads jsonb refuses go to data_raw.
			moved, ferr := demoteRejectedJSON(ctx, conn, x.o.Schema, evs, rows)
			if ferr != nil {
				return 0, ferr
			}
			if len(moved) == 0 {
				return 0, err
			}
			x.log.Warn("payloads that jsonb refuses stored in data_raw", "source", source, "positions", moved, "err", err)
			for _, p := range moved {
				demoted[p] = true
			}
			continue
		}
		if err == nil && n > 0 {
			x.log.Debug("expanded", "source", source, "position", pos, "events", n)
			if x.o.Progress != nil {
				x.o.Progress(ExpandProgress{Source: source, Position: pos, Events: n})
			}
		}
		return n, err
	}
}

func (x *expander) tryBatch(ctx context.Context, conn *pgx.Conn, source string, demoted map[uint64]bool) (int, uint64, []format.Event, []eventRow, error) {
	tx, err := begin(ctx, conn)
	if err != nil {
		return 0, 0, nil, nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	s := x.schema
	// Share-lock the source row first. A replicator archiving the source
	// (Options.NewSource) locks it FOR UPDATE, so the two exclude each
	// other: without this, an archive could miss a first batch whose
	// expanded row is still uncommitted, and the batch would then land
	// under the name the new log starts afresh.
	var layout string
	err = tx.QueryRow(ctx, "SELECT layout FROM "+s+".sources WHERE name = $1 FOR KEY SHARE", source).Scan(&layout)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && Layout(layout) != LayoutFrames) {
		return 0, 0, nil, nil, nil // archived meanwhile: the next round sees the new source
	}
	if err != nil {
		return 0, 0, nil, nil, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+s+".expanded (source) VALUES ($1) ON CONFLICT DO NOTHING", source); err != nil {
		return 0, 0, nil, nil, err
	}
	var pos int64
	if err := tx.QueryRow(ctx, "SELECT position FROM "+s+".expanded WHERE source = $1 FOR UPDATE", source).Scan(&pos); err != nil {
		return 0, 0, nil, nil, err
	}
	rs, err := tx.Query(ctx, "SELECT first_position, event_count, frame FROM "+s+".frames WHERE source = $1 AND first_position > $2 AND first_position <= $2 + $3 ORDER BY first_position",
		source, pos, x.o.BatchEvents)
	if err != nil {
		return 0, 0, nil, nil, err
	}
	var evs []format.Event
	next := uint64(pos) + 1
	var first, count int64
	var frame []byte
	_, err = pgx.ForEachRow(rs, []any{&first, &count, &frame}, func() error {
		if uint64(first) != next {
			return &Error{Kind: ErrDiverged, Source: source,
				Detail: fmt.Sprintf("its frames jump from position %d to %d", next-1, first),
				Hint:   "frames rows were deleted or edited by hand; restore them, or expand another source"}
		}
		got, err := format.DecodeFrame(frame)
		if err != nil {
			return fmt.Errorf("source %q frame at %d: %w", source, first, err)
		}
		if int64(len(got)) != count || got[0].Position != uint64(first) {
			return fmt.Errorf("source %q frame at %d: %w: holds %d events from %d, its row says %d from %d",
				source, first, format.ErrCorrupt, len(got), got[0].Position, count, first)
		}
		evs = append(evs, got...)
		next += uint64(count)
		return nil
	})
	if err != nil || len(evs) == 0 {
		return 0, uint64(pos), nil, nil, err
	}
	rows, _, err := buildRows(evs)
	if err != nil {
		return 0, 0, nil, nil, err
	}
	for i := range rows {
		if demoted[evs[i].Position] {
			rows[i].raw, rows[i].data = rows[i].data, nil
		}
	}
	if err := copyEvents(ctx, tx, x.o.Schema, source, evs, rows); err != nil {
		return 0, 0, evs, rows, err
	}
	last := evs[len(evs)-1].Position
	if _, err := tx.Exec(ctx, "UPDATE "+s+".expanded SET position = $2, updated_at = now() WHERE source = $1", source, int64(last)); err != nil {
		return 0, 0, nil, nil, err
	}
	if x.o.beforeCommit != nil {
		x.o.beforeCommit(source, len(evs))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, nil, nil, err
	}
	return len(evs), last, evs, rows, nil
}
