// Package storekit is what the two SQL stores (internal/sqlite and
// internal/postgres) share that is not SQL: page-size rules, the opaque
// keyset key of the drivers page, and the drivers paging that has to
// decrypt rows to filter them. Each store keeps its own queries and hands
// this package its rows.
package storekit

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// PageLimit is the page size for a request of n: 0 means 50; outside
// 1..1000 it is EINVALID.
func PageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return 50, nil
	case n < 0 || n > 1000:
		return 0, tes.Errorf(tes.EINVALID, "The page size must be 1 to 1000.")
	}
	return n, nil
}

// DriverCursor is a position in the drivers order (most recently updated
// first, then plate key descending).
type DriverCursor struct {
	UpdatedMicros int64  // updated_at, Unix microseconds
	PlateKey      []byte // 32 bytes
}

// Key is the cursor as the opaque page key: "<updated µs>:<hex plate key>".
func (c DriverCursor) Key() string {
	return strconv.FormatInt(c.UpdatedMicros, 10) + ":" + hex.EncodeToString(c.PlateKey)
}

// ParseDriverKey reads a page key made by Key; anything else is EINVALID.
func ParseDriverKey(s string) (DriverCursor, error) {
	bad := tes.Errorf(tes.EINVALID, "Invalid page key: start again from the first page.")
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return DriverCursor{}, bad
	}
	updated, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return DriverCursor{}, bad
	}
	key, err := hex.DecodeString(b)
	if err != nil || len(key) != 32 {
		return DriverCursor{}, bad
	}
	return DriverCursor{UpdatedMicros: updated, PlateKey: key}, nil
}

// DriverRow is one row of the drivers table as a store reads it: its
// position and its sealed record.
type DriverRow struct {
	DriverCursor
	Sealed []byte
}

// DriverSource is what a store gives DriversPage.
type DriverSource struct {
	// One returns the record of one plate, or ENOTFOUND.
	One func(ctx context.Context, plate string) (*tes.Driver, error)
	// Rows returns up to n rows after the cursor (nil: from the start), in
	// the drivers order.
	Rows func(ctx context.Context, after *DriverCursor, n int) ([]DriverRow, error)
	// Open decrypts a row into its driver record.
	Open func(r *DriverRow) (*tes.Driver, error)
}

// DriversPage implements tes.DriverStore.Drivers over src.
//
// Points are encrypted, so f.MinPoints is applied after decryption: rows
// are read in order until the page is full or ten pages' worth (at least
// 1000 rows) has been examined. With MinPoints set, a page may therefore
// hold fewer than Limit records, even none, while the next key is not "":
// keep following it until it is "".
func DriversPage(ctx context.Context, f tes.DriverFilter, src DriverSource) ([]*tes.Driver, string, error) {
	limit, err := PageLimit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	if f.Plate != "" {
		d, err := src.One(ctx, f.Plate)
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
	var after *DriverCursor
	if f.AfterPlateKey != "" {
		c, err := ParseDriverKey(f.AfterPlateKey)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}

	budget := max(1000, 10*limit)
	chunk := limit + 1
	out := make([]*tes.Driver, 0, min(limit, 64))
	examined := 0
	for {
		batch, err := src.Rows(ctx, after, chunk)
		if err != nil {
			return nil, "", err
		}
		for i := range batch {
			if len(out) == limit || examined >= budget {
				// batch[i] exists beyond what this page shows.
				return out, after.Key(), nil
			}
			r := &batch[i]
			d, err := src.Open(r)
			if err != nil {
				return nil, "", err
			}
			examined++
			after = &r.DriverCursor
			if d.Points >= f.MinPoints {
				out = append(out, d)
			}
		}
		if len(batch) < chunk {
			return out, "", nil
		}
	}
}

// ValidateUser checks what both stores require of an account row.
func ValidateUser(u *tes.User) error {
	if err := tes.ValidateUsername(u.Name); err != nil {
		return err
	}
	if r, err := tes.ParseRole(string(u.Role)); err != nil || r != u.Role {
		return tes.Errorf(tes.EINVALID, "Unknown role %q: use police, officer or admin.", u.Role)
	}
	if u.FailedLogins < 0 {
		return tes.Errorf(tes.EINVALID, "Failed sign-ins cannot be negative.")
	}
	return nil
}

// UpdateUser applies fn to u, the row a store read inside its update
// transaction, with the rules of tes.UserStore.UpdateUser: fn may not
// rename the user, the result must be valid, UpdatedAt left unchanged
// becomes now. fnErr is fn's own error (the store returns it as is); err is
// a rule broken. signOut reports that the password hash changed or the
// account was disabled, so the store must delete the user's web sessions in
// the same transaction.
func UpdateUser(u *tes.User, fn func(*tes.User) error, now time.Time) (signOut bool, fnErr, err error) {
	before := *u
	if err := fn(u); err != nil {
		return false, err, nil
	}
	if u.Name != before.Name {
		return false, nil, tes.Errorf(tes.EINVALID, "A user cannot be renamed.")
	}
	if err := ValidateUser(u); err != nil {
		return false, nil, err
	}
	if u.UpdatedAt.Equal(before.UpdatedAt) {
		u.UpdatedAt = now
	}
	return u.PasswordHash != before.PasswordHash || u.Disabled && !before.Disabled, nil, nil
}
