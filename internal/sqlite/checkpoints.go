package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tes-traffic/tes"
)

var _ tes.CheckpointStore = (*DB)(nil)

// AuditHead returns the newest event's seq and hash (0, nil when empty)
// from a fresh read snapshot, which includes every committed append.
func (db *DB) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := db.writeTx(ctx, "add checkpoint", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, at, key_fp, public_key, signature)
			SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM audit WHERE seq = ? AND hash = ?)`,
			c.Seq, c.Hash, micros(at), c.KeyFingerprint, c.PublicKey, c.Signature, c.Seq, c.Hash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return tes.Errorf(tes.ECONFLICT, "The audit log has no event %d with that hash.", c.Seq)
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return err
	}
	c.ID, c.At = id, at
	return nil
}

// Checkpoints returns every checkpoint, oldest first.
func (db *DB) Checkpoints(ctx context.Context) ([]*tes.Checkpoint, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, seq, hash, at, key_fp, public_key, signature FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, wrap("checkpoints", err)
	}
	defer rows.Close()
	var out []*tes.Checkpoint
	for rows.Next() {
		var c tes.Checkpoint
		var at int64
		if err := rows.Scan(&c.ID, &c.Seq, &c.Hash, &at, &c.KeyFingerprint, &c.PublicKey, &c.Signature); err != nil {
			return nil, wrap("checkpoints", err)
		}
		c.At = fromMicros(at)
		out = append(out, &c)
	}
	return out, wrap("checkpoints", rows.Err())
}

// EventsAfter returns up to limit events with seq > after, in seq order.
func (db *DB) EventsAfter(ctx context.Context, after int64, limit int) ([]*tes.Event, error) {
	if limit < 1 || limit > 10000 {
		return nil, tes.Errorf(tes.EINVALID, "The page size must be 1 to 10000.")
	}
	rows, err := db.r.QueryContext(ctx, `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, wrap("events after", err)
	}
	defer rows.Close()
	out := make([]*tes.Event, 0, min(limit, 1024))
	for rows.Next() {
		var e tes.Event
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, wrap("events after", err)
		}
		e.At = fromMicros(at)
		out = append(out, &e)
	}
	return out, wrap("events after", rows.Err())
}
