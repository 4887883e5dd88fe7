package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

// Driver returns one plate's penalty record, EINVALID for a malformed plate
// or ENOTFOUND if no violation of the plate was ever approved.
func (db *DB) Driver(ctx context.Context, plate string) (*tes.Driver, error) {
	p, err := tes.NormalizePlate(plate)
	if err != nil {
		return nil, err
	}
	key := db.keys.Index(p)
	var enc []byte
	var updated int64
	err = db.r.QueryRowContext(ctx, `SELECT record_enc, updated_at FROM drivers WHERE plate_key = ?`, key).Scan(&enc, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "No driver record for plate %s.", p)
	} else if err != nil {
		return nil, wrap("driver", err)
	}
	rec, err := db.openDriver(enc, key)
	if err != nil {
		return nil, wrap("driver", err)
	}
	return &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: fromMicros(updated)}, nil
}

// Drivers returns a page of driver records, most recently updated first,
// and the key of the next page ("" at the end); see storekit.DriversPage for
// how MinPoints pages. f.Plate selects one plate exactly. Limit 0 means 50;
// outside 1..1000 it is EINVALID.
func (db *DB) Drivers(ctx context.Context, f tes.DriverFilter) ([]*tes.Driver, string, error) {
	return storekit.DriversPage(ctx, f, storekit.DriverSource{
		One:  db.Driver,
		Rows: db.driverRows,
		Open: func(r *storekit.DriverRow) (*tes.Driver, error) {
			rec, err := db.openDriver(r.Sealed, r.PlateKey)
			if err != nil {
				return nil, wrap("drivers", err)
			}
			return &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: fromMicros(r.UpdatedMicros)}, nil
		},
	})
}

// driversQuery selects n driver rows after the keyset position after (nil
// for the first page), newest first, as one range scan of drivers_updated.
func driversQuery(after *storekit.DriverCursor, n int) (string, []any) {
	q := `SELECT plate_key, record_enc, updated_at FROM drivers INDEXED BY drivers_updated`
	args := make([]any, 0, 3)
	if after != nil {
		q += ` WHERE (updated_at, plate_key) < (?, ?)`
		args = append(args, after.UpdatedMicros, after.PlateKey)
	}
	q += ` ORDER BY updated_at DESC, plate_key DESC LIMIT ?`
	return q, append(args, n)
}

// driverRows reads n driver rows after the keyset position after (nil for
// the first page), newest first, as one range scan of drivers_updated.
func (db *DB) driverRows(ctx context.Context, after *storekit.DriverCursor, n int) ([]storekit.DriverRow, error) {
	q, args := driversQuery(after, n)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("drivers", err)
	}
	defer rows.Close()
	var out []storekit.DriverRow
	for rows.Next() {
		var r storekit.DriverRow
		if err := rows.Scan(&r.PlateKey, &r.Sealed, &r.UpdatedMicros); err != nil {
			return nil, wrap("drivers", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("drivers", err)
	}
	return out, nil
}
