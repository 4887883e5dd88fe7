package tes

import (
	"context"
	"time"
)

// SpeedBucketWidth is the width in km/h of one speed-distribution bucket.
const SpeedBucketWidth = 10

// HourCount is how many violations were received in one clock hour.
type HourCount struct {
	Hour  time.Time // start of the hour, UTC
	Count int
}

// BucketCount is how many violations had a speed in [Min, Min+SpeedBucketWidth).
type BucketCount struct {
	Min   int // a multiple of SpeedBucketWidth
	Count int
}

// ViolationStats are the aggregates behind the dashboard's charts, over the
// violations received since a given time, whatever their status.
type ViolationStats struct {
	Since        time.Time
	Total        int
	Hourly       []HourCount   // hours with at least one violation, oldest first
	SpeedBuckets []BucketCount // buckets with at least one violation, slowest first
}

// StatsStore is implemented by stores that can aggregate violations for
// charts. The work is bounded by since (an index on received_at), so that it
// does not grow with the whole history. Stores without it have no charts.
type StatsStore interface {
	// ViolationStats aggregates the violations received at or after since.
	ViolationStats(ctx context.Context, since time.Time) (*ViolationStats, error)
}
