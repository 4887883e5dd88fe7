package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

// violationColumns selects a whole violation with its client key joined
// back; scanViolation reads them in this order.
const violationColumns = `v.id, v.report_id::text, v.plate_enc, v.speed, v.speed_limit, v.location_enc,
	v.observed_at, v.received_at, v.reported_by, v.suite, v.ev_signed, v.ev_sig, v.ev_key_fp, k.public_key,
	v.device_id, v.sig_verified, v.status, v.decided_by, v.decided_at, v.reject_reason, v.reject_note,
	v.points_applied, v.plate_key`

const violationJoin = ` LEFT JOIN client_keys k ON k.fingerprint = v.ev_key_fp`

// scanViolation reads one row of violationColumns and decrypts it. It also
// returns the row's plate key, which Decide needs for the driver record.
func (db *DB) scanViolation(row pgx.Row) (*tes.Violation, []byte, error) {
	var (
		v                                        tes.Violation
		reportID, keyFP, decidedBy, reason, note *string
		observed, decided                        *time.Time
		plateEnc, locEnc, plateKey               []byte
		status                                   string
	)
	err := row.Scan(&v.ID, &reportID, &plateEnc, &v.Speed, &v.SpeedLimit, &locEnc,
		&observed, &v.ReceivedAt, &v.ReportedBy, &v.Suite, &v.Evidence.Signed, &v.Evidence.Signature, &keyFP, &v.Evidence.PublicKey,
		&v.Evidence.DeviceID, &v.SigVerified, &status, &decidedBy, &decided, &reason, &note,
		&v.PointsApplied, &plateKey)
	if err != nil {
		return nil, nil, err
	}
	plate, err := db.keys.Open(plateEnc, aadPlate)
	if err != nil {
		return nil, nil, fmt.Errorf("violation %d: plate: %w", v.ID, err)
	}
	v.Plate = string(plate)
	if locEnc != nil {
		loc, err := db.keys.Open(locEnc, aadLocation)
		if err != nil {
			return nil, nil, fmt.Errorf("violation %d: location: %w", v.ID, err)
		}
		v.Location = string(loc)
	}
	v.ReportID = deref(reportID)
	v.ObservedAt = fromNullTS(observed)
	v.ReceivedAt = v.ReceivedAt.UTC()
	v.Evidence.KeyFingerprint = deref(keyFP)
	v.Status = tes.Status(status)
	v.DecidedBy = deref(decidedBy)
	v.DecidedAt = fromNullTS(decided)
	v.RejectReason = tes.RejectReason(deref(reason))
	v.RejectNote = deref(note)
	return &v, plateKey, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Violation returns one violation or an ENOTFOUND error.
func (db *DB) Violation(ctx context.Context, id int64) (*tes.Violation, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+violationColumns+` FROM violations v`+violationJoin+` WHERE v.id = $1`, id)
	v, _, err := db.scanViolation(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "Violation %d not found.", id)
	} else if err != nil {
		return nil, wrap("violation", err)
	}
	return v, nil
}

// params collects positional query parameters: add appends one and
// returns its placeholder.
type params []any

func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// violationsQuery builds the SQL for one page of f. The keyset condition
// is a row-value comparison on (key, id), which PostgreSQL turns into a
// range bound on the (…, key, id) indexes of the migrations; the planner
// picks the index. With no plate, reporter or status filter, the page is
// the merge of one page of each status (UNION ALL of three LIMITed
// subqueries, each a range of a status index): there is no index led by
// received_at or speed alone (migration 0004).
func (db *DB) violationsQuery(f *tes.ViolationFilter, limit int) (string, []any, error) {
	var keyCol string
	desc := true
	switch f.Sort {
	case "", "time":
		keyCol = "received_at"
	case "time_asc":
		keyCol, desc = "received_at", false
	case "speed":
		keyCol = "speed"
	case "speed_asc":
		keyCol, desc = "speed", false
	default:
		return "", nil, tes.Errorf(tes.EINVALID, "Unknown sort %q: use time, time_asc, speed or speed_asc.", f.Sort)
	}
	if f.MinSpeed < 0 || f.MaxSpeed < 0 {
		return "", nil, tes.Errorf(tes.EINVALID, "Speeds in a filter cannot be negative.")
	}
	var status tes.Status
	if f.Status != "" {
		st, err := tes.ParseStatus(string(f.Status))
		if err != nil {
			return "", nil, err
		}
		status = st
	}
	var (
		where []string
		p     params
	)
	if f.Plate != "" {
		plate, err := tes.NormalizePlate(f.Plate)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "v.plate_key = "+p.add(db.keys.Index(plate)))
	}
	if f.ReportedBy != "" {
		where = append(where, "v.reported_by = "+p.add(f.ReportedBy))
	}
	if !f.From.IsZero() {
		where = append(where, "v.received_at >= "+p.add(ts(f.From)))
	}
	if !f.To.IsZero() {
		where = append(where, "v.received_at < "+p.add(ts(f.To)))
	}
	if f.MinSpeed > 0 {
		where = append(where, "v.speed >= "+p.add(f.MinSpeed))
	}
	if f.MaxSpeed > 0 {
		where = append(where, "v.speed <= "+p.add(f.MaxSpeed))
	}
	cmp, dir := ">", "ASC"
	if desc {
		cmp, dir = "<", "DESC"
	}
	if f.After != nil {
		var key any = f.After.Key
		if keyCol == "received_at" {
			key = time.UnixMicro(f.After.Key).UTC()
		}
		where = append(where, "(v."+keyCol+", v.id) "+cmp+" ("+p.add(key)+", "+p.add(f.After.ID)+")")
	}
	lim := p.add(limit)
	// page is one page of the rows that match where, in the page's order.
	page := func(b *strings.Builder, where []string) {
		b.WriteString("SELECT ")
		b.WriteString(violationColumns)
		b.WriteString(" FROM violations v")
		b.WriteString(violationJoin)
		if len(where) > 0 {
			b.WriteString(" WHERE ")
			b.WriteString(strings.Join(where, " AND "))
		}
		fmt.Fprintf(b, " ORDER BY v.%s %s, v.id %s LIMIT %s", keyCol, dir, dir, lim)
	}
	var b strings.Builder
	if status != "" {
		where = append(where, "v.status = "+p.add(string(status)))
	}
	if status != "" || f.Plate != "" || f.ReportedBy != "" {
		page(&b, where)
		return b.String(), p, nil
	}
	for i, st := range tes.Statuses {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("(")
		page(&b, append(where[:len(where):len(where)], "v.status = "+p.add(string(st))))
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " ORDER BY %s %s, id %s LIMIT %s", keyCol, dir, dir, lim)
	return b.String(), p, nil
}

// Violations returns a page of violations and the cursor of the next page,
// nil at the end; see tes.ViolationFilter. From is inclusive, To exclusive,
// MinSpeed and MaxSpeed inclusive. Limit 0 means 50; a limit outside
// 1..1000 or an unknown sort or status is EINVALID. Only the returned rows
// are decrypted.
func (db *DB) Violations(ctx context.Context, f tes.ViolationFilter) ([]*tes.Violation, *tes.Cursor, error) {
	limit, err := storekit.PageLimit(f.Limit)
	if err != nil {
		return nil, nil, err
	}
	q, args, err := db.violationsQuery(&f, limit+1)
	if err != nil {
		return nil, nil, err
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, wrap("violations", err)
	}
	defer rows.Close()
	out := make([]*tes.Violation, 0, min(limit, 64))
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true // the extra row says a next page exists; not decrypted
			break
		}
		v, _, err := db.scanViolation(rows)
		if err != nil {
			return nil, nil, wrap("violations", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap("violations", err)
	}
	if !more {
		return out, nil, nil
	}
	last := out[limit-1]
	next := &tes.Cursor{ID: last.ID, Key: last.ReceivedAt.UnixMicro()}
	if f.Sort == "speed" || f.Sort == "speed_asc" {
		next.Key = int64(last.Speed)
	}
	return out, next, nil
}

// CountByStatus returns how many violations are in each status, every
// status present. It reads counters kept in the same transactions as the
// rows, so it costs the same at a million rows as at ten.
func (db *DB) CountByStatus(ctx context.Context) (map[tes.Status]int, error) {
	rows, err := db.pool.Query(ctx, `SELECT status, n FROM violation_counts`)
	if err != nil {
		return nil, wrap("count", err)
	}
	defer rows.Close()
	out := map[tes.Status]int{tes.StatusPending: 0, tes.StatusApproved: 0, tes.StatusRejected: 0}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, wrap("count", err)
		}
		out[tes.Status(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("count", err)
	}
	return out, nil
}
