// Package postgres is the TES store on PostgreSQL, for deployments where
// several officer nodes share one database. It implements tes.Store,
// tes.ReportStatusStore and tes.StatsStore with the semantics of
// internal/sqlite (the same error codes and messages; the shared suite in
// internal/storetest runs against both), through pgx's native API and a
// connection pool.
//
// Every guarantee is enforced by the database, never by memory in one
// process, so that it holds across nodes:
//
//   - Replays: seen_digests' primary key; INSERT ... ON CONFLICT DO NOTHING
//     tells a new digest from one seen on any node.
//   - Idempotent report_id: violations.report_id is UNIQUE; a resend is
//     answered with the id already stored.
//   - The audit chain: every transaction that appends to it (an ingest
//     batch, a decision, AppendEvents) first locks the one row of
//     audit_head with SELECT ... FOR UPDATE, links its events to the head
//     it read and moves the head before it commits. Appends from all nodes
//     are therefore one line; audit.seq's primary key makes a fork
//     impossible even for a writer that skipped the lock.
//   - Approve once: Decide locks the violation row (FOR UPDATE) and updates
//     it WHERE status = 'PENDING'; triggers make a decided row final.
//   - Driver totals: the driver row is locked (FOR UPDATE) while its sealed
//     record is read, increased and written back.
//   - CountByStatus: counters updated in the same transactions as the rows.
//
// Lock order, the same in every transaction, so two nodes never deadlock:
// audit_head, then violations, then drivers, then violation_counts. Write
// transactions run at READ COMMITTED whatever the server's default, so
// each statement after a lock wait sees what the other node committed.
//
// Unlike SQLite, Open does not upgrade a schema on its own: see Options and
// Migrate. Errors are *tes.Error values (ENOTFOUND, ECONFLICT, EINVALID,
// EUNAVAILABLE when the server cannot be reached or a transaction was
// cancelled by it) or driver errors wrapped with the operation's name,
// which callers treat as internal.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
)

var (
	_ tes.Store             = (*DB)(nil)
	_ tes.ReportStatusStore = (*DB)(nil)
	_ tes.StatsStore        = (*DB)(nil)
)

// DB is a TES store in a PostgreSQL database. It is safe for concurrent
// use, and several DBs (in one process or on several machines) may share
// one database.
type DB struct {
	pool  *pgxpool.Pool
	keys  *atrest.Keys
	where string // host:port/database, for messages; never the password
	now   func() time.Time
	idSeq string // the violations id sequence, schema-qualified
}

// MigrateMode says what Open does with a database whose schema is older
// than this build's.
type MigrateMode int

// The migrate modes.
const (
	// MigrateNone opens only a schema at this build's version; an older or
	// missing schema is EINVALID, telling the operator to run `tes migrate`.
	MigrateNone MigrateMode = iota
	// MigrateEmpty creates the schema in a database that has none (a new
	// deployment) and otherwise behaves like MigrateNone. The officer
	// server uses it, so that upgrading a shared schema is always an
	// explicit step, never a side effect of one node starting.
	MigrateEmpty
	// MigrateAll applies every pending migration (`tes migrate`, tests).
	MigrateAll
)

// Options tune OpenOptions.
type Options struct {
	Migrate MigrateMode
}

// Open opens the TES store in the PostgreSQL database at url
// (postgres://user@host:port/db?sslmode=...), checks that its schema is the
// version this build knows and that keys are the ones it was created with.
// It does not migrate: see OpenOptions. The pool size follows the URL's
// pool_max_conns parameter (default: the larger of 4 and the CPU count).
//
// Errors: EINVALID for a URL it cannot use, for a schema newer than this
// build (upgrade tes), older or missing (run tes migrate) and for a key
// that does not match the database; EUNAVAILABLE when the server cannot be
// reached.
func Open(ctx context.Context, url string, keys *atrest.Keys) (*DB, error) {
	return OpenOptions(ctx, url, keys, Options{})
}

// OpenOptions is Open with the migrate mode and other options of opts.
func OpenOptions(ctx context.Context, url string, keys *atrest.Keys, opts Options) (*DB, error) {
	if keys == nil {
		return nil, tes.Errorf(tes.EINVALID, "Opening the PostgreSQL store needs the at-rest key.")
	}
	pool, where, err := connect(ctx, url)
	if err != nil {
		return nil, err
	}
	db := &DB{pool: pool, keys: keys, where: where, now: time.Now}
	if _, _, err := db.migrate(ctx, opts.Migrate); err != nil {
		pool.Close()
		return nil, err
	}
	if err := db.checkKey(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := pool.QueryRow(ctx, `SELECT pg_get_serial_sequence('violations', 'id')`).Scan(&db.idSeq); err != nil {
		pool.Close()
		return nil, wrap("open", err)
	}
	return db, nil
}

// IsURL reports whether s names a PostgreSQL database (postgres:// or
// postgresql://).
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// connect parses url, opens a pool and checks that the server answers.
func connect(ctx context.Context, url string) (*pgxpool.Pool, string, error) {
	if !IsURL(url) {
		return nil, "", tes.Errorf(tes.EINVALID, "Invalid PostgreSQL URL: it must start with postgres:// or postgresql://.")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included: keep it
		// for the log only.
		return nil, "", &tes.Error{Code: tes.EINVALID, Message: "Invalid PostgreSQL URL: see postgres://user@host:port/database?sslmode=disable.", Err: errors.New("parse config")}
	}
	where := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port)) + "/" + cfg.ConnConfig.Database
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", wrap("connect", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, "", &tes.Error{Code: tes.EUNAVAILABLE, Message: fmt.Sprintf("Cannot reach PostgreSQL at %s: %s", where, short(err)), Err: err}
	}
	return pool, where, nil
}

// short is a one-line reason from a connection error, without the URL.
func short(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if u := errors.Unwrap(ce); u != nil {
			return u.Error()
		}
	}
	return err.Error()
}

// IsNew reports whether the database at url holds no TES store yet (no
// schema, or a schema without a sealed key check). The officer server asks
// before it creates an at-rest key: a node that joins an existing store
// must be given the key the first node created, not make its own.
func IsNew(ctx context.Context, url string) (bool, error) {
	pool, _, err := connect(ctx, url)
	if err != nil {
		return false, err
	}
	defer pool.Close()
	var hasMeta bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('meta') IS NOT NULL`).Scan(&hasMeta); err != nil {
		return false, wrap("probe", err)
	}
	if !hasMeta {
		return true, nil
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM meta WHERE name = 'key_check'`).Scan(&n); err != nil {
		return false, wrap("probe", err)
	}
	return n == 0, nil
}

// checkKey proves that keys open the value sealed when the database was
// created, so a wrong key file is refused before anything is written.
func (db *DB) checkKey(ctx context.Context) error {
	const aad = "tes key check"
	var sealed []byte
	err := db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		sealed = db.keys.Seal([]byte("tes"), []byte(aad))
		if _, err := db.pool.Exec(ctx, `INSERT INTO meta (name, value) VALUES ('key_check', $1) ON CONFLICT DO NOTHING`, sealed); err != nil {
			return wrap("key check", err)
		}
		return db.checkKey(ctx) // another node may have won the insert
	} else if err != nil {
		return wrap("key check", err)
	}
	if _, err := db.keys.Open(sealed, []byte(aad)); err != nil {
		return &tes.Error{Code: tes.EINVALID, Message: fmt.Sprintf("The at-rest key does not match the database %s: use the key file it was created with (every node shares one).", db.where), Err: err}
	}
	return nil
}

// Close closes the pool; statements in flight fail.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Where returns host:port/database of the store, for messages.
func (db *DB) Where() string { return db.where }

// IntegrityCheck compares what the store keeps derived with what it is
// derived from: the status counters with a full count and the audit head
// with the last event. A failure is an EINTERNAL error listing what was
// found. It reads every violation, so it takes time on a large store.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var problems []string
	rows, err := db.pool.Query(ctx, `
		SELECT c.status, c.n, (SELECT count(*) FROM violations v WHERE v.status = c.status)
		FROM violation_counts c ORDER BY c.status`)
	if err != nil {
		return wrap("integrity check", err)
	}
	for rows.Next() {
		var status string
		var kept, counted int64
		if err := rows.Scan(&status, &kept, &counted); err != nil {
			rows.Close()
			return wrap("integrity check", err)
		}
		if kept != counted {
			problems = append(problems, fmt.Sprintf("violation_counts says %d %s, the table holds %d", kept, status, counted))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return wrap("integrity check", err)
	}
	var headSeq, lastSeq int64
	var headHash, lastHash []byte
	err = db.pool.QueryRow(ctx, `SELECT h.seq, h.hash, coalesce(a.seq, 0), a.hash
		FROM audit_head h LEFT JOIN LATERAL (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) a ON true`).
		Scan(&headSeq, &headHash, &lastSeq, &lastHash)
	if err != nil {
		return wrap("integrity check", err)
	}
	if headSeq != lastSeq || string(headHash) != string(lastHash) {
		problems = append(problems, fmt.Sprintf("audit_head is at seq %d, the last event is %d (or their hashes differ)", headSeq, lastSeq))
	}
	if len(problems) > 0 {
		return tes.Errorf(tes.EINTERNAL, "The database %s failed its integrity check: %s.", db.where, strings.Join(problems, "; "))
	}
	return nil
}

// writeTx runs fn in one READ COMMITTED transaction and commits it. An
// error from fn rolls back and is returned as is if it is a *tes.Error or
// a userError's cause, wrapped with op otherwise.
func (db *DB) writeTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		if ue, ok := err.(userError); ok {
			return ue.err
		}
		return wrap(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(op, err)
	}
	return nil
}

// userError carries an error from an UpdateUser callback through writeTx
// without the store's wrapping: it is the caller's own error.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

// wrap gives err the operation's context. Domain errors pass unchanged. A
// lost connection, a server shutting down, too many connections or a
// transaction the server cancelled (deadlock, serialisation failure)
// becomes EUNAVAILABLE, which transports turn into "retry later".
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *tes.Error
	if errors.As(err, &te) {
		return err
	}
	if unavailable(err) {
		return &tes.Error{Code: tes.EUNAVAILABLE, Message: "The database is unavailable or busy: try again shortly.", Err: fmt.Errorf("postgres: %s: %w", op, err)}
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources
			strings.HasPrefix(pe.Code, "57P"),      // operator intervention: shutdown
			pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock
			pe.Code == "55P03": // lock not available
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || pgconn.SafeToRetry(err)
}

// pgCode returns the SQLSTATE of err, "" if it is not a server error.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Times: timestamptz holds microseconds; the zero time is NULL. Values are
// truncated before they are written (tes.AuditTime), so that what a caller
// hashes is what comes back.

func ts(t time.Time) time.Time { return tes.AuditTime(t) }

func nullTS(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := tes.AuditTime(t)
	return &u
}

func fromNullTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ClaimMeta records value under name unless a value is recorded already
// (or replace is set), and returns the recorded value; see tes.MetaStore.
// Two nodes claiming at once agree: the first insert wins.
func (db *DB) ClaimMeta(ctx context.Context, name string, value []byte, replace bool) ([]byte, error) {
	var stored []byte
	err := db.writeTx(ctx, "claim meta", func(tx pgx.Tx) error {
		q := `INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`
		if replace {
			q = `INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`
		}
		if _, err := tx.Exec(ctx, q, "identity."+name, value); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM meta WHERE name = $1`, "identity."+name).Scan(&stored)
	})
	return stored, err
}
