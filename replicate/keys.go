package replicate

import (
	"context"

	"github.com/evstore/evstore/local"
	"github.com/jackc/pgx/v5"
)

// shipKeys copies a batch's idempotency keys (local.Store.KeysBetween its
// positions) into the batch's transaction. A key already there (a batch
// retried after a lost commit cannot be, but an archived and restarted
// source can) is left alone.
func (r *replicator) shipKeys(ctx context.Context, tx pgx.Tx, keys []local.ImportedKey) error {
	if len(keys) == 0 {
		return nil
	}
	names := make([][]byte, len(keys))
	firsts, lasts := make([]int64, len(keys)), make([]int64, len(keys))
	retries := make([]int32, len(keys))
	for i, k := range keys {
		names[i], firsts[i], lasts[i], retries[i] = []byte(k.Key), int64(k.First), int64(k.Last), int32(k.Retries)
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+r.schema+".idempotency_keys (source, key, first_position, last_position, retries) "+
		"SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::bigint[], $5::integer[]) ON CONFLICT DO NOTHING",
		r.o.Source, names, firsts, lasts, retries)
	return err
}
