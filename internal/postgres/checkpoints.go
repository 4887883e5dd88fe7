package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
)

var _ tes.CheckpointStore = (*DB)(nil)

// AuditHead returns the newest event's seq and hash (0, nil when empty),
// read from the log itself in a fresh snapshot, which includes every
// append any node committed.
func (db *DB) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := db.pool.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, nil
	} else if err != nil {
		return 0, nil, wrap("audit head", err)
	}
	return seq, hash, nil
}

// AddCheckpoint stores c, guarded on its event being in the log; see
// tes.CheckpointStore.
func (db *DB) AddCheckpoint(ctx context.Context, c *tes.Checkpoint) error {
	if c.Seq <= 0 || len(c.Hash) != 32 || c.At.IsZero() || c.KeyFingerprint == "" || len(c.PublicKey) == 0 || len(c.Signature) != 64 {
		return tes.Errorf(tes.EINVALID, "A checkpoint needs a seq, a 32-byte hash, a time, a key and a 64-byte signature.")
	}
	at := tes.AuditTime(c.At)
	var id int64
	err := db.pool.QueryRow(ctx, `INSERT INTO audit_checkpoints (seq, hash, at, key_fp, public_key, signature)
		SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM audit WHERE seq = $1 AND hash = $2)
		RETURNING id`, c.Seq, c.Hash, at, c.KeyFingerprint, c.PublicKey, c.Signature).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return tes.Errorf(tes.ECONFLICT, "The audit log has no event %d with that hash.", c.Seq)
	} else if err != nil {
		return wrap("add checkpoint", err)
	}
	c.ID, c.At = id, at
	return nil
}

const checkpointColumns = `id, seq, hash, at, key_fp, public_key, signature`

func scanCheckpoint(row pgx.Row) (*tes.Checkpoint, error) {
	var c tes.Checkpoint
	if err := row.Scan(&c.ID, &c.Seq, &c.Hash, &c.At, &c.KeyFingerprint, &c.PublicKey, &c.Signature); err != nil {
		return nil, err
	}
	c.At = c.At.UTC()
	return &c, nil
}

// Checkpoints returns every checkpoint, oldest first.
func (db *DB) Checkpoints(ctx context.Context) ([]*tes.Checkpoint, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, wrap("checkpoints", err)
	}
	defer rows.Close()
	var out []*tes.Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, wrap("checkpoints", err)
		}
		out = append(out, c)
	}
	return out, wrap("checkpoints", rows.Err())
}

// EventsAfter returns up to limit events with seq > after, in seq order,
// as stored. limit outside 1..10000 is EINVALID.
func (db *DB) EventsAfter(ctx context.Context, after int64, limit int) ([]*tes.Event, error) {
	if limit < 1 || limit > 10000 {
		return nil, tes.Errorf(tes.EINVALID, "The page size must be 1 to 10000.")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, wrap("events after", err)
	}
	defer rows.Close()
	out := make([]*tes.Event, 0, min(limit, 1024))
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, wrap("events after", err)
		}
		out = append(out, e)
	}
	return out, wrap("events after", rows.Err())
}
