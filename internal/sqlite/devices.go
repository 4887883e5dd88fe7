package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ tes.DeviceStore = (*DB)(nil)

const joinTokenColumns = `id, verifier, user, created_by, created_at, expires_at, used_at, revoked_at`

func scanJoinToken(sc scanner) (*tes.JoinToken, error) {
	var (
		t                tes.JoinToken
		created, expires int64
		used, revoked    sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Verifier, &t.User, &t.CreatedBy, &created, &expires, &used, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	t.UsedAt, t.RevokedAt = fromNullMicros(used), fromNullMicros(revoked)
	return &t, nil
}

const deviceColumns = `id, user, key_fp, cert, enrolled_at, revoked_at, revoked_by`

func scanDevice(sc scanner) (*tes.Device, error) {
	var (
		d        tes.Device
		enrolled int64
		revoked  sql.NullInt64
		by       sql.NullString
	)
	if err := sc.Scan(&d.ID, &d.User, &d.KeyFingerprint, &d.Cert, &enrolled, &revoked, &by); err != nil {
		return nil, err
	}
	d.EnrolledAt, d.RevokedAt, d.RevokedBy = fromMicros(enrolled), fromNullMicros(revoked), by.String
	return &d, nil
}

// CreateJoinToken stores t and appends "device.added"; see tes.DeviceStore.
// CreatedAt is set to now when zero.
func (db *DB) CreateJoinToken(ctx context.Context, t *tes.JoinToken) error {
	if len(t.ID) != 16 || len(t.Verifier) != 32 || t.User == "" || t.ExpiresAt.IsZero() || t.CreatedBy == "" {
		return tes.Errorf(tes.EINVALID, "A join token needs a 16-character ID, a 32-byte verifier, a user, its creator and an expiry.")
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = db.now()
	}
	created = tes.AuditTime(created)
	expires := tes.AuditTime(t.ExpiresAt)
	err := db.writeTx(ctx, "create join token", func(tx *sql.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, t.User).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return tes.Errorf(tes.ENOTFOUND, "User %s not found.", t.User)
		} else if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO join_tokens (id, verifier, user, created_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, t.ID, t.Verifier, t.User, t.CreatedBy, micros(created), micros(expires))
		if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
			return tes.Errorf(tes.ECONFLICT, "A join token with ID %s exists.", t.ID)
		} else if err != nil {
			return err
		}
		return db.appendEventsTx(ctx, tx, &tes.Event{At: created, Actor: t.CreatedBy, Action: "device.added",
			Subject: "device:" + t.ID, Detail: "user=" + t.User + " token_expires=" + expires.Format(time.RFC3339)})
	})
	if err != nil {
		return err
	}
	t.CreatedAt, t.ExpiresAt = created, expires
	return nil
}

// JoinToken returns one token or ENOTFOUND.
func (db *DB) JoinToken(ctx context.Context, id string) (*tes.JoinToken, error) {
	t, err := scanJoinToken(db.r.QueryRowContext(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "Join token %s not found.", id)
	} else if err != nil {
		return nil, wrap("join token", err)
	}
	return t, nil
}

// JoinTokens lists every token, newest first.
func (db *DB) JoinTokens(ctx context.Context) ([]*tes.JoinToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, wrap("join tokens", err)
	}
	defer rows.Close()
	var out []*tes.JoinToken
	for rows.Next() {
		t, err := scanJoinToken(rows)
		if err != nil {
			return nil, wrap("join tokens", err)
		}
		out = append(out, t)
	}
	return out, wrap("join tokens", rows.Err())
}

// EnrollDevice redeems the token d.ID and stores d; see tes.DeviceStore.
// EnrolledAt is set to now when zero.
func (db *DB) EnrollDevice(ctx context.Context, d *tes.Device) error {
	if d.ID == "" || d.User == "" || d.KeyFingerprint == "" || len(d.Cert) == 0 {
		return tes.Errorf(tes.EINVALID, "A device needs an ID, a user, a key fingerprint and a certificate.")
	}
	at := d.EnrolledAt
	if at.IsZero() {
		at = db.now()
	}
	at = tes.AuditTime(at)
	err := db.writeTx(ctx, "enroll device", func(tx *sql.Tx) error {
		t, err := scanJoinToken(tx.QueryRowContext(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens WHERE id = ?`, d.ID))
		if errors.Is(err, sql.ErrNoRows) {
			return tes.Errorf(tes.ENOTFOUND, "Join token %s not found.", d.ID)
		} else if err != nil {
			return err
		}
		switch {
		case t.User != d.User:
			return tes.Errorf(tes.EINVALID, "Join token %s is for user %s, not %s.", d.ID, t.User, d.User)
		case !t.UsedAt.IsZero():
			return tes.Errorf(tes.ECONFLICT, "Join token %s was already used.", d.ID)
		case !t.RevokedAt.IsZero():
			return tes.Errorf(tes.ECONFLICT, "Join token %s was cancelled.", d.ID)
		case !at.Before(t.ExpiresAt):
			return tes.Errorf(tes.EUNAUTHORIZED, "Join token %s expired at %s.", d.ID, t.ExpiresAt.Format(time.RFC3339))
		}
		// The guard, not the read above, makes a token single-use.
		res, err := tx.ExecContext(ctx, `UPDATE join_tokens SET used_at = ?
			WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`, micros(at), d.ID, micros(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return tes.Errorf(tes.ECONFLICT, "Join token %s was already used.", d.ID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, user, key_fp, cert, enrolled_at) VALUES (?, ?, ?, ?, ?)`,
			d.ID, d.User, d.KeyFingerprint, d.Cert, micros(at))
		if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE) {
			return tes.Errorf(tes.ECONFLICT, "The key %s is already enrolled for another device.", d.KeyFingerprint)
		} else if err != nil {
			return err
		}
		return db.appendEventsTx(ctx, tx, &tes.Event{At: at, Actor: d.User, Action: "device.enrolled",
			Subject: "device:" + d.ID, Detail: "user=" + d.User + " key=" + d.KeyFingerprint})
	})
	if err != nil {
		return err
	}
	d.EnrolledAt, d.RevokedAt, d.RevokedBy = at, time.Time{}, ""
	return nil
}

// Device returns one enrolled device or ENOTFOUND.
func (db *DB) Device(ctx context.Context, id string) (*tes.Device, error) {
	d, err := scanDevice(db.reads.device.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "Device %s not found.", id)
	} else if err != nil {
		return nil, wrap("device", err)
	}
	return d, nil
}

// Devices lists every enrolled device, most recently enrolled first.
func (db *DB) Devices(ctx context.Context) ([]*tes.Device, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices ORDER BY enrolled_at DESC, id`)
	if err != nil {
		return nil, wrap("devices", err)
	}
	defer rows.Close()
	var out []*tes.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, wrap("devices", err)
		}
		out = append(out, d)
	}
	return out, wrap("devices", rows.Err())
}

// RevokeDevice revokes a device or cancels its unused token; see
// tes.DeviceStore. A zero at means now.
func (db *DB) RevokeDevice(ctx context.Context, id, by string, at time.Time) error {
	if by == "" {
		return tes.Errorf(tes.EINVALID, "A revocation needs the name of who revokes.")
	}
	if at.IsZero() {
		at = db.now()
	}
	at = tes.AuditTime(at)
	id = strings.TrimSpace(id)
	return db.writeTx(ctx, "revoke device", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL`, micros(at), by, id)
		if err != nil {
			return err
		}
		what := "device"
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if d, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id)); err == nil {
				return tes.Errorf(tes.ECONFLICT, "Device %s was already revoked by %s at %s.", id, d.RevokedBy, d.RevokedAt.Format(time.RFC3339))
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			res, err := tx.ExecContext(ctx, `UPDATE join_tokens SET revoked_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`, micros(at), id)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				if _, err := scanJoinToken(tx.QueryRowContext(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens WHERE id = ?`, id)); err == nil {
					return tes.Errorf(tes.ECONFLICT, "The join token of device %s was already cancelled.", id)
				} else if errors.Is(err, sql.ErrNoRows) {
					return tes.Errorf(tes.ENOTFOUND, "Device %s not found.", id)
				} else {
					return err
				}
			}
			what = "join_token"
		}
		return db.appendEventsTx(ctx, tx, &tes.Event{At: at, Actor: by, Action: "device.revoked",
			Subject: "device:" + id, Detail: "revoked=" + what})
	})
}
