package sqlite

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/tes-traffic/tes"
)

var _ tes.StatsStore = (*DB)(nil)

const microsPerHour = int64(time.Hour / time.Microsecond)

// statsQuery groups the violations received at or after ? by UTC hour and
// by 10 km/h speed bucket in one pass. INDEXED BY pins the plan to one range
// scan of violations_status_received per status (the IN list), so the work
// is bounded by the period asked for, not by the size of the table; a
// schema that loses the index makes the query fail instead of scanning
// every row.
const statsQuery = `SELECT received_at / ? AS hour, speed / ? AS bucket, count(*)
	FROM violations INDEXED BY ` + idxStatusReceived + `
	WHERE status IN ('PENDING', 'APPROVED', 'REJECTED') AND received_at >= ?
	GROUP BY hour, bucket`

// ViolationStats aggregates the violations received at or after since, of
// any status, per hour and per speed bucket (tes.SpeedBucketWidth km/h);
// see tes.StatsStore. Errors are wrapped driver errors (internal) or
// EUNAVAILABLE when the database stays locked.
func (db *DB) ViolationStats(ctx context.Context, since time.Time) (*tes.ViolationStats, error) {
	rows, err := db.r.QueryContext(ctx, statsQuery, microsPerHour, tes.SpeedBucketWidth, micros(since))
	if err != nil {
		return nil, wrap("stats", err)
	}
	defer rows.Close()
	byHour := map[int64]int{}
	byBucket := map[int]int{}
	st := &tes.ViolationStats{Since: since.UTC()}
	for rows.Next() {
		var hour int64
		var bucket, n int
		if err := rows.Scan(&hour, &bucket, &n); err != nil {
			return nil, wrap("stats", err)
		}
		byHour[hour] += n
		byBucket[bucket] += n
		st.Total += n
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("stats", err)
	}
	for _, h := range slices.Sorted(maps.Keys(byHour)) {
		st.Hourly = append(st.Hourly, tes.HourCount{Hour: fromMicros(h * microsPerHour), Count: byHour[h]})
	}
	for _, b := range slices.Sorted(maps.Keys(byBucket)) {
		st.SpeedBuckets = append(st.SpeedBuckets, tes.BucketCount{Min: b * tes.SpeedBucketWidth, Count: byBucket[b]})
	}
	return st, nil
}
