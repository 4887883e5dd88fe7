package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

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
			panic(fmt.Sprintf("sqlite: migration file %q is not named NNNN_name.sql", e.Name()))
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
			panic(fmt.Sprintf("sqlite: migrations must be numbered 1, 2, 3...; %s is number %d", m.name, i+1))
		}
	}
	return ms
}()

// SchemaVersion returns the newest schema version this build knows: the
// number of the last embedded migration.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrate applies every embedded migration newer than the database's
// version, each in its own transaction together with its schema_migrations
// row. The version is re-read inside each transaction, so two processes
// opening one database at once apply each migration once.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.exec(ctx, "migrate", `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return wrap("migrate", err)
	}
	for _, m := range migrations {
		err := db.writeTx(ctx, "migrate", func(tx *sql.Tx) error {
			cur, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if cur > SchemaVersion() {
				return tes.Errorf(tes.EINVALID, "The database %s has schema version %d, newer than this tes knows (%d): upgrade tes.", db.path, cur, SchemaVersion())
			}
			if cur >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, micros(db.now()))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}
