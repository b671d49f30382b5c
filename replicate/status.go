package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
// are then zero. A source owned by another store or ahead of the log is
// reported in Problem and returned as the matching *Error too.
func Status(ctx context.Context, store *local.Store, url, schema, source string) (StatusInfo, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if source == "" {
		h, err := os.Hostname()
		if err != nil {
			return StatusInfo{}, fmt.Errorf("replicate: no source name and no host name: %w", err)
		}
		source = h
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
	var (
		storeID uuid.UUID
		layout  string
		pos     int64
		updated time.Time
	)
	err = conn.QueryRow(ctx, "SELECT store_id, layout, position, updated_at FROM "+s+".sources WHERE name = $1", source).
		Scan(&storeID, &layout, &pos, &updated)
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"):
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
	var problem *Error
	switch {
	case info.StoreID != info.RemoteStoreID:
		problem = &Error{Kind: ErrStoreMismatch, Source: source,
			Detail: fmt.Sprintf("PostgreSQL has it from store %s, this log is store %s", info.RemoteStoreID, info.StoreID),
			Hint:   hintArchive}
	case info.Replicated > info.LocalHead:
		problem = &Error{Kind: ErrAhead, Source: source,
			Detail: fmt.Sprintf("PostgreSQL has positions through %d, the local log ends at %d", info.Replicated, info.LocalHead),
			Hint:   hintArchive}
	}
	if problem != nil {
		info.Problem = problem.Error()
		info.LagEvents = 0
		return info, problem
	}
	return info, lagSeconds(&info, store)
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
