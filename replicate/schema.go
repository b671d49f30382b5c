package replicate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrations[v] takes the schema from version v-1 to v. "S." stands for the
// quoted schema name. Never edit a released migration: append a new one.
var migrations = []string{
	1: `
CREATE TABLE S.sources (
	name          text PRIMARY KEY,
	store_id      uuid NOT NULL,
	layout        text NOT NULL CHECK (layout IN ('rows', 'frames')),
	position      bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
	last_event_id uuid,
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE S.sources IS 'evstore: one row per replicated local log; position is the last event committed here';

CREATE TABLE S.events (
	source      text NOT NULL,
	position    bigint NOT NULL,
	stream      text NOT NULL,
	version     bigint NOT NULL,
	type        text NOT NULL,
	id          uuid NOT NULL,
	recorded_at timestamptz NOT NULL,
	metadata    jsonb,
	data        jsonb,
	data_raw    bytea,
	PRIMARY KEY (source, position),
	UNIQUE (source, stream, version),
	CHECK (data IS NULL OR data_raw IS NULL)
);
COMMENT ON COLUMN S.events.data IS 'payload when it is JSON that jsonb accepts';
COMMENT ON COLUMN S.events.data_raw IS 'payload bytes when they are not (both NULL: empty payload)';

CREATE TABLE S.frames (
	source         text NOT NULL,
	first_position bigint NOT NULL,
	last_position  bigint NOT NULL,
	event_count    integer NOT NULL,
	codec          text NOT NULL,
	frame          bytea NOT NULL,
	PRIMARY KEY (source, first_position),
	CHECK (last_position = first_position + event_count - 1)
);
ALTER TABLE S.frames ALTER COLUMN frame SET STORAGE EXTERNAL; -- already compressed

CREATE TABLE S.expanded (
	source     text PRIMARY KEY,
	position   bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE S.expanded IS 'evstore: how far Expand has turned frames into events rows, per source';

-- jsonb_ok tells whether PostgreSQL accepts a text as jsonb. The replicator
-- asks it only when a batch was refused for a payload that looked like JSON
-- (numbers out of range and the like), to store those payloads in data_raw.
CREATE FUNCTION S.jsonb_ok(t text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
	PERFORM t::jsonb;
	RETURN true;
EXCEPTION WHEN others THEN
	RETURN false;
END
$$;
`,
	2: `
CREATE TABLE S.idempotency_keys (
	source         text NOT NULL,
	key            bytea NOT NULL,
	first_position bigint NOT NULL,
	last_position  bigint NOT NULL,
	retries        integer NOT NULL,
	PRIMARY KEY (source, key)
);
COMMENT ON TABLE S.idempotency_keys IS 'evstore: idempotency keys of committed requests, shipped with the batch holding their events (first/last 0: the request appended nothing), so a restored log still recognises a retried request';
`,
	3: `
ALTER TABLE S.sources
	ADD COLUMN device_head     bigint,
	ADD COLUMN oldest_pending  timestamptz,
	ADD COLUMN evstore_version text,
	ADD COLUMN last_seen       timestamptz,
	ADD COLUMN holder_id       uuid,
	ADD COLUMN holder_host     text,
	ADD COLUMN holder_pid      integer,
	ADD COLUMN holder_log      text,
	ADD COLUMN holder_until    timestamptz;
COMMENT ON COLUMN S.sources.device_head IS 'the local log''s head at last contact (batch or heartbeat)';
COMMENT ON COLUMN S.sources.oldest_pending IS 'commit time of the oldest event the device had not shipped at last contact; NULL when caught up';
COMMENT ON COLUMN S.sources.last_seen IS 'last batch or heartbeat of a replicator';
COMMENT ON COLUMN S.sources.holder_id IS 'the replicator run that ships this source; others wait until holder_until (a lease renewed by every batch and heartbeat)';
`,
}

// SchemaVersion is the schema version this evstore writes: the index of the
// last entry of migrations (a test keeps the two in step).
const SchemaVersion = 3

// lockKey derives a 64-bit advisory lock key. Advisory keys are global to
// the database, so the schema is part of the key.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	h.Write([]byte("evstore"))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return int64(h.Sum64())
}

// Migrate creates or upgrades the evstore tables in schema (default
// "evstore") and returns how many migrations it applied. It is idempotent
// and safe to run from several processes at once: the work happens in one
// transaction under an advisory lock, and an up-to-date schema is detected
// without taking any lock or running any DDL (so a role without CREATE
// rights can use a schema prepared by an administrator).
func Migrate(ctx context.Context, url, schema string) (int, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if err := checkName("schema", schema); err != nil {
		return 0, err
	}
	cfg, err := connConfig(url, "evstore migrate", nil)
	if err != nil {
		return 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate(ctx, conn, schema)
}

func migrate(ctx context.Context, conn *pgx.Conn, schema string) (int, error) {
	s := pgx.Identifier{schema}.Sanitize()
	v, err := schemaVersion(ctx, conn, s)
	if err != nil {
		return 0, err
	}
	if v == SchemaVersion {
		return 0, nil
	}
	if v > SchemaVersion {
		return 0, tooNew(schema, v)
	}

	tx, err := begin(ctx, conn)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Serialize migrators: CREATE ... IF NOT EXISTS races with itself.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("migrate", schema)); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s+`.schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return 0, err
	}
	// Read again under the lock: another migrator may have finished.
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+s+".schema_migrations").Scan(&v); err != nil {
		return 0, err
	}
	if v > SchemaVersion {
		return 0, tooNew(schema, v)
	}
	applied := 0
	for next := v + 1; next <= SchemaVersion; next++ {
		if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[next], "S.", s+".")); err != nil {
			return 0, fmt.Errorf("migration %d: %w", next, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+s+".schema_migrations (version) VALUES ($1)", next); err != nil {
			return 0, err
		}
		applied++
	}
	return applied, tx.Commit(ctx)
}

// schemaVersion reads the applied version without locks; 0 when the schema
// or its migrations table does not exist yet.
func schemaVersion(ctx context.Context, conn *pgx.Conn, s string) (int, error) {
	var v int
	err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+s+".schema_migrations").Scan(&v)
	if noTables(err) {
		return 0, nil
	}
	return v, err
}

// noTables reports an undefined table or schema: evstore's tables are not
// there (yet).
func noTables(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}

func tooNew(schema string, v int) error {
	return &Error{
		Kind:   ErrSchemaTooNew,
		Detail: fmt.Sprintf("schema %q is at version %d, this evstore knows up to %d", schema, v, SchemaVersion),
		Hint:   "upgrade evstore",
	}
}
