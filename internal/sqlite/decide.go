package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// Decide applies d in one write transaction guarded on the violation being
// PENDING; see tes.ViolationStore.
//
// Approval computes the points with rules from the speed stored in the
// row, never from the caller, and adds them to the plate's driver record in
// the same transaction: one row is read, decrypted, updated and sealed
// again. Errors: EINVALID for a decision without a decider or a rejection
// without a known reason, ENOTFOUND for an unknown id, ECONFLICT (saying who
// decided and when) for a violation that is no longer pending.
func (db *DB) Decide(ctx context.Context, d tes.Decision, rules tes.Rules) (*tes.Decided, error) {
	if d.By == "" {
		return nil, tes.Errorf(tes.EINVALID, "A decision needs the name of the officer who makes it.")
	}
	var reason, note any
	if !d.Approve {
		if _, err := tes.ParseRejectReason(string(d.Reason)); err != nil {
			return nil, err
		}
		reason, note = string(d.Reason), nullString(d.Note)
	}
	at := d.At
	if at.IsZero() {
		at = db.now()
	}
	at = tes.AuditTime(at)

	var out *tes.Decided
	err := db.writeTx(ctx, "decide", func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `SELECT `+violationColumns+` FROM violations v`+violationJoin+` WHERE v.id = ?`, d.ViolationID)
		v, plateKey, err := db.scanViolation(row)
		if errors.Is(err, sql.ErrNoRows) {
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
		res, err := tx.ExecContext(ctx, `UPDATE violations
			SET status = ?, decided_by = ?, decided_at = ?, reject_reason = ?, reject_note = ?, points_applied = ?
			WHERE id = ? AND status = 'PENDING'`,
			string(status), d.By, micros(at), reason, note, points, d.ViolationID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// Unreachable while this connection holds the write lock, but
			// the guard, not the read above, is what makes a decision once.
			v, _, err := db.scanViolation(tx.QueryRowContext(ctx, `SELECT `+violationColumns+` FROM violations v`+violationJoin+` WHERE v.id = ?`, d.ViolationID))
			if err != nil {
				return err
			}
			return decidedConflict(v)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE violation_counts
			SET n = n + CASE status WHEN 'PENDING' THEN -1 ELSE 1 END
			WHERE status IN ('PENDING', ?)`, string(status)); err != nil {
			return err
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
		return db.appendEventsTx(ctx, tx, ev)
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

// driverRecord is the sealed content of a drivers row.
type driverRecord struct {
	Plate  string `json:"plate"`
	Points int    `json:"points"`
}

// addPoints adds points to the plate's record inside tx, creating the record
// at zero if there is none, and returns the new total. It touches one row:
// the cost of an approval does not grow with the number of drivers.
func (db *DB) addPoints(ctx context.Context, tx *sql.Tx, plateKey []byte, plate string, points int, at time.Time) (int, error) {
	rec := driverRecord{Plate: plate}
	var enc []byte
	err := tx.QueryRowContext(ctx, `SELECT record_enc FROM drivers WHERE plate_key = ?`, plateKey).Scan(&enc)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, err
	default:
		got, err := db.openDriver(enc, plateKey)
		if err != nil {
			return 0, err
		}
		if got.Plate != plate {
			return 0, fmt.Errorf("driver record under the key of %q holds plate %q", plate, got.Plate)
		}
		rec = got
	}
	rec.Points += points
	enc, err = db.sealDriver(rec, plateKey)
	if err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO drivers (plate_key, record_enc, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (plate_key) DO UPDATE SET record_enc = excluded.record_enc, updated_at = excluded.updated_at`,
		plateKey, enc, micros(at))
	if err != nil {
		return 0, err
	}
	return rec.Points, nil
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
