package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// ErrNoSource is returned by [Restore] for a source PostgreSQL does not
// have.
var ErrNoSource = errors.New("no such source")

// ErrRestoreExists is returned by [Restore] when the destination file
// exists: a restore never overwrites a log.
var ErrRestoreExists = errors.New("the restore destination exists")

// RestoreOptions configure [Restore].
type RestoreOptions struct {
	URL    string
	Schema string // default "evstore"
	Source string // the source to rebuild; required
	// Path is the file to create. It must not exist. The work goes into
	// Path + ".restoring", renamed to Path once complete and verified; an
	// interrupted restore leaves that file, and running again resumes it.
	Path string
	// BatchEvents caps the events fetched and committed at a time.
	// Default 10,000.
	BatchEvents int
	Logger      *slog.Logger
	// Progress, if set, is called after each batch with the events
	// restored and the total.
	Progress func(done, total int64)
}

// RestoreInfo describes a finished restore.
type RestoreInfo struct {
	Source  string `json:"source"`
	StoreID string `json:"store_id"`
	Layout  Layout `json:"layout"`
	Head    uint64 `json:"head"`             // last position restored: PostgreSQL's position for the source
	Events  uint64 `json:"events"`           // events written by this run (less than Head after a resumed run)
	Keys    int    `json:"idempotency_keys"` // idempotency keys restored
	Path    string `json:"path"`
}

// restoringSuffix names the work file of a restore.
const restoringSuffix = ".restoring"

// Restore rebuilds the local log of a replicated source from PostgreSQL into
// a new file: the same store id, positions, streams, versions, types, ids,
// metadata and idempotency keys, so that `Run` continues the same source
// afterwards (no NewSource, no duplicate, no gap) and a request retried
// with a key from before the loss is still a duplicate.
//
// From a frames source the events are byte-exact (records are decoded from
// the frames). From a rows source payloads are JSON-equal, not byte-exact
// (jsonb normalizes key order and spacing), commit times have microsecond
// precision, and U+0000 in metadata comes back as U+FFFD: what the rows
// layout stores.
//
// Keys of requests that appended nothing after the source's last event are
// not in PostgreSQL yet (they travel with the next event) and are not
// restored.
func Restore(ctx context.Context, opts RestoreOptions) (RestoreInfo, error) {
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if err := checkName("schema", opts.Schema); err != nil {
		return RestoreInfo{}, err
	}
	if opts.Source == "" {
		return RestoreInfo{}, errors.New("replicate: restore needs RestoreOptions.Source, the source to rebuild")
	}
	if err := checkName("source", opts.Source); err != nil {
		return RestoreInfo{}, err
	}
	if opts.Path == "" {
		return RestoreInfo{}, errors.New("replicate: restore needs RestoreOptions.Path, the file to create")
	}
	if opts.BatchEvents <= 0 {
		opts.BatchEvents = DefaultBatchEvents
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	info := RestoreInfo{Source: opts.Source, Path: opts.Path}
	if _, err := os.Lstat(opts.Path); err == nil {
		return info, fmt.Errorf("%s: %w: a restore never overwrites a log; choose another RestoreOptions.Path or move the file away", opts.Path, ErrRestoreExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return info, err
	}
	cfg, err := connConfig(opts.URL, "evstore restore "+opts.Source, nil)
	if err != nil {
		return info, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return info, err
	}
	defer closeConn(conn)
	schema := pgx.Identifier{opts.Schema}.Sanitize()
	v, err := schemaVersion(ctx, conn, schema)
	if err != nil {
		return info, err
	}
	if v > SchemaVersion {
		return info, tooNew(opts.Schema, v)
	}
	var (
		storeID uuid.UUID
		layout  string
		pos     int64
	)
	err = conn.QueryRow(ctx, "SELECT store_id, layout, position FROM "+schema+".sources WHERE name = $1", opts.Source).Scan(&storeID, &layout, &pos)
	if v == 0 || errors.Is(err, pgx.ErrNoRows) {
		return info, &Error{Kind: ErrNoSource, Source: opts.Source, Detail: fmt.Sprintf("schema %q has no such source", opts.Schema), Hint: "check RestoreOptions.Source and RestoreOptions.Schema"}
	}
	if err != nil {
		return info, err
	}
	info.StoreID, info.Layout, info.Head = storeID.String(), Layout(layout), uint64(pos)

	work := opts.Path + restoringSuffix
	store, err := local.Open(work, local.Options{StoreID: info.StoreID, NoSync: true})
	if errors.Is(err, local.ErrStoreID) {
		return info, fmt.Errorf("%s holds an unfinished restore of another store, not of %s (store %s): %w; move it away and run the restore again", work, opts.Source, info.StoreID, local.ErrStoreID)
	}
	if err != nil {
		return info, fmt.Errorf("restore into %s: %w", work, err)
	}
	defer func() {
		if store != nil {
			store.Close()
		}
	}()
	if h := store.Head(); h > 0 {
		opts.Logger.Info("resuming an interrupted restore", "file", work, "head", h)
	}
	rs := restorer{conn: conn, schema: schema, o: opts, store: store, head: info.Head}
	if info.Layout == LayoutFrames {
		err = rs.frames(ctx, &info)
	} else {
		err = rs.rows(ctx, &info)
	}
	if err != nil {
		return info, err
	}
	if v >= 2 { // schemas before version 2 hold no keys
		if info.Keys, err = rs.keys(ctx); err != nil {
			return info, err
		}
	}
	// The work file was written without fsyncs (a crash just means running
	// again); the one sync that matters comes before the rename.
	rep, err := store.Check(ctx)
	if err != nil {
		return info, err
	}
	if !rep.OK() {
		return info, fmt.Errorf("the restored log fails its check: %s", rep.Problems[0])
	}
	if err := store.Close(); err != nil {
		return info, err
	}
	store = nil
	if err := syncFile(work); err != nil {
		return info, err
	}
	if _, err := os.Lstat(opts.Path); err == nil {
		return info, fmt.Errorf("%s: %w: it appeared during the restore; %s holds the restored log", opts.Path, ErrRestoreExists, work)
	}
	if err := os.Rename(work, opts.Path); err != nil {
		return info, err
	}
	if d, err := os.Open(filepath.Dir(opts.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return info, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type restorer struct {
	conn   *pgx.Conn
	schema string
	o      RestoreOptions
	store  *local.Store
	head   uint64 // PostgreSQL's position for the source: restore through here
}

func (rs *restorer) progress() {
	if rs.o.Progress != nil {
		rs.o.Progress(int64(rs.store.Head()), int64(rs.head))
	}
}

// frames restores from the frames table: records decoded as they were
// written, byte for byte.
func (rs *restorer) frames(ctx context.Context, info *RestoreInfo) error {
	for rs.store.Head() < rs.head {
		from := rs.store.Head()
		rows, err := rs.conn.Query(ctx, "SELECT frame FROM "+rs.schema+".frames WHERE source = $1 AND last_position > $2 AND first_position <= $3 ORDER BY first_position LIMIT 8",
			rs.o.Source, int64(from), int64(rs.head))
		if err != nil {
			return err
		}
		frames, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		if len(frames) == 0 {
			return fmt.Errorf("PostgreSQL has no frame after position %d for source %q, whose position is %d", from, rs.o.Source, rs.head)
		}
		var batch []format.Event
		for _, f := range frames {
			evs, err := format.DecodeFrame(f)
			if err != nil {
				return fmt.Errorf("frame after position %d of source %q: %w", from, rs.o.Source, err)
			}
			for _, ev := range evs {
				if ev.Position > from && ev.Position <= rs.head {
					batch = append(batch, ev)
				}
			}
			if len(batch) >= rs.o.BatchEvents {
				if err := rs.commit(ctx, info, batch); err != nil {
					return err
				}
				from, batch = rs.store.Head(), nil
			}
		}
		if err := rs.commit(ctx, info, batch); err != nil {
			return err
		}
	}
	return nil
}

// rows restores from the events table.
func (rs *restorer) rows(ctx context.Context, info *RestoreInfo) error {
	for rs.store.Head() < rs.head {
		from := rs.store.Head()
		rows, err := rs.conn.Query(ctx, "SELECT position, stream, version, type, id, recorded_at, metadata::text, data::text, data_raw FROM "+rs.schema+
			".events WHERE source = $1 AND position > $2 AND position <= $3 ORDER BY position LIMIT $4",
			rs.o.Source, int64(from), int64(rs.head), rs.o.BatchEvents)
		if err != nil {
			return err
		}
		var batch []format.Event
		var (
			p, ver    int64
			id        uuid.UUID
			at        time.Time
			md, data  *string
			raw       []byte
			stream, t string
		)
		_, err = pgx.ForEachRow(rows, []any{&p, &stream, &ver, &t, &id, &at, &md, &data, &raw}, func() error {
			ev := format.Event{Position: uint64(p), Stream: stream, Version: uint64(ver), Type: t, ID: id.String(), Time: at.UTC()}
			if md != nil {
				if err := json.Unmarshal([]byte(*md), &ev.Metadata); err != nil {
					return fmt.Errorf("metadata of position %d: %w", p, err)
				}
				if len(ev.Metadata) == 0 {
					ev.Metadata = nil
				}
			}
			switch {
			case data != nil:
				ev.Data = []byte(*data)
			case raw != nil:
				ev.Data = append([]byte(nil), raw...)
			}
			batch = append(batch, ev)
			return nil
		})
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return fmt.Errorf("PostgreSQL has no event after position %d for source %q, whose position is %d (rows deleted?)", from, rs.o.Source, rs.head)
		}
		if err := rs.commit(ctx, info, batch); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) commit(ctx context.Context, info *RestoreInfo, batch []format.Event) error {
	if len(batch) == 0 {
		return nil
	}
	if err := rs.store.Import(ctx, batch, nil); err != nil {
		return fmt.Errorf("restore positions %d..%d: %w", batch[0].Position, batch[len(batch)-1].Position, err)
	}
	info.Events += uint64(len(batch))
	rs.progress()
	return ctx.Err()
}

// keys restores the source's idempotency keys whose events are restored.
func (rs *restorer) keys(ctx context.Context) (int, error) {
	rows, err := rs.conn.Query(ctx, "SELECT key, first_position, last_position, retries FROM "+rs.schema+
		".idempotency_keys WHERE source = $1 AND last_position <= $2", rs.o.Source, int64(rs.head))
	if err != nil {
		return 0, err
	}
	var (
		keys        []local.ImportedKey
		key         []byte
		first, last int64
		retries     int32
	)
	if _, err := pgx.ForEachRow(rows, []any{&key, &first, &last, &retries}, func() error {
		keys = append(keys, local.ImportedKey{Key: string(key), First: uint64(first), Last: uint64(last), Retries: int(retries)})
		return nil
	}); err != nil {
		return 0, err
	}
	total := len(keys)
	for len(keys) > 0 {
		n := min(len(keys), rs.o.BatchEvents)
		if err := rs.store.Import(ctx, nil, keys[:n]); err != nil {
			return 0, fmt.Errorf("restore idempotency keys: %w", err)
		}
		keys = keys[n:]
	}
	return total, nil
}
