package replicate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evstore/evstore/format"
)

// eventColumns is the COPY column list of the events table.
var eventColumns = []string{"source", "position", "stream", "version", "type", "id", "recorded_at", "metadata", "data", "data_raw"}

// eventRow holds the converted columns of one event.
type eventRow struct {
	id   [16]byte
	meta []byte // JSON object or nil
	data []byte // JSON for the jsonb column, or nil
	raw  []byte // payload for data_raw, or nil
}

// buildRows converts events to rows. A payload goes to data (jsonb) when it
// is JSON that PostgreSQL's jsonb will accept, otherwise to data_raw (bytea);
// an empty payload leaves both NULL. sanitized counts metadata strings whose
// U+0000 had to be replaced (PostgreSQL text cannot hold it).
func buildRows(evs []format.Event) (rows []eventRow, sanitized int, err error) {
	rows = make([]eventRow, len(evs))
	for i := range evs {
		ev := &evs[i]
		r := &rows[i]
		id, err := uuid.Parse(ev.ID)
		if err != nil {
			return nil, 0, &localError{fmt.Errorf("event at position %d has id %q: %w", ev.Position, ev.ID, err)}
		}
		r.id = id
		if len(ev.Metadata) > 0 {
			var n int
			r.meta, n = metadataJSON(ev.Metadata)
			sanitized += n
		}
		switch {
		case len(ev.Data) == 0:
		case jsonbSafe(ev.Data):
			r.data = ev.Data
		default:
			r.raw = ev.Data
		}
	}
	return rows, sanitized, nil
}

// metadataJSON encodes metadata as a JSON object with sorted keys and
// without HTML escaping (so "<" stays one byte).
func metadataJSON(md map[string]string) ([]byte, int) {
	n := 0
	for k, v := range md {
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			n++
		}
	}
	if n > 0 {
		clean := make(map[string]string, len(md))
		for k, v := range md {
			clean[strings.ReplaceAll(k, "\x00", "\uFFFD")] = strings.ReplaceAll(v, "\x00", "\uFFFD")
		}
		md = clean
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(md); err != nil {
		panic(err) // a map[string]string always encodes
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), n
}

// jsonbSafe reports whether b is JSON that jsonb accepts, as far as can be
// told without PostgreSQL: valid UTF-8, valid JSON, no \u0000 escape and no
// unpaired surrogate escape. Anything it misses (numbers out of numeric's
// range) is caught by the fallback in writeRows.
func jsonbSafe(b []byte) bool {
	if !utf8.Valid(b) || !json.Valid(b) {
		return false
	}
	// json.Valid guarantees backslashes only occur inside strings, each
	// starting a complete escape.
	for i := bytes.IndexByte(b, '\\'); i >= 0; {
		if b[i+1] != 'u' {
			i = nextBackslash(b, i+2)
			continue
		}
		cp := hex4(b[i+2 : i+6])
		switch {
		case cp == 0:
			return false
		case cp >= 0xDC00 && cp < 0xE000:
			return false // low surrogate without a high one
		case cp >= 0xD800 && cp < 0xDC00:
			if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return false
			}
			if lo := hex4(b[i+8 : i+12]); lo < 0xDC00 || lo >= 0xE000 {
				return false
			}
			i = nextBackslash(b, i+12)
			continue
		}
		i = nextBackslash(b, i+6)
	}
	return true
}

func nextBackslash(b []byte, from int) int {
	if from >= len(b) {
		return -1
	}
	j := bytes.IndexByte(b[from:], '\\')
	if j < 0 {
		return -1
	}
	return from + j
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		}
	}
	return r
}

// copyEvents streams rows into the events table with COPY, the fastest way
// into PostgreSQL (one round trip for the whole batch).
func copyEvents(ctx context.Context, tx pgx.Tx, schema, source string, evs []format.Event, rows []eventRow) error {
	vals := make([]any, len(eventColumns)) // reused: pgx encodes each row before asking for the next
	n, err := tx.CopyFrom(ctx, pgx.Identifier{schema, "events"}, eventColumns,
		pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
			ev, r := &evs[i], &rows[i]
			vals[0], vals[1], vals[2], vals[3], vals[4] = source, int64(ev.Position), ev.Stream, int64(ev.Version), ev.Type
			vals[5], vals[6], vals[7], vals[8], vals[9] = r.id, ev.Time, r.meta, r.data, r.raw
			return vals, nil
		}))
	if err != nil {
		return err
	}
	if n != int64(len(evs)) {
		return fmt.Errorf("COPY stored %d of %d events", n, len(evs))
	}
	return nil
}

// isDataException reports a PostgreSQL data exception (class 22), which is
// how COPY refuses a payload that jsonb does not accept.
func isDataException(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22")
}

// demoteRejectedJSON asks PostgreSQL which jsonb candidates it refuses and
// moves those payloads to data_raw. It returns their positions.
func demoteRejectedJSON(ctx context.Context, conn *pgx.Conn, schema string, evs []format.Event, rows []eventRow) ([]uint64, error) {
	var texts []string
	var idx []int
	for i := range rows {
		if rows[i].data != nil {
			texts = append(texts, string(rows[i].data))
			idx = append(idx, i)
		}
	}
	if len(texts) == 0 {
		return nil, nil
	}
	q := fmt.Sprintf("SELECT i FROM unnest($1::text[]) WITH ORDINALITY AS t(j, i) WHERE NOT %s.jsonb_ok(j)", pgx.Identifier{schema}.Sanitize())
	ords, err := queryInts(ctx, conn, q, texts)
	if err != nil {
		return nil, err
	}
	var moved []uint64
	for _, o := range ords {
		r := &rows[idx[o-1]]
		r.raw, r.data = r.data, nil
		moved = append(moved, evs[idx[o-1]].Position)
	}
	return moved, nil
}

func queryInts(ctx context.Context, conn *pgx.Conn, q string, args ...any) ([]int64, error) {
	rs, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rs, pgx.RowTo[int64])
}
