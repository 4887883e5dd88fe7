package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

// chainHead is the last event of the audit chain as read, locked, inside
// the current transaction; it is never kept across transactions, because
// another node may append between them.
type chainHead struct {
	seq  int64
	hash []byte // nil before the first event
}

func scanHead(row pgx.Row) (chainHead, error) {
	var h chainHead
	err := row.Scan(&h.seq, &h.hash)
	return h, err
}

// lockHead reads the chain head and holds its row lock until the
// transaction ends: the first statement of every appending transaction.
func lockHead(ctx context.Context, tx pgx.Tx) (chainHead, error) {
	return scanHead(tx.QueryRow(ctx, sqlLockHead))
}

// link sets e's Seq, PrevHash and Hash to follow h and advances h to e.
func (h *chainHead) link(e *tes.Event) {
	e.Seq = h.seq + 1
	e.PrevHash = h.hash
	e.Hash = tes.ChainHash(h.hash, e)
	h.seq, h.hash = e.Seq, e.Hash
}

// AppendEvents appends events to the hash chain in one transaction. Each
// event gets Seq (one more than the last stored), At (truncated to
// microseconds, now if zero), PrevHash and Hash = tes.ChainHash(PrevHash,
// e). The head is read under its row lock, so appends from several nodes
// form one chain. The events are changed only when the append commits. An
// event without an action is EINVALID.
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
	err := db.writeTx(ctx, "append events", func(tx pgx.Tx) error {
		head, err := lockHead(ctx, tx)
		if err != nil {
			return err
		}
		return appendEventsTx(ctx, tx, &head, work...)
	})
	if err != nil {
		return err
	}
	for i, e := range events {
		*e = *work[i]
	}
	return nil
}

// appendChangeEvents locks the chain head and appends events in tx; none
// is no work and takes no lock. It is the last step of a change's
// transaction, so the head is held only until the commit.
func appendChangeEvents(ctx context.Context, tx pgx.Tx, events []*tes.Event) error {
	if len(events) == 0 {
		return nil
	}
	head, err := lockHead(ctx, tx)
	if err != nil {
		return err
	}
	return appendEventsTx(ctx, tx, &head, events...)
}

// appendEventsTx links events to head, which the caller locked in tx,
// inserts them and moves the stored head. It sets At to tes.AuditTime(At)
// and Seq, PrevHash and Hash.
func appendEventsTx(ctx context.Context, tx pgx.Tx, head *chainHead, events ...*tes.Event) error {
	old := head.seq
	n := len(events)
	seqs, ats := make([]int64, n), make([]time.Time, n)
	actors, actions, subjects, details := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prevs, hashes := make([][]byte, n), make([][]byte, n)
	for i, e := range events {
		e.At = tes.AuditTime(e.At)
		head.link(e)
		seqs[i], ats[i], actors[i], actions[i], subjects[i], details[i] = e.Seq, e.At, e.Actor, e.Action, e.Subject, e.Detail
		prevs[i], hashes[i] = e.PrevHash, e.Hash
	}
	b := &pgx.Batch{}
	b.Queue(sqlInsertEvents, int64Array(seqs), timeArray(ats), textArray(actors), textArray(actions), textArray(subjects),
		textArray(details), byteaArray(prevs), byteaArray(hashes))
	b.Queue(sqlMoveHead, head.seq, head.hash, old)
	return execBatch(ctx, tx, b, 1)
}

const eventColumns = `seq, at, actor, action, subject, detail, prev_hash, hash`

func scanEvent(row pgx.Row) (*tes.Event, error) {
	var e tes.Event
	if err := row.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
		return nil, err
	}
	e.At = e.At.UTC()
	return &e, nil
}

// Events returns up to limit events with Seq < before (0: from the newest),
// newest first. limit 0 means 50; outside 1..1000 it is EINVALID.
func (db *DB) Events(ctx context.Context, before int64, limit int) ([]*tes.Event, error) {
	n, err := storekit.PageLimit(limit)
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + eventColumns + ` FROM audit`
	var p params
	if before > 0 {
		q += ` WHERE seq < ` + p.add(before)
	}
	q += ` ORDER BY seq DESC LIMIT ` + p.add(n)
	rows, err := db.pool.Query(ctx, q, p...)
	if err != nil {
		return nil, wrap("events", err)
	}
	defer rows.Close()
	var out []*tes.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, wrap("events", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("events", err)
	}
	return out, nil
}
