package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var driversTests = []namedTest{
	{"TotalsAcrossApprovals", testDriverTotals},
	{"Pages", testDriverPages},
}

// seedDrivers approves reports so that P-1 has 80 points (updated last),
// P-3 0 points, P-2 10 points (updated first) and P-4 was only rejected.
func seedDrivers(t *testing.T, s tes.Store) {
	t.Helper()
	steps := []struct {
		plate   string
		speed   int
		approve bool
		total   int
	}{
		{"P-1", 55, true, 10},
		{"P-2", 65, true, 10},
		{"P-1", 75, true, 30},
		{"P-4", 99, false, 0},
		{"P-3", 30, true, 0},
		{"P-1", 120, true, 80},
	}
	for i, st := range steps {
		id := mustStore(t, s, newReport(st.plate, st.speed), base)
		d := tes.Decision{ViolationID: id, Approve: st.approve, By: "alice", At: base.Add(time.Duration(i+1) * time.Minute), Reason: tes.ReasonPlateUnreadable}
		got := mustDecide(t, s, d)
		if st.approve && got.DriverTotal != st.total {
			t.Fatalf("approval %d of %s: DriverTotal %d, want %d", i, st.plate, got.DriverTotal, st.total)
		}
	}
}

func testDriverTotals(t *testing.T, s tes.Store) {
	seedDrivers(t, s)
	ctx := context.Background()
	for _, w := range []struct {
		plate   string
		points  int
		updated time.Duration
	}{{"P-1", 80, 6 * time.Minute}, {"p-1", 80, 6 * time.Minute}, {"P-2", 10, 2 * time.Minute}, {"P-3", 0, 5 * time.Minute}} {
		d, err := s.Driver(ctx, w.plate)
		if err != nil {
			t.Fatalf("Driver(%s): %v", w.plate, err)
		}
		if d.Points != w.points || !d.UpdatedAt.Equal(us(base.Add(w.updated))) {
			t.Errorf("Driver(%s) = %d points at %v, want %d at %v", w.plate, d.Points, d.UpdatedAt, w.points, us(base.Add(w.updated)))
		}
	}
	for _, p := range []string{"P-4", "NEVER-SEEN"} {
		_, err := s.Driver(ctx, p)
		wantCode(t, err, tes.ENOTFOUND, "Driver("+p+")")
	}
}

// walkDrivers follows next keys to "" and returns the plates seen.
func walkDrivers(t *testing.T, s tes.Store, f tes.DriverFilter) []string {
	t.Helper()
	var plates []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("Drivers(%+v): the key does not advance", f)
		}
		page, next, err := s.Drivers(context.Background(), f)
		if err != nil {
			t.Fatalf("Drivers(%+v): %v", f, err)
		}
		if f.Limit > 0 && len(page) > f.Limit {
			t.Fatalf("page of %d, limit %d", len(page), f.Limit)
		}
		for _, d := range page {
			plates = append(plates, d.Plate)
		}
		if next == "" {
			return plates
		}
		f.AfterPlateKey = next
	}
}

func testDriverPages(t *testing.T, s tes.Store) {
	seedDrivers(t, s)
	tests := []struct {
		name string
		f    tes.DriverFilter
		want []string
	}{
		{"all", tes.DriverFilter{}, []string{"P-1", "P-3", "P-2"}},
		{"limit 1", tes.DriverFilter{Limit: 1}, []string{"P-1", "P-3", "P-2"}},
		{"limit 2", tes.DriverFilter{Limit: 2}, []string{"P-1", "P-3", "P-2"}},
		{"limit 3", tes.DriverFilter{Limit: 3}, []string{"P-1", "P-3", "P-2"}},
		{"min points", tes.DriverFilter{MinPoints: 10, Limit: 1}, []string{"P-1", "P-2"}},
		{"min points high", tes.DriverFilter{MinPoints: 50}, []string{"P-1"}},
		{"min points none", tes.DriverFilter{MinPoints: 81, Limit: 1}, nil},
		{"plate", tes.DriverFilter{Plate: "P-2"}, []string{"P-2"}},
		{"plate below min points", tes.DriverFilter{Plate: "P-2", MinPoints: 11}, nil},
		{"unknown plate", tes.DriverFilter{Plate: "P-4"}, nil},
	}
	for _, tt := range tests {
		if got := walkDrivers(t, s, tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	ctx := context.Background()
	_, _, err := s.Drivers(ctx, tes.DriverFilter{AfterPlateKey: "not a key"})
	wantCode(t, err, tes.EINVALID, "Drivers with a malformed key")
	_, _, err = s.Drivers(ctx, tes.DriverFilter{Limit: 1001})
	wantCode(t, err, tes.EINVALID, "Drivers with limit 1001")
}
