package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
)

// SQLSTATE foreign_key_violation: a session or token for a missing user.
const codeForeignKey = "23503"

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
	created, seen = ts(created), ts(seen)
	tag, err := db.pool.Exec(ctx, `INSERT INTO web_sessions (id_hash, user_name, csrf_token, created_at, last_seen)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_hash) DO NOTHING`,
		s.IDHash, s.User, s.CSRFToken, created, seen)
	if pgCode(err) == codeForeignKey {
		return tes.Errorf(tes.ENOTFOUND, "User %q not found.", s.User)
	} else if err != nil {
		return wrap("create session", err)
	}
	if tag.RowsAffected() == 0 {
		return tes.Errorf(tes.ECONFLICT, "The session id is already in use.")
	}
	s.CreatedAt, s.LastSeen = created, seen
	return nil
}

// WebSession returns the session with the given id hash or ENOTFOUND.
func (db *DB) WebSession(ctx context.Context, idHash []byte) (*tes.WebSession, error) {
	var s tes.WebSession
	err := db.pool.QueryRow(ctx, `SELECT id_hash, user_name, csrf_token, created_at, last_seen FROM web_sessions WHERE id_hash = $1`, idHash).
		Scan(&s.IDHash, &s.User, &s.CSRFToken, &s.CreatedAt, &s.LastSeen)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "Session not found.")
	} else if err != nil {
		return nil, wrap("session", err)
	}
	s.CreatedAt, s.LastSeen = s.CreatedAt.UTC(), s.LastSeen.UTC()
	return &s, nil
}

// TouchWebSession records activity on a session at time at; ENOTFOUND if
// it does not exist (signed out meanwhile).
func (db *DB) TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE web_sessions SET last_seen = $1 WHERE id_hash = $2`, ts(at), idHash)
	if err != nil {
		return wrap("touch session", err)
	}
	if tag.RowsAffected() == 0 {
		return tes.Errorf(tes.ENOTFOUND, "Session not found.")
	}
	return nil
}

// DeleteWebSession signs one session out. Deleting a session that is
// already gone is not an error: signing out twice (two tabs) must succeed.
func (db *DB) DeleteWebSession(ctx context.Context, idHash []byte) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM web_sessions WHERE id_hash = $1`, idHash); err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// DeleteUserWebSessions signs a user out everywhere; a user with no
// sessions is not an error.
func (db *DB) DeleteUserWebSessions(ctx context.Context, user string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM web_sessions WHERE user_name = $1`, user); err != nil {
		return wrap("delete sessions", err)
	}
	return nil
}

// CreateAPIToken stores t and appends events in one transaction;
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
		created = db.now()
	}
	created = ts(created)
	err := db.writeTx(ctx, "create token", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO api_tokens (id_hash, name, user_name, created_at, last_used)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_hash) DO NOTHING`,
			t.IDHash, t.Name, t.User, created, nullTS(t.LastUsed))
		if pgCode(err) == codeForeignKey {
			return tes.Errorf(tes.ENOTFOUND, "User %q not found.", t.User)
		} else if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tes.Errorf(tes.ECONFLICT, "The token is already in use.")
		}
		return appendChangeEvents(ctx, tx, tes.StageEvents(events, db.now()))
	})
	if err != nil {
		return err
	}
	t.CreatedAt = created
	return nil
}

const tokenColumns = `id_hash, name, user_name, created_at, last_used`

func scanToken(row pgx.Row) (*tes.APIToken, error) {
	var t tes.APIToken
	var used *time.Time
	if err := row.Scan(&t.IDHash, &t.Name, &t.User, &t.CreatedAt, &used); err != nil {
		return nil, err
	}
	t.CreatedAt, t.LastUsed = t.CreatedAt.UTC(), fromNullTS(used)
	return &t, nil
}

// APIToken returns the token with the given hash or ENOTFOUND.
func (db *DB) APIToken(ctx context.Context, idHash []byte) (*tes.APIToken, error) {
	t, err := scanToken(db.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id_hash = $1`, idHash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "API token not found.")
	} else if err != nil {
		return nil, wrap("token", err)
	}
	return t, nil
}

// APITokens lists every token by name, then by creation time.
func (db *DB) APITokens(ctx context.Context) ([]*tes.APIToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY name, created_at, id_hash`)
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
	return db.writeTx(ctx, "delete token", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE id_hash = $1`, idHash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tes.Errorf(tes.ENOTFOUND, "API token not found.")
		}
		return appendChangeEvents(ctx, tx, tes.StageEvents(events, db.now()))
	})
}
