package postgres

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/tes-traffic/tes"
)

// statsQuery groups the violations received at or after $1 by UTC hour and
// by speed bucket in one pass over the range of violations_status_received
// from $1 on for each status, so the work is bounded by the period asked
// for.
const statsQuery = `SELECT date_trunc('hour', received_at AT TIME ZONE 'UTC') AS hour, speed / $2 AS bucket, count(*)
	FROM violations
	WHERE status IN ('PENDING', 'APPROVED', 'REJECTED') AND received_at >= $1
	GROUP BY hour, bucket`

// ViolationStats aggregates the violations received at or after since, of
// any status, per hour and per speed bucket (tes.SpeedBucketWidth km/h);
// see tes.StatsStore. Errors are wrapped driver errors (internal) or
// EUNAVAILABLE when the database cannot be reached.
func (db *DB) ViolationStats(ctx context.Context, since time.Time) (*tes.ViolationStats, error) {
	rows, err := db.pool.Query(ctx, statsQuery, ts(since), tes.SpeedBucketWidth)
	if err != nil {
		return nil, wrap("stats", err)
	}
	defer rows.Close()
	byHour := map[time.Time]int{}
	byBucket := map[int]int{}
	st := &tes.ViolationStats{Since: since.UTC()}
	for rows.Next() {
		var hour time.Time // timestamp without time zone: UTC wall clock
		var bucket, n int
		if err := rows.Scan(&hour, &bucket, &n); err != nil {
			return nil, wrap("stats", err)
		}
		hour = time.Date(hour.Year(), hour.Month(), hour.Day(), hour.Hour(), 0, 0, 0, time.UTC)
		byHour[hour] += n
		byBucket[bucket] += n
		st.Total += n
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("stats", err)
	}
	for _, h := range slices.SortedFunc(maps.Keys(byHour), func(a, b time.Time) int { return a.Compare(b) }) {
		st.Hourly = append(st.Hourly, tes.HourCount{Hour: h, Count: byHour[h]})
	}
	for _, b := range slices.Sorted(maps.Keys(byBucket)) {
		st.SpeedBuckets = append(st.SpeedBuckets, tes.BucketCount{Min: b * tes.SpeedBucketWidth, Count: byBucket[b]})
	}
	return st, nil
}
