package sqlite

import (
	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

// PlanCase is one dashboard query shape whose plan the tests check.
type PlanCase struct {
	Name   string
	Index  string // the index the plan must use
	NoSort bool   // the index order must serve ORDER BY (no temp B-tree)
	// OrderedScan allows the first page (no cursor, no filter) to be a
	// SCAN of the index in order: LIMIT stops it after one page.
	OrderedScan bool
	// Merged: the page merges one range of Index per status; the plan
	// sorts only those bounded pages (MERGE (UNION ALL)).
	Merged bool
	Query  func(withCursor bool, key, id int64) (string, []any, error)
}

func withScan(c PlanCase) PlanCase { c.OrderedScan = true; return c }

func merged(c PlanCase) PlanCase { c.Merged = true; return c }

// PlanCases returns the SQL that Violations and Drivers run for their main
// shapes, built by the same code.
func PlanCases(db *DB) []PlanCase {
	v := func(name, index string, noSort bool, f tes.ViolationFilter) PlanCase {
		return PlanCase{Name: name, Index: index, NoSort: noSort, Query: func(withCursor bool, key, id int64) (string, []any, error) {
			if withCursor {
				f.After = &tes.Cursor{Key: key, ID: id}
			}
			return db.violationsQuery(&f, 51)
		}}
	}
	return []PlanCase{
		v("status, newest first", idxStatusReceived, true, tes.ViolationFilter{Status: tes.StatusPending}),
		v("status, oldest first", idxStatusReceived, true, tes.ViolationFilter{Status: tes.StatusPending, Sort: "time_asc"}),
		v("status, time range", idxStatusReceived, true, tes.ViolationFilter{Status: tes.StatusApproved, From: fromMicros(1), To: fromMicros(1 << 60)}),
		v("status, fastest first", idxStatusSpeed, true, tes.ViolationFilter{Status: tes.StatusPending, Sort: "speed"}),
		v("status, slowest first", idxStatusSpeed, true, tes.ViolationFilter{Status: tes.StatusRejected, Sort: "speed_asc"}),
		v("status, fastest in a speed range", idxStatusSpeed, true, tes.ViolationFilter{Status: tes.StatusPending, Sort: "speed", MinSpeed: 80, MaxSpeed: 120}),
		v("plate, newest first", idxPlate, true, tes.ViolationFilter{Plate: "AB-123-CD"}),
		v("plate and status, newest first", idxPlate, true, tes.ViolationFilter{Plate: "AB-123-CD", Status: tes.StatusPending}),
		v("plate, fastest first", idxPlate, false, tes.ViolationFilter{Plate: "AB-123-CD", Sort: "speed"}),
		v("reporter, newest first", idxReporter, true, tes.ViolationFilter{ReportedBy: "unit7"}),
		v("reporter and status, newest first", idxReporter, true, tes.ViolationFilter{ReportedBy: "unit7", Status: tes.StatusPending}),
		merged(v("time range, newest first", idxStatusReceived, true, tes.ViolationFilter{From: fromMicros(1), To: fromMicros(1 << 60)})),
		merged(v("speed range, fastest first", idxStatusSpeed, true, tes.ViolationFilter{Sort: "speed", MinSpeed: 80})),
		merged(v("no filter, newest first", idxStatusReceived, true, tes.ViolationFilter{})),
		merged(v("no filter, oldest first", idxStatusReceived, true, tes.ViolationFilter{Sort: "time_asc"})),
		merged(v("no filter, fastest first", idxStatusSpeed, true, tes.ViolationFilter{Sort: "speed"})),
		{Name: "drivers, newest first", Index: "drivers_updated", NoSort: true, OrderedScan: true, Query: func(withCursor bool, key, id int64) (string, []any, error) {
			var after *storekit.DriverCursor
			if withCursor {
				after = &storekit.DriverCursor{UpdatedMicros: key, PlateKey: make([]byte, 32)}
			}
			q, args := driversQuery(after, 51)
			return q, args, nil
		}},
	}
}
