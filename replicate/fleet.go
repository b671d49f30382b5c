package replicate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultSilentAfter is how long a source may go without contact before
// [Fleet] flags it: five default heartbeats.
const DefaultSilentAfter = 5 * time.Minute

// FleetOptions configure [Fleet].
type FleetOptions struct {
	URL    string
	Schema string // default "evstore"
	// SilentAfter flags sources with no batch or heartbeat for longer.
	// Default [DefaultSilentAfter]; it should exceed the replicators'
	// Options.HeartbeatInterval.
	SilentAfter time.Duration
	// Archives includes archived sources (NAME@<time>).
	Archives bool
}

// SourceInfo is one source of the fleet view, as PostgreSQL has it. The
// device's head and lag are as of its last contact (a batch or a
// heartbeat); a device that went silent may have more since.
type SourceInfo struct {
	Source     string    `json:"source"`
	StoreID    string    `json:"store_id"`
	Layout     Layout    `json:"layout"`
	Replicated uint64    `json:"replicated"`         // position committed in PostgreSQL
	DeviceHead uint64    `json:"device_head"`        // the device's head at last contact (0: never reported)
	LagEvents  uint64    `json:"lag_events"`         // DeviceHead - Replicated
	LagSeconds float64   `json:"lag_seconds"`        // age, now, of the oldest event the device had not shipped at last contact
	LastSeen   time.Time `json:"last_seen,omitzero"` // last batch or heartbeat (before schema 3: last batch)
	SilentFor  float64   `json:"silent_seconds"`     // seconds since LastSeen
	Silent     bool      `json:"silent"`             // SilentFor > SilentAfter
	Version    string    `json:"version,omitempty"`  // evstore version of the device's replicator
	Holder     string    `json:"holder,omitempty"`   // the replicator claiming the source, if its claim is live
	Expanded   uint64    `json:"expanded,omitempty"` // frames layout: position expanded into rows
	Checked    time.Time `json:"checked"`            // the server's time of this view
	Archived   bool      `json:"archived,omitempty"` // an archive (NAME@<time>)
}

// Fleet lists every source of the schema with its replicated position,
// the device's head and lag at last contact, when it was last seen, and
// which sources went silent: what an operator looks at first when a device
// "doesn't sync". It reads one row per source and changes nothing. Times
// are the server's.
func Fleet(ctx context.Context, opts FleetOptions) ([]SourceInfo, error) {
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if err := checkName("schema", opts.Schema); err != nil {
		return nil, err
	}
	if opts.SilentAfter <= 0 {
		opts.SilentAfter = DefaultSilentAfter
	}
	cfg, err := connConfig(opts.URL, "evstore fleet", nil)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	s := pgx.Identifier{opts.Schema}.Sanitize()
	v, err := schemaVersion(ctx, conn, s)
	switch {
	case err != nil:
		return nil, err
	case v == 0:
		return nil, fmt.Errorf("replicate: schema %q has no evstore tables: nothing has replicated there yet, or FleetOptions.Schema is wrong", opts.Schema)
	case v > SchemaVersion:
		return nil, tooNew(opts.Schema, v)
	}
	// Sources of a schema not yet migrated to version 3 have no contact
	// columns: their last batch is all there is.
	contact := "s.device_head, s.oldest_pending, s.evstore_version, coalesce(s.last_seen, s.updated_at), " +
		"CASE WHEN s.holder_until > now() THEN 'evstore pid ' || s.holder_pid || ' on host ' || s.holder_host END"
	if v < 3 {
		contact = "NULL::bigint, NULL::timestamptz, NULL::text, s.updated_at, NULL::text"
	}
	rows, err := conn.Query(ctx, "SELECT s.name, s.store_id::text, s.layout, s.position, "+contact+", e.position, now() FROM "+s+".sources s "+
		"LEFT JOIN "+s+".expanded e ON e.source = s.name WHERE $1 OR position('@' in s.name) = 0 ORDER BY s.name", opts.Archives)
	if noTables(err) {
		return nil, fmt.Errorf("replicate: schema %q has no evstore tables: %w", opts.Schema, err)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SourceInfo
	for rows.Next() {
		var (
			si       SourceInfo
			layout   string
			pos      int64
			head     *int64
			oldest   *time.Time
			version  *string
			holder   *string
			expanded *int64
		)
		if err := rows.Scan(&si.Source, &si.StoreID, &layout, &pos, &head, &oldest, &version, &si.LastSeen, &holder, &expanded, &si.Checked); err != nil {
			return nil, err
		}
		si.Layout, si.Replicated = Layout(layout), uint64(pos)
		si.LastSeen, si.Checked = si.LastSeen.UTC(), si.Checked.UTC()
		if head != nil {
			si.DeviceHead = uint64(*head)
		}
		if si.DeviceHead > si.Replicated {
			si.LagEvents = si.DeviceHead - si.Replicated
			if oldest != nil {
				si.LagSeconds = max(0, si.Checked.Sub(*oldest).Seconds())
			}
		}
		if version != nil {
			si.Version = *version
		}
		if holder != nil {
			si.Holder = *holder
		}
		if expanded != nil && si.Layout == LayoutFrames {
			si.Expanded = uint64(*expanded)
		}
		si.SilentFor = max(0, si.Checked.Sub(si.LastSeen).Seconds())
		si.Archived = strings.Contains(si.Source, "@")
		si.Silent = !si.Archived && si.SilentFor > opts.SilentAfter.Seconds()
		out = append(out, si)
	}
	return out, rows.Err()
}
