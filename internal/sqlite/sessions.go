package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"

	"github.com/tes-traffic/tes"
	sqlite3 "modernc.org/sqlite/lib"
)

func checkIDHash(h []byte) error {
	if len(h) != sha256.Size {
		return tes.Errorf(tes.EINVALID, "A session or token is stored by its 32-byte SHA-256.")
	}
	return nil
}

// CreateWebSession stores s; CreatedAt and LastSeen default to now. Errors:
// EINVALID for an id hash that is not 32 bytes, ENOTFOUND for an unknown
// user, ECONFLICT for an id hash already in use.
func (db *DB) CreateWebSession(ctx context.Context, s *tes.WebSession) error {
	if err := checkIDHash(s.IDHash); err != nil {
		return err
	}
	now := tes.AuditTime(db.now())
	created, seen := s.CreatedAt, s.LastSeen
	if created.IsZero() {
		created = now
	}
	if seen.IsZero() {
		seen = created
	}
	res, err := db.exec(ctx, "create session", `INSERT INTO web_sessions (id_hash, user, csrf_token, created_at, last_seen)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id_hash) DO NOTHING`,
		s.IDHash, s.User, s.CSRFToken, micros(created), micros(seen))
	if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return tes.Errorf(tes.ENOTFOUND, "User %q not found.", s.User)
	} else if err != nil {
		return wrap("create session", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("create session", err)
	} else if n == 0 {
		return tes.Errorf(tes.ECONFLICT, "The session id is already in use.")
	}
	s.CreatedAt, s.LastSeen = created, seen
	return nil
}

// WebSession returns the session with the given id hash or ENOTFOUND.
func (db *DB) WebSession(ctx context.Context, idHash []byte) (*tes.WebSession, error) {
	var s tes.WebSession
	var created, seen int64
	err := db.reads.webSession.QueryRowContext(ctx, idHash).
		Scan(&s.IDHash, &s.User, &s.CSRFToken, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "Session not found.")
	} else if err != nil {
		return nil, wrap("session", err)
	}
	s.CreatedAt, s.LastSeen = fromMicros(created), fromMicros(seen)
	return &s, nil
}

// TouchWebSession records activity on a session at time at; ENOTFOUND if
// it does not exist (signed out meanwhile).
func (db *DB) TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error {
	res, err := db.exec(ctx, "touch session", `UPDATE web_sessions SET last_seen = ? WHERE id_hash = ?`, micros(at), idHash)
	if err != nil {
		return wrap("touch session", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("touch session", err)
	} else if n == 0 {
		return tes.Errorf(tes.ENOTFOUND, "Session not found.")
	}
	return nil
}

// DeleteWebSession signs one session out. Deleting a session that is
// already gone is not an error: signing out twice (two tabs) must succeed.
func (db *DB) DeleteWebSession(ctx context.Context, idHash []byte) error {
	if _, err := db.exec(ctx, "delete session", `DELETE FROM web_sessions WHERE id_hash = ?`, idHash); err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// DeleteUserWebSessions signs a user out everywhere; a user with no
// sessions is not an error.
func (db *DB) DeleteUserWebSessions(ctx context.Context, user string) error {
	if _, err := db.exec(ctx, "delete sessions", `DELETE FROM web_sessions WHERE user = ?`, user); err != nil {
		return wrap("delete sessions", err)
	}
	return nil
}

// CreateAPIToken stores t and appends events in one write transaction;
// CreatedAt defaults to now. Errors as for CreateWebSession, plus EINVALID
// for an empty name.
func (db *DB) CreateAPIToken(ctx context.Context, t *tes.APIToken, events ...*tes.Event) error {
	if err := checkIDHash(t.IDHash); err != nil {
		return err
	}
	if t.Name == "" {
		return tes.Errorf(tes.EINVALID, "An API token needs a name.")
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = tes.AuditTime(db.now())
	}
	err := db.writeTx(ctx, "create token", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (id_hash, name, user, created_at, last_used)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (id_hash) DO NOTHING`,
			t.IDHash, t.Name, t.User, micros(created), nullMicros(t.LastUsed))
		if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
			return tes.Errorf(tes.ENOTFOUND, "User %q not found.", t.User)
		} else if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return tes.Errorf(tes.ECONFLICT, "The token is already in use.")
		}
		return db.appendEventsTx(ctx, tx, tes.StageEvents(events, db.now())...)
	})
	if err != nil {
		return err
	}
	t.CreatedAt = created
	return nil
}

const tokenColumns = `id_hash, name, user, created_at, last_used`

func scanToken(sc scanner) (*tes.APIToken, error) {
	var t tes.APIToken
	var created int64
	var used sql.NullInt64
	if err := sc.Scan(&t.IDHash, &t.Name, &t.User, &created, &used); err != nil {
		return nil, err
	}
	t.CreatedAt, t.LastUsed = fromMicros(created), fromNullMicros(used)
	return &t, nil
}

// APIToken returns the token with the given hash or ENOTFOUND.
func (db *DB) APIToken(ctx context.Context, idHash []byte) (*tes.APIToken, error) {
	t, err := scanToken(db.reads.apiToken.QueryRowContext(ctx, idHash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "API token not found.")
	} else if err != nil {
		return nil, wrap("token", err)
	}
	return t, nil
}

// APITokens lists every token by name, then by creation time.
func (db *DB) APITokens(ctx context.Context) ([]*tes.APIToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY name, created_at, id_hash`)
	if err != nil {
		return nil, wrap("tokens", err)
	}
	defer rows.Close()
	var out []*tes.APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, wrap("tokens", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("tokens", err)
	}
	return out, nil
}

// DeleteAPIToken revokes a token; ENOTFOUND if there is no such token, so
// an admin revoking from a stale list learns it was already gone.
func (db *DB) DeleteAPIToken(ctx context.Context, idHash []byte, events ...*tes.Event) error {
	return db.writeTx(ctx, "delete token", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE id_hash = ?`, idHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return tes.Errorf(tes.ENOTFOUND, "API token not found.")
		}
		return db.appendEventsTx(ctx, tx, tes.StageEvents(events, db.now())...)
	})
}
