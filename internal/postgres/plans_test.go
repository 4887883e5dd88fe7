package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/postgres"
)

// TestQueryPlansUseIndexes: every dashboard query shape, and the hourly
// statistics, has a plan that reads an index range rather than the whole
// table. With sequential scans priced out (enable_seqscan off), a shape
// that no index serves still shows a Seq Scan on violations. The shapes
// across every status are one index range per status.
func TestQueryPlansUseIndexes(t *testing.T) {
	db, u := mustOpen(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	explain := func(t *testing.T, q string, args ...any) string {
		t.Helper()
		rows, err := c.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	after := &tes.Cursor{Key: time.Now().UnixMicro(), ID: 1000}
	for _, tc := range []struct {
		name   string
		f      tes.ViolationFilter
		ranges int // index scans of violations the plan must show
	}{
		{"status, newest first", tes.ViolationFilter{Status: tes.StatusPending}, 1},
		{"status, fastest first", tes.ViolationFilter{Status: tes.StatusPending, Sort: "speed"}, 1},
		{"plate, newest first", tes.ViolationFilter{Plate: "AB-123-CD"}, 1},
		{"reporter, newest first", tes.ViolationFilter{ReportedBy: "unit7"}, 1},
		{"no filter, newest first", tes.ViolationFilter{}, 3},
		{"no filter, oldest first", tes.ViolationFilter{Sort: "time_asc"}, 3},
		{"no filter, fastest first", tes.ViolationFilter{Sort: "speed"}, 3},
		{"time range, newest first", tes.ViolationFilter{From: time.Unix(1, 0), To: time.Unix(1<<40, 0)}, 3},
		{"speed range, fastest first", tes.ViolationFilter{Sort: "speed", MinSpeed: 80}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cursor := range []*tes.Cursor{nil, after} {
				f := tc.f
				if f.After = cursor; cursor != nil && strings.HasPrefix(f.Sort, "speed") {
					f.After = &tes.Cursor{Key: 90, ID: 1000}
				}
				q, args, err := postgres.ViolationsQuery(db, &f, 51)
				if err != nil {
					t.Fatal(err)
				}
				plan := explain(t, q, args...)
				if strings.Contains(plan, "Seq Scan on violations") {
					t.Errorf("cursor=%v: no index serves this page:\n%s", cursor != nil, plan)
				}
				if n := strings.Count(plan, "Index Scan using violations_") + strings.Count(plan, "Index Scan Backward using violations_") +
					strings.Count(plan, "Bitmap Index Scan on violations_"); n < tc.ranges {
					t.Errorf("cursor=%v: %d index scans, want %d:\n%s", cursor != nil, n, tc.ranges, plan)
				}
			}
		})
	}
	if plan := explain(t, postgres.StatsQuery, time.Now().Add(-time.Hour), tes.SpeedBucketWidth); strings.Contains(plan, "Seq Scan on violations") {
		t.Errorf("statistics scan the table:\n%s", plan)
	}
}
