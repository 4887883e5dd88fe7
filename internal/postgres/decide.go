package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
)

// Decide applies d in one transaction guarded on the violation being
// PENDING; see tes.ViolationStore.
//
// The transaction locks, in the store's lock order, the audit head, the
// violation row (SELECT ... FOR UPDATE) and the driver row, so two officers
// deciding the same violation on two nodes at once are serialised by the
// database: the second waits, then reads the first one's committed decision
// and gets ECONFLICT saying who decided and when. The UPDATE is guarded
// with WHERE status = 'PENDING' besides. Approval computes the points with
// rules from the speed stored in the row and adds them to the driver's
// record in the same transaction. Errors: EINVALID for a decision without a
// decider or a rejection without a known reason, ENOTFOUND for an unknown
// id, ECONFLICT for a violation that is no longer pending.
func (db *DB) Decide(ctx context.Context, d tes.Decision, rules tes.Rules) (*tes.Decided, error) {
	if d.By == "" {
		return nil, tes.Errorf(tes.EINVALID, "A decision needs the name of the officer who makes it.")
	}
	var reason, note *string
	if !d.Approve {
		if _, err := tes.ParseRejectReason(string(d.Reason)); err != nil {
			return nil, err
		}
		reason, note = nullString(string(d.Reason)), nullString(d.Note)
	}
	at := d.At
	if at.IsZero() {
		at = db.now()
	}
	at = tes.AuditTime(at)

	var out *tes.Decided
	err := db.writeTx(ctx, "decide", func(tx pgx.Tx) error {
		head, err := lockHead(ctx, tx)
		if err != nil {
			return err
		}
		row := tx.QueryRow(ctx, `SELECT `+violationColumns+` FROM violations v`+violationJoin+` WHERE v.id = $1 FOR UPDATE OF v`, d.ViolationID)
		v, plateKey, err := db.scanViolation(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return tes.Errorf(tes.ENOTFOUND, "Violation %d not found.", d.ViolationID)
		} else if err != nil {
			return err
		}
		if v.Status != tes.StatusPending {
			return decidedConflict(v)
		}
		status, points := tes.StatusRejected, 0
		if d.Approve {
			status, points = tes.StatusApproved, rules.Points(v.Speed, v.SpeedLimit)
		}
		tag, err := tx.Exec(ctx, `UPDATE violations
			SET status = $1, decided_by = $2, decided_at = $3, reject_reason = $4, reject_note = $5, points_applied = $6
			WHERE id = $7 AND status = 'PENDING'`,
			string(status), d.By, at, reason, note, points, d.ViolationID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			// Unreachable while the row is locked, but the guard, not the
			// read above, is what makes a decision once.
			v, _, err := db.scanViolation(tx.QueryRow(ctx, `SELECT `+violationColumns+` FROM violations v`+violationJoin+` WHERE v.id = $1`, d.ViolationID))
			if err != nil {
				return err
			}
			return decidedConflict(v)
		}
		v.Status, v.DecidedBy, v.DecidedAt, v.PointsApplied = status, d.By, at, points
		out = &tes.Decided{Violation: v}
		ev := &tes.Event{At: at, Actor: d.By, Subject: "violation:" + strconv.FormatInt(v.ID, 10)}
		if d.Approve {
			total, err := db.addPoints(ctx, tx, plateKey, v.Plate, points, at)
			if err != nil {
				return err
			}
			out.DriverTotal = total
			ev.Action = "violation.approved"
			ev.Detail = fmt.Sprintf("points=%d total=%d", points, total)
		} else {
			v.RejectReason, v.RejectNote = d.Reason, d.Note
			ev.Action = "violation.rejected"
			ev.Detail = fmt.Sprintf("reason=%s note=%q", d.Reason, d.Note)
		}
		if _, err := tx.Exec(ctx, `UPDATE violation_counts
			SET n = n + CASE status WHEN 'PENDING' THEN -1 ELSE 1 END
			WHERE status IN ('PENDING', $1)`, string(status)); err != nil {
			return err
		}
		return appendEventsTx(ctx, tx, &head, ev)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decidedConflict(v *tes.Violation) error {
	return tes.Errorf(tes.ECONFLICT, "Violation %d was already %s by %s at %s.",
		v.ID, strings.ToLower(string(v.Status)), v.DecidedBy, v.DecidedAt.UTC().Format(time.RFC3339))
}

// driverRecord is the sealed content of a drivers row, the same JSON as
// internal/sqlite's.
type driverRecord struct {
	Plate  string `json:"plate"`
	Points int    `json:"points"`
}

// addPoints adds points to the plate's record inside tx, creating it at
// zero if there is none, and returns the new total. The row is locked
// (FOR UPDATE) from the read to the commit, so concurrent approvals of
// one plate on several nodes add up exactly; a record that another node
// creates between the read and the insert is found by reading again.
func (db *DB) addPoints(ctx context.Context, tx pgx.Tx, plateKey []byte, plate string, points int, at time.Time) (int, error) {
	for range 3 {
		var enc []byte
		err := tx.QueryRow(ctx, `SELECT record_enc FROM drivers WHERE plate_key = $1 FOR UPDATE`, plateKey).Scan(&enc)
		if errors.Is(err, pgx.ErrNoRows) {
			enc, err := db.sealDriver(driverRecord{Plate: plate, Points: points}, plateKey)
			if err != nil {
				return 0, err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO drivers (plate_key, record_enc, updated_at) VALUES ($1, $2, $3)
				ON CONFLICT (plate_key) DO NOTHING`, plateKey, enc, at)
			if err != nil {
				return 0, err
			}
			if tag.RowsAffected() == 1 {
				return points, nil
			}
			continue // created meanwhile: lock and add to it
		} else if err != nil {
			return 0, err
		}
		rec, err := db.openDriver(enc, plateKey)
		if err != nil {
			return 0, err
		}
		if rec.Plate != plate {
			return 0, fmt.Errorf("driver record under the key of %q holds plate %q", plate, rec.Plate)
		}
		rec.Points += points
		if enc, err = db.sealDriver(rec, plateKey); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE drivers SET record_enc = $1, updated_at = $2 WHERE plate_key = $3`, enc, at, plateKey); err != nil {
			return 0, err
		}
		return rec.Points, nil
	}
	return 0, fmt.Errorf("driver record of %q: neither found nor created", plate)
}

// The record is sealed with its own plate key as additional data, so a
// sealed record copied to another plate's row fails to open.
func (db *DB) sealDriver(rec driverRecord, plateKey []byte) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return db.keys.Seal(b, plateKey), nil
}

func (db *DB) openDriver(enc, plateKey []byte) (driverRecord, error) {
	var rec driverRecord
	b, err := db.keys.Open(enc, plateKey)
	if err != nil {
		return rec, fmt.Errorf("driver record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("driver record: %w", err)
	}
	return rec, nil
}
