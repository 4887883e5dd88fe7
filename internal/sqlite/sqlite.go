// Package sqlite is the default TES store: one SQLite database file in WAL
// mode, implementing tes.Store.
//
// One writer connection takes every write transaction (BEGIN IMMEDIATE, so a
// transaction never has to upgrade a read lock and fail with SQLITE_BUSY),
// while a pool of read-only connections serves the dashboards concurrently
// from WAL snapshots. Every write is durable before it returns: the writer
// runs synchronous=NORMAL and the store fdatasyncs the WAL itself
// (walsync.go), so a commit that Ingest or Decide acknowledged survives a
// power cut, and IngestDeferred lets the next batch commit during the fsync.
//
// Plates, locations and driver records are encrypted with internal/atrest;
// rows are found by the HMAC plate key. The schema lives in numbered SQL
// files under migrations/, applied in order and recorded in
// schema_migrations.
//
// Errors are *tes.Error values with a code (ENOTFOUND, ECONFLICT, EINVALID,
// EUNAVAILABLE when the database stays locked) or driver errors wrapped with
// the operation's name, which callers treat as internal.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ tes.Store = (*DB)(nil)

// DB is a TES store in one SQLite file. It is safe for concurrent use; writes
// are serialised on one connection, reads run in parallel.
type DB struct {
	path string
	keys *atrest.Keys
	w    *sql.DB    // one connection: every write transaction
	wal  *walSyncer // makes the writer's commits durable (walsync.go)
	r    *sql.DB    // read-only pool

	now func() time.Time

	ingest ingestStmts
	reads  readStmts

	// knownKeys caches client key fingerprints known to be committed in
	// client_keys, so the hot path skips their INSERT. Rows there are never
	// deleted, so an entry never goes stale.
	keysMu    sync.Mutex
	knownKeys map[string]struct{}
}

// maxKnownKeys bounds the fingerprint cache; past it, inserts are merely
// not skipped.
const maxKnownKeys = 4096

// Pragmas every connection gets. busy_timeout waits for another process's
// write lock instead of failing at once; foreign_keys is off by default in
// SQLite and must be set per connection.
const commonPragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"

// Open opens or creates the database at path, applies pending migrations
// and checks that keys are the ones the database was created with.
//
// A new file and its directory are created readable by the owner only
// (0600, 0700); SQLite gives the -wal and -shm files the database's mode.
// Open returns an EINVALID error for a path it cannot use as a plain file
// name, for a database written by a newer tes (upgrade tes) and for a key
// that does not match the database.
func Open(ctx context.Context, path string, keys *atrest.Keys) (*DB, error) {
	if keys == nil {
		return nil, tes.Errorf(tes.EINVALID, "Opening the SQLite store needs the at-rest key.")
	}
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, tes.Errorf(tes.EINVALID, "Invalid database path %q: use a plain file name without '?' or '#'.", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}

	db := &DB{path: path, keys: keys, now: time.Now, knownKeys: make(map[string]struct{})}

	// synchronous=NORMAL, with every write made durable by db.wal before
	// it returns or is acknowledged (walsync.go): the guarantee of
	// synchronous=FULL, with the fsync outside the writer connection, so
	// the next batch of reports can commit while this one's fsync runs
	// (IngestDeferred).
	//
	// wal_autocheckpoint: three indexes have random keys (message digest,
	// report_id, plate key), so every ingested row dirties about three
	// pages that later rows dirty again. Checkpointing every 10,000 pages
	// (about 40 MiB of WAL) instead of SQLite's 1,000 writes each such page
	// to the database file once per checkpoint rather than every few
	// batches; it measured about 1.7x the ingest rate at 100,000 rows.
	// journal_size_limit truncates a WAL that a burst grew past 64 MiB.
	wdsn := path + "?" + commonPragmas +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=wal_autocheckpoint(10000)&_pragma=journal_size_limit(67108864)" +
		"&_pragma=cache_size(-32768)&_pragma=temp_store(MEMORY)" +
		"&_txlock=immediate"
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db.w = w
	db.wal = newWALSyncer(path)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := db.checkKey(ctx); err != nil {
		w.Close()
		return nil, err
	}

	// query_only makes a stray write on a read connection an error instead
	// of a second writer.
	r, err := sql.Open("sqlite", path+"?"+commonPragmas+"&_pragma=query_only(1)&_pragma=temp_store(MEMORY)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	db.r = r
	if err := r.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	if err := db.reads.prepare(ctx, r); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.ingest.prepare(ctx, w); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// createPrivate creates path empty with mode 0600 (and its directory with
// 0700) unless it exists, so that SQLite never creates it with the
// process's default mode. An empty file is a valid empty database.
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	return f.Close()
}

// checkKey proves that keys open the value sealed when the database was
// created, so a wrong key file is refused before anything is written with it.
func (db *DB) checkKey(ctx context.Context) error {
	const aad = "tes key check"
	var sealed []byte
	err := db.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		sealed = db.keys.Seal([]byte("tes"), []byte(aad))
		_, err = db.exec(ctx, "key check", `INSERT INTO meta (name, value) VALUES ('key_check', ?) ON CONFLICT DO NOTHING`, sealed)
		if err != nil {
			return wrap("key check", err)
		}
		return db.checkKey(ctx) // another process may have won the insert
	} else if err != nil {
		return wrap("key check", err)
	}
	if _, err := db.keys.Open(sealed, []byte(aad)); err != nil {
		return &tes.Error{Code: tes.EINVALID, Message: fmt.Sprintf("The at-rest key does not match the database %s: use the key file it was created with.", db.path), Err: err}
	}
	return nil
}

// Close closes both connection pools. Statements in flight fail.
func (db *DB) Close() error {
	db.ingest.close()
	db.reads.close()
	var errs []error
	if db.wal != nil {
		errs = append(errs, db.wal.close())
	}
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// IntegrityCheck runs SQLite's PRAGMA integrity_check and foreign_key_check
// and compares the status counters with a full count. It reads every page,
// so it takes time on a large database. A failure is an EINTERNAL error
// listing what was found.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var problems []string
	rows, err := db.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return wrap("integrity check", err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return wrap("integrity check", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Close(); err != nil {
		return wrap("integrity check", err)
	}
	if err := rows.Err(); err != nil {
		return wrap("integrity check", err)
	}

	rows, err = db.r.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return wrap("integrity check", err)
	}
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			rows.Close()
			return wrap("integrity check", err)
		}
		problems = append(problems, fmt.Sprintf("%s row %d references a missing %s", table, rowid.Int64, parent))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return wrap("integrity check", err)
	}

	rows, err = db.r.QueryContext(ctx, `
		SELECT c.status, c.n, (SELECT count(*) FROM violations v WHERE v.status = c.status)
		FROM violation_counts c`)
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

	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
		}
		return tes.Errorf(tes.EINTERNAL, "The database %s failed its integrity check: %s.", db.path, strings.Join(problems, "; "))
	}
	return nil
}

// writeTx runs fn in one write transaction on the writer connection
// (BEGIN IMMEDIATE), commits it and makes it durable. An error from fn rolls
// back and is returned as is if it is a *tes.Error or a userError's cause,
// wrapped with op otherwise.
func (db *DB) writeTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if err := db.commitTx(ctx, op, fn); err != nil {
		return err
	}
	return db.durable(op)
}

// commitTx is writeTx without its last step: it returns once the
// transaction has committed, before the commit is durable (see durable).
func (db *DB) commitTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		if ue, ok := err.(userError); ok {
			return ue.err
		}
		return wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// DiskFailed is closed once an fsync of the write-ahead log has failed.
// From then on every write is refused, because Linux may have dropped the
// pages it could not write: the process should stop, so that a restart
// recovers the database from what is on disk (internal/officer does).
func (db *DB) DiskFailed() <-chan struct{} { return db.wal.down }

// durable returns once every commit made so far is on disk.
func (db *DB) durable(op string) error {
	if err := db.wal.sync(); err != nil {
		return &tes.Error{Code: tes.EUNAVAILABLE, Message: "The database could not be written to disk; restart tes.", Err: fmt.Errorf("sqlite: %s: %w", op, err)}
	}
	return nil
}

// exec runs one statement on the writer connection outside a transaction
// and makes it durable.
func (db *DB) exec(ctx context.Context, op, query string, args ...any) (sql.Result, error) {
	res, err := db.w.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	if err := db.durable(op); err != nil {
		return nil, err
	}
	return res, nil
}

// wrap gives err the operation's context. Domain errors pass unchanged; a
// database still locked after busy_timeout becomes EUNAVAILABLE, which
// transports turn into "retry later".
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *tes.Error
	if errors.As(err, &te) {
		return err
	}
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return &tes.Error{Code: tes.EUNAVAILABLE, Message: "The database is busy: try again shortly.", Err: fmt.Errorf("sqlite: %s: %w", op, err)}
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// isConstraint reports whether err is the SQLite constraint error code (an
// extended code such as SQLITE_CONSTRAINT_FOREIGNKEY).
func isConstraint(err error, code int) bool {
	var se *sqlitedrv.Error
	return errors.As(err, &se) && se.Code() == code
}

// Times are stored as unix microseconds; the zero time is NULL.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// ClaimMeta records value under name unless a value is recorded already
// (or replace is set), and returns the recorded value; see tes.MetaStore.
func (db *DB) ClaimMeta(ctx context.Context, name string, value []byte, replace bool) ([]byte, error) {
	var stored []byte
	err := db.writeTx(ctx, "claim meta", func(tx *sql.Tx) error {
		q := `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`
		if replace {
			q = `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`
		}
		if _, err := tx.ExecContext(ctx, q, "identity."+name, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, "identity."+name).Scan(&stored)
	})
	return stored, err
}
