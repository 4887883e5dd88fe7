package sqlite

import (
	"context"
	"database/sql"
)

// readStmts are the point reads made on every sign-in, every dashboard
// request and every TLS handshake. Prepared once on the read pool
// (database/sql prepares each on a connection at its first use there and
// keeps it), they skip SQLite's parse and plan on each call.
type readStmts struct {
	user, device, webSession, apiToken *sql.Stmt
}

func (s *readStmts) prepare(ctx context.Context, r *sql.DB) error {
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&s.user, `SELECT ` + userColumns + ` FROM users WHERE name = ?`},
		{&s.device, `SELECT ` + deviceColumns + ` FROM devices WHERE id = ?`},
		{&s.webSession, `SELECT id_hash, user, csrf_token, created_at, last_seen FROM web_sessions WHERE id_hash = ?`},
		{&s.apiToken, `SELECT ` + tokenColumns + ` FROM api_tokens WHERE id_hash = ?`},
	} {
		st, err := r.PrepareContext(ctx, p.sql)
		if err != nil {
			return wrap("prepare", err)
		}
		*p.st = st
	}
	return nil
}

func (s *readStmts) close() {
	for _, st := range []*sql.Stmt{s.user, s.device, s.webSession, s.apiToken} {
		if st != nil {
			st.Close()
		}
	}
}
