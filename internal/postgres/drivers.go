package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

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
	var updated time.Time
	err = db.pool.QueryRow(ctx, `SELECT record_enc, updated_at FROM drivers WHERE plate_key = $1`, key).Scan(&enc, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "No driver record for plate %s.", p)
	} else if err != nil {
		return nil, wrap("driver", err)
	}
	rec, err := db.openDriver(enc, key)
	if err != nil {
		return nil, wrap("driver", err)
	}
	return &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: updated.UTC()}, nil
}

// Drivers returns a page of driver records, most recently updated first,
// and the key of the next page ("" at the end; the same keys as
// internal/sqlite's); see storekit.DriversPage for how MinPoints pages.
// f.Plate selects one plate exactly. Limit 0 means 50; outside 1..1000 it
// is EINVALID.
func (db *DB) Drivers(ctx context.Context, f tes.DriverFilter) ([]*tes.Driver, string, error) {
	return storekit.DriversPage(ctx, f, storekit.DriverSource{
		One:  db.Driver,
		Rows: db.driverRows,
		Open: func(r *storekit.DriverRow) (*tes.Driver, error) {
			rec, err := db.openDriver(r.Sealed, r.PlateKey)
			if err != nil {
				return nil, wrap("drivers", err)
			}
			return &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: time.UnixMicro(r.UpdatedMicros).UTC()}, nil
		},
	})
}

// driverRows reads n driver rows after the keyset position after (nil for
// the first page), newest first, as one range scan of drivers_updated.
func (db *DB) driverRows(ctx context.Context, after *storekit.DriverCursor, n int) ([]storekit.DriverRow, error) {
	q := `SELECT plate_key, record_enc, updated_at FROM drivers`
	var p params
	if after != nil {
		q += ` WHERE (updated_at, plate_key) < (` + p.add(time.UnixMicro(after.UpdatedMicros).UTC()) + `, ` + p.add(after.PlateKey) + `)`
	}
	q += ` ORDER BY updated_at DESC, plate_key DESC LIMIT ` + p.add(n)
	rows, err := db.pool.Query(ctx, q, p...)
	if err != nil {
		return nil, wrap("drivers", err)
	}
	defer rows.Close()
	var out []storekit.DriverRow
	for rows.Next() {
		var r storekit.DriverRow
		var updated time.Time
		if err := rows.Scan(&r.PlateKey, &r.Sealed, &updated); err != nil {
			return nil, wrap("drivers", err)
		}
		r.UpdatedMicros = updated.UnixMicro()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("drivers", err)
	}
	return out, nil
}
