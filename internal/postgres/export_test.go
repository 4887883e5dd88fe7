package postgres

import (
	"context"

	"github.com/tes-traffic/tes"
)

// MigrateTo applies the migrations up to version target to the database at
// url, so that tests can make a schema older than this build's.
func MigrateTo(ctx context.Context, url string, target int) (from, to int, err error) {
	pool, where, err := connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	db := &DB{pool: pool, where: where}
	return db.migrateTo(ctx, MigrateAll, target)
}

// ViolationsQuery is the SQL and arguments Violations runs for f.
func ViolationsQuery(db *DB, f *tes.ViolationFilter, limit int) (string, []any, error) {
	return db.violationsQuery(f, limit)
}

// StatsQuery is the SQL ViolationStats runs.
const StatsQuery = statsQuery
