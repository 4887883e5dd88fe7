package storetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var violationsTests = []namedTest{
	{"KeysetWalksEveryRowOnce", testPaginationWalk},
	{"Filters", testPaginationFilters},
	{"Limits", testPaginationLimits},
	{"InvalidFilters", testPaginationInvalid},
}

// row is the suite's model of one stored violation.
type row struct {
	id       int64
	plate    string
	speed    int
	received time.Time
	reporter string
	status   tes.Status
}

// seedViolations stores 57 violations with tied times and speeds, five
// plates, two reporters and all three statuses, and returns the model.
func seedViolations(t *testing.T, s tes.Store) []row {
	t.Helper()
	var rows []row
	var batch []*tes.IngestItem
	flush := func() {
		mustIngest(t, s, batch...)
		for _, it := range batch {
			if it.Outcome != tes.OutcomeStored {
				t.Fatalf("seed: outcome %v", it.Outcome)
			}
			rows = append(rows, row{
				id: it.ViolationID, plate: it.Report.Plate, speed: it.Report.Speed, received: us(it.ReceivedAt),
				reporter: it.Report.User, status: tes.StatusPending,
			})
		}
		batch = batch[:0]
	}
	for i := range 57 {
		r := newReport(fmt.Sprintf("AB-10%d", i%5), 40+(i*7)%90)
		r.User = "unit2"
		if i%3 == 0 {
			r.User = "unit1"
		}
		// Three reports per second: ties on received_at, broken by id.
		batch = append(batch, reportItem(r, base.Add(time.Duration(i/3)*time.Second)))
		if len(batch) == 10 {
			flush()
		}
	}
	flush()
	for i := range rows {
		switch i % 4 {
		case 1:
			mustDecide(t, s, tes.Decision{ViolationID: rows[i].id, Approve: true, By: "alice", At: base.Add(time.Hour)})
			rows[i].status = tes.StatusApproved
		case 2:
			mustDecide(t, s, tes.Decision{ViolationID: rows[i].id, By: "bob", At: base.Add(time.Hour), Reason: tes.ReasonDuplicate})
			rows[i].status = tes.StatusRejected
		}
	}
	return rows
}

var sorts = []string{"", "time", "time_asc", "speed", "speed_asc"}

// expect returns the ids of rows matching keep, in the order of sort.
func expect(rows []row, sort string, keep func(row) bool) []int64 {
	var sel []row
	for _, r := range rows {
		if keep(r) {
			sel = append(sel, r)
		}
	}
	key := func(r row) int64 { return r.received.UnixMicro() }
	if sort == "speed" || sort == "speed_asc" {
		key = func(r row) int64 { return int64(r.speed) }
	}
	asc := sort == "time_asc" || sort == "speed_asc"
	slices.SortFunc(sel, func(a, b row) int {
		c := cmp.Or(cmp.Compare(key(a), key(b)), cmp.Compare(a.id, b.id))
		if !asc {
			c = -c
		}
		return c
	})
	ids := make([]int64, len(sel))
	for i, r := range sel {
		ids[i] = r.id
	}
	return ids
}

// walk follows cursors from the first page to the last and returns the ids
// in the order seen. Every page but the last must be full.
func walk(t *testing.T, s tes.Store, f tes.ViolationFilter, model map[int64]row) []int64 {
	t.Helper()
	limit := f.Limit
	if limit == 0 {
		limit = 50
	}
	var ids []int64
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("%+v: more than 1000 pages; the cursor does not advance", f)
		}
		page, next, err := s.Violations(context.Background(), f)
		if err != nil {
			t.Fatalf("Violations(%+v): %v", f, err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d rows, limit %d", len(page), limit)
		}
		for _, v := range page {
			m, ok := model[v.ID]
			if !ok {
				t.Fatalf("unknown id %d", v.ID)
			}
			if v.Plate != m.plate || v.Speed != m.speed || !v.ReceivedAt.Equal(m.received) || v.Status != m.status || v.ReportedBy != m.reporter {
				t.Fatalf("row %d = %s %d %v %s %s, want %s %d %v %s %s", v.ID, v.Plate, v.Speed, v.ReceivedAt, v.Status, v.ReportedBy,
					m.plate, m.speed, m.received, m.status, m.reporter)
			}
			ids = append(ids, v.ID)
		}
		if next == nil {
			return ids
		}
		if len(page) != limit {
			t.Fatalf("a page of %d rows before the last, limit %d", len(page), limit)
		}
		f.After = next
	}
}

func modelMap(rows []row) map[int64]row {
	m := make(map[int64]row, len(rows))
	for _, r := range rows {
		m[r.id] = r
	}
	return m
}

func testPaginationWalk(t *testing.T, s tes.Store) {
	rows := seedViolations(t, s)
	model := modelMap(rows)
	for _, sort := range sorts {
		for _, limit := range []int{1, 7, 56, 57, 0, 1000} {
			got := walk(t, s, tes.ViolationFilter{Sort: sort, Limit: limit}, model)
			want := expect(rows, sort, func(row) bool { return true })
			if !slices.Equal(got, want) {
				t.Errorf("sort %q limit %d: walked\n%v\nwant\n%v", sort, limit, got, want)
			}
		}
	}
}

func testPaginationFilters(t *testing.T, s tes.Store) {
	rows := seedViolations(t, s)
	model := modelMap(rows)
	from, to := base.Add(5*time.Second), base.Add(12*time.Second)
	tests := []struct {
		name string
		f    tes.ViolationFilter
		keep func(row) bool
	}{
		{"status pending", tes.ViolationFilter{Status: tes.StatusPending}, func(r row) bool { return r.status == tes.StatusPending }},
		{"status approved", tes.ViolationFilter{Status: tes.StatusApproved}, func(r row) bool { return r.status == tes.StatusApproved }},
		{"status rejected", tes.ViolationFilter{Status: tes.StatusRejected}, func(r row) bool { return r.status == tes.StatusRejected }},
		{"status in lower case", tes.ViolationFilter{Status: "pending"}, func(r row) bool { return r.status == tes.StatusPending }},
		{"plate", tes.ViolationFilter{Plate: "AB-102"}, func(r row) bool { return r.plate == "AB-102" }},
		{"plate not normalised", tes.ViolationFilter{Plate: " ab-103 "}, func(r row) bool { return r.plate == "AB-103" }},
		{"unknown plate", tes.ViolationFilter{Plate: "ZZ-999"}, func(r row) bool { return false }},
		{"from inclusive", tes.ViolationFilter{From: from}, func(r row) bool { return !r.received.Before(us(from)) }},
		{"to exclusive", tes.ViolationFilter{To: to}, func(r row) bool { return r.received.Before(us(to)) }},
		{"from and to", tes.ViolationFilter{From: from, To: to}, func(r row) bool { return !r.received.Before(us(from)) && r.received.Before(us(to)) }},
		{"min speed inclusive", tes.ViolationFilter{MinSpeed: 82}, func(r row) bool { return r.speed >= 82 }},
		{"max speed inclusive", tes.ViolationFilter{MaxSpeed: 82}, func(r row) bool { return r.speed <= 82 }},
		{"speed range", tes.ViolationFilter{MinSpeed: 60, MaxSpeed: 100}, func(r row) bool { return r.speed >= 60 && r.speed <= 100 }},
		{"reported by", tes.ViolationFilter{ReportedBy: "unit1"}, func(r row) bool { return r.reporter == "unit1" }},
		{"status and plate", tes.ViolationFilter{Status: tes.StatusPending, Plate: "AB-101"}, func(r row) bool {
			return r.status == tes.StatusPending && r.plate == "AB-101"
		}},
		{"status, speed and reporter", tes.ViolationFilter{Status: tes.StatusApproved, MinSpeed: 60, ReportedBy: "unit2"}, func(r row) bool {
			return r.status == tes.StatusApproved && r.speed >= 60 && r.reporter == "unit2"
		}},
		{"status and time range", tes.ViolationFilter{Status: tes.StatusPending, From: from, To: to}, func(r row) bool {
			return r.status == tes.StatusPending && !r.received.Before(us(from)) && r.received.Before(us(to))
		}},
		{"everything", tes.ViolationFilter{Status: tes.StatusPending, Plate: "AB-100", From: base, To: base.Add(time.Minute), MinSpeed: 40, MaxSpeed: 130, ReportedBy: "unit1"},
			func(r row) bool {
				return r.status == tes.StatusPending && r.plate == "AB-100" && r.reporter == "unit1" && r.speed >= 40 && r.speed <= 130
			}},
	}
	for _, tt := range tests {
		for _, sort := range sorts {
			f := tt.f
			f.Sort, f.Limit = sort, 4
			got := walk(t, s, f, model)
			want := expect(rows, sort, tt.keep)
			if !slices.Equal(got, want) {
				t.Errorf("%s, sort %q: got\n%v\nwant\n%v", tt.name, sort, got, want)
			}
		}
	}
}

func testPaginationLimits(t *testing.T, s tes.Store) {
	seedViolations(t, s)
	ctx := context.Background()
	page, next, err := s.Violations(ctx, tes.ViolationFilter{})
	if err != nil || len(page) != 50 || next == nil {
		t.Errorf("Limit 0: %d rows, next %v, %v; want 50 rows and a next cursor", len(page), next, err)
	}
	page, next, err = s.Violations(ctx, tes.ViolationFilter{Limit: 1000})
	if err != nil || len(page) != 57 || next != nil {
		t.Errorf("Limit 1000: %d rows, next %v, %v; want all 57 and no cursor", len(page), next, err)
	}
	page, next, err = s.Violations(ctx, tes.ViolationFilter{Limit: 57})
	if err != nil || len(page) != 57 || next != nil {
		t.Errorf("Limit 57 of 57: %d rows, next %v, %v; want all and no cursor", len(page), next, err)
	}
	for _, n := range []int{-1, 1001} {
		_, _, err := s.Violations(ctx, tes.ViolationFilter{Limit: n})
		wantCode(t, err, tes.EINVALID, fmt.Sprintf("Limit %d", n))
	}
}

func testPaginationInvalid(t *testing.T, s tes.Store) {
	ctx := context.Background()
	for _, f := range []tes.ViolationFilter{
		{Sort: "plate"},
		{Status: "LOST"},
		{Plate: "AB_12!"},
		{MinSpeed: -1},
	} {
		_, _, err := s.Violations(ctx, f)
		wantCode(t, err, tes.EINVALID, fmt.Sprintf("Violations(%+v)", f))
	}
}
