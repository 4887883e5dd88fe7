package storekit

import (
	"context"
	"fmt"
	"testing"

	"github.com/tes-traffic/tes"
)

func TestPageLimit(t *testing.T) {
	for _, tc := range []struct {
		in, want int
		ok       bool
	}{{0, 50, true}, {1, 1, true}, {1000, 1000, true}, {-1, 0, false}, {1001, 0, false}} {
		got, err := PageLimit(tc.in)
		if got != tc.want || (err == nil) != tc.ok || !tc.ok && tes.ErrorCode(err) != tes.EINVALID {
			t.Errorf("PageLimit(%d) = %d, %v", tc.in, got, err)
		}
	}
}

func TestDriverKey(t *testing.T) {
	c := DriverCursor{UpdatedMicros: 1767225600123456, PlateKey: make([]byte, 32)}
	c.PlateKey[31] = 0xab
	got, err := ParseDriverKey(c.Key())
	if err != nil || got.UpdatedMicros != c.UpdatedMicros || string(got.PlateKey) != string(c.PlateKey) {
		t.Fatalf("round trip of %q = %+v, %v", c.Key(), got, err)
	}
	for _, bad := range []string{"", "12", "x:00", "12:zz", "12:" + fmt.Sprintf("%062x", 1)} {
		if _, err := ParseDriverKey(bad); tes.ErrorCode(err) != tes.EINVALID {
			t.Errorf("ParseDriverKey(%q) = %v, want EINVALID", bad, err)
		}
	}
}

// fakeDrivers is n drivers in the drivers order; driver i has points[i].
type fakeDrivers struct{ points []int }

func (f *fakeDrivers) source() DriverSource {
	row := func(i int) DriverRow {
		key := make([]byte, 32)
		key[0], key[1] = byte(i>>8), byte(i)
		// Newest first: row i is older than row i-1.
		return DriverRow{DriverCursor{UpdatedMicros: int64(1_000_000 - i), PlateKey: key}, []byte{byte(i >> 8), byte(i)}}
	}
	return DriverSource{
		One: func(_ context.Context, plate string) (*tes.Driver, error) {
			return nil, tes.Errorf(tes.ENOTFOUND, "no %s", plate)
		},
		Rows: func(_ context.Context, after *DriverCursor, n int) ([]DriverRow, error) {
			start := 0
			if after != nil {
				start = 1_000_000 - int(after.UpdatedMicros) + 1
			}
			var out []DriverRow
			for i := start; i < len(f.points) && len(out) < n; i++ {
				out = append(out, row(i))
			}
			return out, nil
		},
		Open: func(r *DriverRow) (*tes.Driver, error) {
			i := int(r.Sealed[0])<<8 | int(r.Sealed[1])
			return &tes.Driver{Plate: fmt.Sprintf("P%d", i), Points: f.points[i]}, nil
		},
	}
}

// TestDriversPage walks every page with and without a points filter and
// checks that each driver is seen once, in order, and that a filtered page
// stops after its budget with a key to go on.
func TestDriversPage(t *testing.T) {
	f := &fakeDrivers{}
	for i := range 2600 {
		p := 0
		if i%700 == 699 {
			p = 120 // three drivers over the threshold, far apart
		}
		f.points = append(f.points, p)
	}
	walk := func(filter tes.DriverFilter) (seen []string, pages int) {
		for {
			page, next, err := DriversPage(context.Background(), filter, f.source())
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, d := range page {
				seen = append(seen, d.Plate)
			}
			if next == "" {
				return seen, pages
			}
			filter.AfterPlateKey = next
		}
	}
	all, pages := walk(tes.DriverFilter{Limit: 100})
	if len(all) != 2600 || pages != 26 || all[0] != "P0" || all[2599] != "P2599" {
		t.Fatalf("unfiltered: %d drivers over %d pages", len(all), pages)
	}
	high, pages := walk(tes.DriverFilter{Limit: 10, MinPoints: 100})
	if fmt.Sprint(high) != "[P699 P1399 P2099]" || pages != 3 {
		t.Fatalf("MinPoints 100: %v over %d pages (budget 1000 rows a page)", high, pages)
	}
	if d, next, err := DriversPage(context.Background(), tes.DriverFilter{Plate: "ZZ1"}, f.source()); err != nil || len(d) != 0 || next != "" {
		t.Fatalf("unknown plate: %v %q %v", d, next, err)
	}
}
