package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/local"
)

// StatusInfo is where replication of one source stands.
type StatusInfo struct {
	Source        string    `json:"source"`
	Schema        string    `json:"schema"`
	Exists        bool      `json:"exists"`          // PostgreSQL knows the source
	StoreID       string    `json:"store_id"`        // the local log's id ("" without a store)
	RemoteStoreID string    `json:"remote_store_id"` // the store id PostgreSQL has for the source
	Layout        Layout    `json:"layout,omitempty"`
	LocalHead     uint64    `json:"local_head"`
	Replicated    uint64    `json:"replicated"`
	LagEvents     uint64    `json:"lag_events"`
	LagSeconds    float64   `json:"lag_seconds"`           // age of the oldest unreplicated event
	LastSuccess   time.Time `json:"last_success,omitzero"` // when a batch last committed
	Expanded      uint64    `json:"expanded,omitempty"`    // frames layout: position expanded into rows
	Checked       time.Time `json:"checked"`               // when this status was taken
	Problem       string    `json:"problem,omitempty"`     // a mismatch that stops replication
}

// Status reports where replication of source stands, without changing
// anything (no migration, no locks). store may be nil when the log cannot
// be opened (a running replicator holds its file lock): the local fields
// are then zero. A source that Run would refuse (owned by another store,
// ahead of the log, diverged from it) is reported in Problem and returned
// as the matching *Error too, with the words Run would use.
//
// An empty source means Run's default: [DefaultSource] for store, or the
// bare host name if an older evstore created that source for this store.
// Without a store, the one source named after this host is taken.
func Status(ctx context.Context, store *local.Store, url, schema, source string) (StatusInfo, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if err := checkName("schema", schema); err != nil {
		return StatusInfo{}, err
	}
	info := StatusInfo{Source: source, Schema: schema, Checked: time.Now().UTC()}
	if store != nil {
		info.StoreID = store.ID()
		info.LocalHead = store.Head()
	}
	cfg, err := connConfig(url, "evstore status", nil)
	if err != nil {
		return info, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return info, err
	}
	defer closeConn(conn)

	s := pgx.Identifier{schema}.Sanitize()
	if source == "" {
		if source, err = defaultSourceFor(ctx, conn, s, store); err != nil {
			return info, err
		}
		info.Source = source
	}
	var (
		storeID uuid.UUID
		layout  string
		pos     int64
		updated time.Time
		lastID  *uuid.UUID
	)
	err = conn.QueryRow(ctx, "SELECT store_id, layout, position, updated_at, last_event_id FROM "+s+".sources WHERE name = $1", source).
		Scan(&storeID, &layout, &pos, &updated, &lastID)
	switch {
	case errors.Is(err, pgx.ErrNoRows), noTables(err):
		info.LagEvents = info.LocalHead
		return info, lagSeconds(&info, store)
	case err != nil:
		return info, err
	}
	info.Exists = true
	info.RemoteStoreID = storeID.String()
	info.Layout = Layout(layout)
	info.Replicated = uint64(pos)
	if pos > 0 {
		info.LastSuccess = updated.UTC()
	}
	if info.Layout == LayoutFrames {
		var exp int64
		if err := conn.QueryRow(ctx, "SELECT position FROM "+s+".expanded WHERE source = $1", source).Scan(&exp); err == nil {
			info.Expanded = uint64(exp)
		}
	}
	if store == nil {
		return info, nil
	}
	if info.LocalHead > info.Replicated {
		info.LagEvents = info.LocalHead - info.Replicated
	}
	problem, err := compareSource(store, source, storeID, uint64(pos), lastID)
	if err != nil {
		return info, err
	}
	if problem != nil {
		info.Problem = problem.Error()
		info.LagEvents = 0
		return info, problem
	}
	return info, lagSeconds(&info, store)
}

// defaultSourceFor finds the source Run would use without Options.Source.
func defaultSourceFor(ctx context.Context, conn *pgx.Conn, s string, store *local.Store) (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "", fmt.Errorf("replicate: no source name and no host name to default to (%v): set the source", err)
	}
	if store != nil {
		id, err := uuid.Parse(store.ID())
		if err != nil {
			return "", err
		}
		if owns, err := ownsLegacy(ctx, conn, s, host, id); err != nil || owns {
			return host, err
		}
		return DefaultSource(store.ID())
	}
	// No store id to go by: the sources named after this host, archives
	// aside.
	prefix := hostPart(host)
	rs, err := conn.Query(ctx, "SELECT name FROM "+s+".sources WHERE (name = $1 OR (left(name, $3) = $2 AND length(name) = $3 + 8)) AND position('@' in name) = 0 ORDER BY name",
		host, prefix, len(prefix))
	if noTables(err) {
		return host, nil
	}
	if err != nil {
		return "", err
	}
	names, err := pgx.CollectRows(rs, pgx.RowTo[string])
	switch {
	case err != nil:
		return "", err
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return host, nil
	}
	return "", fmt.Errorf("replicate: sources %s are all named after this host and the log is not open to tell which is its own: set the source", strings.Join(names, ", "))
}

// lagSeconds fills in the age of the first event PostgreSQL lacks.
func lagSeconds(info *StatusInfo, store *local.Store) error {
	if store == nil || info.LagEvents == 0 {
		return nil
	}
	ev, err := eventAt(store, info.Replicated+1)
	if err != nil {
		return err
	}
	info.LagSeconds = max(0, info.Checked.Sub(ev.Time).Seconds())
	return nil
}
