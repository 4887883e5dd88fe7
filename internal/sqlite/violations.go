package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storekit"
)

// violationColumns selects a whole violation with its client key joined
// back; scanViolation reads them in this order.
const violationColumns = `v.id, v.report_id, v.plate_enc, v.speed, v.speed_limit, v.location_enc,
	v.observed_at, v.received_at, v.reported_by, v.suite, v.ev_signed, v.ev_sig, v.ev_key_fp, k.public_key,
	v.device_id, v.sig_verified, v.status, v.decided_by, v.decided_at, v.reject_reason, v.reject_note,
	v.points_applied, v.plate_key`

const violationJoin = ` LEFT JOIN client_keys k ON k.fingerprint = v.ev_key_fp`

type scanner interface{ Scan(dest ...any) error }

// scanViolation reads one row of violationColumns and decrypts it. It also
// returns the row's plate key, which Decide needs for the driver record.
func (db *DB) scanViolation(sc scanner) (*tes.Violation, []byte, error) {
	var (
		v                                        tes.Violation
		reportID, keyFP, decidedBy, reason, note sql.NullString
		observed, decided                        sql.NullInt64
		received                                 int64
		plateEnc, locEnc, plateKey               []byte
		verified                                 int64
		status                                   string
	)
	err := sc.Scan(&v.ID, &reportID, &plateEnc, &v.Speed, &v.SpeedLimit, &locEnc,
		&observed, &received, &v.ReportedBy, &v.Suite, &v.Evidence.Signed, &v.Evidence.Signature, &keyFP, &v.Evidence.PublicKey,
		&v.Evidence.DeviceID, &verified, &status, &decidedBy, &decided, &reason, &note,
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
	v.ReportID = reportID.String
	v.ObservedAt = fromNullMicros(observed)
	v.ReceivedAt = fromMicros(received)
	v.Evidence.KeyFingerprint = keyFP.String
	v.SigVerified = verified != 0
	v.Status = tes.Status(status)
	v.DecidedBy = decidedBy.String
	v.DecidedAt = fromNullMicros(decided)
	v.RejectReason = tes.RejectReason(reason.String)
	v.RejectNote = note.String
	return &v, plateKey, nil
}

// Violation returns one violation or an ENOTFOUND error.
func (db *DB) Violation(ctx context.Context, id int64) (*tes.Violation, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+violationColumns+` FROM violations v`+violationJoin+` WHERE v.id = ?`, id)
	v, _, err := db.scanViolation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "Violation %d not found.", id)
	} else if err != nil {
		return nil, wrap("violation", err)
	}
	return v, nil
}

// Index names, used with INDEXED BY so that the plan of every dashboard
// query is fixed: a schema change that drops one makes the query fail in
// tests instead of silently scanning a million rows.
//
// There is no index led by received_at or speed alone: a page across every
// status merges one range of each status's index (see violationsQuery).
// Each such index cost the ingest path a B-tree insert per report, and the
// speed one dirties a page per distinct speed in every commit (migration
// 0004 dropped them).
const (
	idxStatusReceived = "violations_status_received"
	idxStatusSpeed    = "violations_status_speed"
	idxPlate          = "violations_plate_received"
	idxReporter       = "violations_reporter"
)

// violationsQuery builds the SQL for one page of f. It picks the index
// by the most selective filter present (plate, then reporter, then status)
// and the sort; the other filters are checked on the rows the index yields.
// The keyset condition is a row-value comparison on (key, id), which SQLite
// turns into a range bound on the index. With no plate, reporter or status
// filter, the page is the merge of one page of each status, read from the
// status index for the sort: at most three pages of rows are read however
// large the table is.
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
		args  []any
		index string
	)
	switch {
	case f.Plate != "":
		plate, err := tes.NormalizePlate(f.Plate)
		if err != nil {
			return "", nil, err
		}
		index = idxPlate
		where = append(where, "v.plate_key = ?")
		args = append(args, db.keys.Index(plate))
	case f.ReportedBy != "":
		index = idxReporter
	case keyCol == "received_at":
		index = idxStatusReceived
	default:
		index = idxStatusSpeed
	}
	if f.ReportedBy != "" {
		where = append(where, "v.reported_by = ?")
		args = append(args, f.ReportedBy)
	}
	if !f.From.IsZero() {
		where = append(where, "v.received_at >= ?")
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "v.received_at < ?")
		args = append(args, micros(f.To))
	}
	if f.MinSpeed > 0 {
		where = append(where, "v.speed >= ?")
		args = append(args, f.MinSpeed)
	}
	if f.MaxSpeed > 0 {
		where = append(where, "v.speed <= ?")
		args = append(args, f.MaxSpeed)
	}
	cmp, dir := ">", "ASC"
	if desc {
		cmp, dir = "<", "DESC"
	}
	if f.After != nil {
		where = append(where, "(v."+keyCol+", v.id) "+cmp+" (?, ?)")
		args = append(args, f.After.Key, f.After.ID)
	}
	order := fmt.Sprintf(" ORDER BY %s %s, id %s LIMIT ?", keyCol, dir, dir)

	// page is one index range: the rows of index that match where, in the
	// page's order.
	page := func(b *strings.Builder, where []string) {
		b.WriteString("SELECT ")
		b.WriteString(violationColumns)
		b.WriteString(" FROM violations v INDEXED BY ")
		b.WriteString(index)
		b.WriteString(violationJoin)
		if len(where) > 0 {
			b.WriteString(" WHERE ")
			b.WriteString(strings.Join(where, " AND "))
		}
		b.WriteString(strings.Replace(order, " ORDER BY ", " ORDER BY v.", 1))
	}
	var b strings.Builder
	if status != "" || index == idxPlate || index == idxReporter {
		if status != "" {
			// Before the keyset bound, so that the two form one index range.
			where = append([]string{"v.status = ?"}, where...)
			args = append([]any{string(status)}, args...)
		}
		page(&b, where)
		return b.String(), append(args, limit), nil
	}
	// Every status: SQLite merges the three ordered pages (MERGE (UNION
	// ALL)); each is a co-routine that stops after limit rows.
	var all []any
	for i, st := range tes.Statuses {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT * FROM (")
		page(&b, append([]string{"v.status = ?"}, where...))
		b.WriteString(")")
		all = append(all, string(st))
		all = append(all, args...)
		all = append(all, limit)
	}
	b.WriteString(order)
	return b.String(), append(all, limit), nil
}

// Violations returns a page of violations and the cursor of the next page,
// nil at the end; see tes.ViolationFilter. From is inclusive, To exclusive,
// MinSpeed and MaxSpeed inclusive. Limit 0 means 50; a limit outside 1..1000
// or an unknown sort or status is EINVALID. Only the returned rows are
// decrypted.
func (db *DB) Violations(ctx context.Context, f tes.ViolationFilter) ([]*tes.Violation, *tes.Cursor, error) {
	limit, err := storekit.PageLimit(f.Limit)
	if err != nil {
		return nil, nil, err
	}
	q, args, err := db.violationsQuery(&f, limit+1)
	if err != nil {
		return nil, nil, err
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, wrap("violations", err)
	}
	defer rows.Close()
	out := make([]*tes.Violation, 0, min(limit, 64))
	more := false
	for rows.Next() {
		if len(out) == limit {
			// The query asked for one row more than the page to learn
			// whether a next page exists; that row is not decrypted.
			more = true
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

// CountByStatus returns how many violations are in each status. Every status
// is present in the map, with 0 when there are none. It reads counters kept
// in the same transactions as the rows, so it costs the same at a million
// rows as at ten.
func (db *DB) CountByStatus(ctx context.Context) (map[tes.Status]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT status, n FROM violation_counts`)
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
