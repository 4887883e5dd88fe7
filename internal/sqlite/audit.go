package sqlite

import (
	"context"
	"database/sql"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

// AppendEvents appends events to the hash chain in one write transaction.
// Each event gets Seq (one more than the last stored), At (truncated to
// microseconds, now if zero), PrevHash and Hash = tes.ChainHash(PrevHash, e).
// The chain head is read inside the transaction, never cached, so several
// processes can share one database. The events are changed only when the
// append commits. An event without an action is EINVALID.
func (db *DB) AppendEvents(ctx context.Context, events ...*tes.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := db.now()
	work := make([]*tes.Event, len(events))
	for i, e := range events {
		if e == nil || e.Action == "" {
			return tes.Errorf(tes.EINVALID, "An audit event needs an action.")
		}
		c := *e
		if c.At.IsZero() {
			c.At = now
		}
		work[i] = &c
	}
	err := db.writeTx(ctx, "append events", func(tx *sql.Tx) error {
		return db.appendEventsTx(ctx, tx, work...)
	})
	if err != nil {
		return err
	}
	for i, e := range events {
		*e = *work[i]
	}
	return nil
}

// appendEventsTx links events to the chain head read inside tx and inserts
// them. It sets At to tes.AuditTime(At) and Seq, PrevHash and Hash.
func (db *DB) appendEventsTx(ctx context.Context, tx *sql.Tx, events ...*tes.Event) error {
	if len(events) == 0 {
		return nil
	}
	head, err := readChainHead(ctx, tx.StmtContext(ctx, db.ingest.auditHead))
	if err != nil {
		return err
	}
	insert := tx.StmtContext(ctx, db.ingest.audit)
	for _, e := range events {
		e.At = tes.AuditTime(e.At)
		head.link(e)
		if _, err := insert.ExecContext(ctx, e.Seq, micros(e.At), e.Actor, e.Action, e.Subject, e.Detail, e.PrevHash, e.Hash); err != nil {
			return err
		}
	}
	return nil
}

// Events returns up to limit events with Seq < before (0: from the newest),
// newest first. limit 0 means 50; outside 1..1000 it is EINVALID.
func (db *DB) Events(ctx context.Context, before int64, limit int) ([]*tes.Event, error) {
	n, err := storekit.PageLimit(limit)
	if err != nil {
		return nil, err
	}
	q := `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit`
	args := []any{}
	if before > 0 {
		q += ` WHERE seq < ?`
		args = append(args, before)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, n)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("events", err)
	}
	defer rows.Close()
	var out []*tes.Event
	for rows.Next() {
		var e tes.Event
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, wrap("events", err)
		}
		e.At = fromMicros(at)
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("events", err)
	}
	return out, nil
}
