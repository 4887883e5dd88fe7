package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
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

// driverKey is the opaque keyset position of the drivers page, the same
// format as internal/sqlite's: "<updated_at µs>:<hex plate_key>".
func driverKey(updated time.Time, plateKey []byte) string {
	return strconv.FormatInt(updated.UnixMicro(), 10) + ":" + hex.EncodeToString(plateKey)
}

func parseDriverKey(s string) (time.Time, []byte, error) {
	bad := tes.Errorf(tes.EINVALID, "Invalid page key: start again from the first page.")
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return time.Time{}, nil, bad
	}
	updated, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return time.Time{}, nil, bad
	}
	key, err := hex.DecodeString(b)
	if err != nil || len(key) != 32 {
		return time.Time{}, nil, bad
	}
	return time.UnixMicro(updated).UTC(), key, nil
}

type driverRow struct {
	key     []byte
	enc     []byte
	updated time.Time
}

// Drivers returns a page of driver records, most recently updated first,
// and the key of the next page ("" at the end). f.Plate selects one plate
// exactly. Limit 0 means 50; outside 1..1000 it is EINVALID.
//
// Points are encrypted, so f.MinPoints is applied after decryption: the
// store reads rows in order until the page is full or it has examined ten
// pages' worth (at least 1000 rows). With MinPoints set, a page may
// therefore hold fewer than Limit records, even none, while the next key is
// not "": keep following it until it is "".
func (db *DB) Drivers(ctx context.Context, f tes.DriverFilter) ([]*tes.Driver, string, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	if f.Plate != "" {
		d, err := db.Driver(ctx, f.Plate)
		if tes.ErrorCode(err) == tes.ENOTFOUND {
			return []*tes.Driver{}, "", nil
		} else if err != nil {
			return nil, "", err
		}
		if d.Points < f.MinPoints {
			return []*tes.Driver{}, "", nil
		}
		return []*tes.Driver{d}, "", nil
	}
	var after *driverRow
	if f.AfterPlateKey != "" {
		updated, key, err := parseDriverKey(f.AfterPlateKey)
		if err != nil {
			return nil, "", err
		}
		after = &driverRow{key: key, updated: updated}
	}

	budget := max(1000, 10*limit)
	chunk := limit + 1
	out := make([]*tes.Driver, 0, min(limit, 64))
	examined := 0
	for {
		batch, err := db.driverRows(ctx, after, chunk)
		if err != nil {
			return nil, "", err
		}
		for i := range batch {
			if len(out) == limit || examined >= budget {
				// batch[i] exists beyond what this page shows.
				return out, driverKey(after.updated, after.key), nil
			}
			r := &batch[i]
			rec, err := db.openDriver(r.enc, r.key)
			if err != nil {
				return nil, "", wrap("drivers", err)
			}
			examined++
			after = r
			if rec.Points >= f.MinPoints {
				out = append(out, &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: r.updated})
			}
		}
		if len(batch) < chunk {
			return out, "", nil
		}
	}
}

// driverRows reads n driver rows after the keyset position after (nil for
// the first page), newest first, as one range scan of drivers_updated.
func (db *DB) driverRows(ctx context.Context, after *driverRow, n int) ([]driverRow, error) {
	q := `SELECT plate_key, record_enc, updated_at FROM drivers`
	var p params
	if after != nil {
		q += ` WHERE (updated_at, plate_key) < (` + p.add(after.updated) + `, ` + p.add(after.key) + `)`
	}
	q += ` ORDER BY updated_at DESC, plate_key DESC LIMIT ` + p.add(n)
	rows, err := db.pool.Query(ctx, q, p...)
	if err != nil {
		return nil, wrap("drivers", err)
	}
	defer rows.Close()
	var out []driverRow
	for rows.Next() {
		var r driverRow
		if err := rows.Scan(&r.key, &r.enc, &r.updated); err != nil {
			return nil, wrap("drivers", err)
		}
		r.updated = r.updated.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("drivers", err)
	}
	return out, nil
}
