package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

const userColumns = `name, role, password_hash, disabled, must_change_pass, failed_logins, locked_until, created_at, updated_at`

func scanUser(row pgx.Row) (*tes.User, error) {
	var (
		u      tes.User
		role   string
		locked *time.Time
	)
	if err := row.Scan(&u.Name, &role, &u.PasswordHash, &u.Disabled, &u.MustChangePass, &u.FailedLogins, &locked, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return nil, err
	}
	u.Role = tes.Role(role)
	u.LockedUntil = fromNullTS(locked)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return &u, nil
}

// CreateUser adds u and appends events, in one transaction. It sets
// CreatedAt and UpdatedAt to now when they are zero. Errors: EINVALID for a
// bad name or role, ECONFLICT if the name is taken (on any node). Names are
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
	created, updated = ts(created), ts(updated)
	err := db.writeTx(ctx, "create user", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (name) DO NOTHING`,
			u.Name, string(u.Role), u.PasswordHash, u.Disabled, u.MustChangePass, u.FailedLogins,
			nullTS(u.LockedUntil), created, updated)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tes.Errorf(tes.ECONFLICT, "User %q already exists.", u.Name)
		}
		return appendChangeEvents(ctx, tx, tes.StageEvents(events, db.now()))
	})
	if err != nil {
		return err
	}
	u.CreatedAt, u.UpdatedAt = created, updated
	return nil
}

// User returns one user or ENOTFOUND.
func (db *DB) User(ctx context.Context, name string) (*tes.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "User %q not found.", name)
	} else if err != nil {
		return nil, wrap("user", err)
	}
	return u, nil
}

// Users lists every user by name (byte order).
func (db *DB) Users(ctx context.Context) ([]*tes.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
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

// UpdateUser reads the user, calls fn and writes the result in one
// transaction with the row locked (SELECT ... FOR UPDATE), so concurrent
// updates on any node (two failed sign-ins at once) do not lose each
// other's changes. An error from fn aborts the update and is returned as
// is. fn may not rename the user (EINVALID). If fn leaves UpdatedAt
// unchanged, it is set to now. ENOTFOUND if there is no such user. In the
// same transaction, the events that have an Action after fn are appended
// to the audit chain, and a changed password or a disabled account deletes
// the user's web sessions (signed out everywhere).
func (db *DB) UpdateUser(ctx context.Context, name string, fn func(*tes.User) error, events ...*tes.Event) error {
	return db.writeTx(ctx, "update user", func(tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
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
		_, err = tx.Exec(ctx, `UPDATE users SET role = $1, password_hash = $2, disabled = $3, must_change_pass = $4,
			failed_logins = $5, locked_until = $6, created_at = $7, updated_at = $8 WHERE name = $9`,
			string(u.Role), u.PasswordHash, u.Disabled, u.MustChangePass, u.FailedLogins,
			nullTS(u.LockedUntil), ts(u.CreatedAt), ts(u.UpdatedAt), name)
		if err != nil {
			return err
		}
		if signOut {
			if _, err := tx.Exec(ctx, `DELETE FROM web_sessions WHERE user_name = $1`, name); err != nil {
				return err
			}
		}
		return appendChangeEvents(ctx, tx, tes.StageEvents(events, db.now()))
	})
}

// CountUsers returns the number of accounts.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, wrap("count users", err)
	}
	return n, nil
}
