package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
)

// migrationFS holds the schema as numbered SQL files, NNNN_name.sql. A file,
// once released, is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations parses the embedded files once; a malformed name is a build
// mistake and panics at start-up, which the tests catch.
var migrations = func() []migration {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		panic(err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || len(num) != 4 || !strings.HasSuffix(e.Name(), ".sql") {
			panic(fmt.Sprintf("postgres: migration file %q is not named NNNN_name.sql", e.Name()))
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			panic(err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			panic(fmt.Sprintf("postgres: migrations must be numbered 1, 2, 3...; %s is number %d", m.name, i+1))
		}
	}
	return ms
}()

// SchemaVersion returns the newest schema version this build knows: the
// number of the last embedded migration.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// Migrate applies every pending migration to the database at url and
// returns the schema version before and after. It needs no at-rest key.
// Several processes may run it at once: the migrations are applied in one
// transaction under an advisory lock, each recorded in schema_migrations,
// and the version is read again once the lock is held. A schema newer than
// this build's is EINVALID (upgrade tes); from == to means nothing was due.
func Migrate(ctx context.Context, url string) (from, to int, err error) {
	pool, where, err := connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	db := &DB{pool: pool, where: where}
	return db.migrate(ctx, MigrateAll)
}

// migrate brings the schema to SchemaVersion as far as mode allows.
func (db *DB) migrate(ctx context.Context, mode MigrateMode) (from, to int, err error) {
	return db.migrateTo(ctx, mode, SchemaVersion())
}

// migrateTo is migrate up to version target only (tests make old schemas
// with it).
func (db *DB) migrateTo(ctx context.Context, mode MigrateMode, target int) (from, to int, err error) {
	cur, err := db.schemaVersion(ctx, db.pool)
	if err != nil {
		return 0, 0, wrap("migrate", err)
	}
	if err := db.versionAllowed(cur, mode); err != nil || cur >= target {
		return cur, cur, err
	}

	err = db.writeTx(ctx, "migrate", func(tx pgx.Tx) error {
		// The lock is per schema, so that stores in different schemas of
		// one database (the tests) do not wait for each other.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('tes schema migrations ' || current_schema(), 0))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return err
		}
		// Another node may have migrated while this one waited.
		if cur, err = db.schemaVersion(ctx, tx); err != nil {
			return err
		}
		if err := db.versionAllowed(cur, mode); err != nil {
			return err
		}
		for _, m := range migrations {
			if m.version <= cur || m.version > target {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, m.version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return cur, cur, err
	}
	return cur, max(cur, target), nil
}

// versionAllowed says whether a database at version cur may be opened (and
// migrated) in mode.
func (db *DB) versionAllowed(cur int, mode MigrateMode) error {
	switch {
	case cur > SchemaVersion():
		return tes.Errorf(tes.EINVALID, "The database %s has schema version %d, newer than this tes knows (%d): upgrade tes.", db.where, cur, SchemaVersion())
	case cur == SchemaVersion() || mode == MigrateAll || mode == MigrateEmpty && cur == 0:
		return nil
	case cur == 0:
		return tes.Errorf(tes.EINVALID, "The database %s holds no TES schema: run `tes migrate --db URL` to create it (or start one `tes officer` on it).", db.where)
	}
	return tes.Errorf(tes.EINVALID, "The database %s has schema version %d, older than this tes (%d): run `tes migrate --db URL` once, then start the nodes.", db.where, cur, SchemaVersion())
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion returns the database's schema version: 0 when it has no
// schema_migrations table (a new database).
func (db *DB) schemaVersion(ctx context.Context, q queryer) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}
