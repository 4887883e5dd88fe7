package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

const userColumns = `name, role, password_hash, disabled, must_change_pass, failed_logins, locked_until, created_at, updated_at`

func scanUser(sc scanner) (*tes.User, error) {
	var (
		u                  tes.User
		role               string
		disabled, mustChg  int64
		locked             sql.NullInt64
		created, updatedAt int64
	)
	if err := sc.Scan(&u.Name, &role, &u.PasswordHash, &disabled, &mustChg, &u.FailedLogins, &locked, &created, &updatedAt); err != nil {
		return nil, err
	}
	u.Role = tes.Role(role)
	u.Disabled = disabled != 0
	u.MustChangePass = mustChg != 0
	u.LockedUntil = fromNullMicros(locked)
	u.CreatedAt = fromMicros(created)
	u.UpdatedAt = fromMicros(updatedAt)
	return &u, nil
}

// CreateUser adds u and appends events, in one write transaction. It sets
// CreatedAt and UpdatedAt to now when they are zero. Errors: EINVALID for a
// bad name or role, ECONFLICT if the name is taken. Names are
// case-sensitive.
func (db *DB) CreateUser(ctx context.Context, u *tes.User, events ...*tes.Event) error {
	if err := storekit.ValidateUser(u); err != nil {
		return err
	}
	now := tes.AuditTime(db.now())
	created, updated := u.CreatedAt, u.UpdatedAt
	if created.IsZero() {
		created = now
	}
	if updated.IsZero() {
		updated = created
	}
	err := db.writeTx(ctx, "create user", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO NOTHING`,
			u.Name, string(u.Role), u.PasswordHash, boolInt(u.Disabled), boolInt(u.MustChangePass), u.FailedLogins,
			nullMicros(u.LockedUntil), micros(created), micros(updated))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return tes.Errorf(tes.ECONFLICT, "User %q already exists.", u.Name)
		}
		return db.appendEventsTx(ctx, tx, tes.StageEvents(events, db.now())...)
	})
	if err != nil {
		return err
	}
	u.CreatedAt, u.UpdatedAt = created, updated
	return nil
}

// User returns one user or ENOTFOUND.
func (db *DB) User(ctx context.Context, name string) (*tes.User, error) {
	u, err := scanUser(db.reads.user.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "User %q not found.", name)
	} else if err != nil {
		return nil, wrap("user", err)
	}
	return u, nil
}

// Users lists every user by name.
func (db *DB) Users(ctx context.Context) ([]*tes.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, wrap("users", err)
	}
	defer rows.Close()
	var out []*tes.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap("users", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("users", err)
	}
	return out, nil
}

// UpdateUser reads the user, calls fn and writes the result, all in one
// write transaction, so concurrent updates (two failed sign-ins at once)
// do not lose each other's changes. An error from fn aborts the update and
// is returned as is. fn may not rename the user (EINVALID). If fn leaves
// UpdatedAt unchanged, it is set to now. ENOTFOUND if there is no such user.
// In the same transaction, the events that have an Action after fn are
// appended to the audit chain, and a changed password or a disabled account
// deletes the user's web sessions (signed out everywhere).
func (db *DB) UpdateUser(ctx context.Context, name string, fn func(*tes.User) error, events ...*tes.Event) error {
	return db.writeTx(ctx, "update user", func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return tes.Errorf(tes.ENOTFOUND, "User %q not found.", name)
		} else if err != nil {
			return err
		}
		signOut, fnErr, err := storekit.UpdateUser(u, fn, db.now())
		if fnErr != nil {
			return userError{fnErr}
		} else if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET role = ?, password_hash = ?, disabled = ?, must_change_pass = ?,
			failed_logins = ?, locked_until = ?, created_at = ?, updated_at = ? WHERE name = ?`,
			string(u.Role), u.PasswordHash, boolInt(u.Disabled), boolInt(u.MustChangePass), u.FailedLogins,
			nullMicros(u.LockedUntil), micros(u.CreatedAt), micros(u.UpdatedAt), name)
		if err != nil {
			return err
		}
		if signOut {
			if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE user = ?`, name); err != nil {
				return err
			}
		}
		return db.appendEventsTx(ctx, tx, tes.StageEvents(events, db.now())...)
	})
}

// userError carries an error from an UpdateUser callback through writeTx
// without the store's wrapping: it is the caller's own error.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

// CountUsers returns the number of accounts.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, wrap("count users", err)
	}
	return n, nil
}
