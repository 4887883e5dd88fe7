package postgres

import (
	"context"
	"time"

	"github.com/tes-traffic/tes"
)

// MaxStatusQuery bounds how many report ids one ReportStatuses call takes.
const MaxStatusQuery = 500

// ReportStatuses returns the review state of user's reports among
// reportIDs (the report_id index makes each one a point lookup). Ids that
// are not canonical lower-case UUIDs cannot be stored, so they are left
// out like unknown ones. More than MaxStatusQuery ids is EINVALID.
func (db *DB) ReportStatuses(ctx context.Context, user string, reportIDs []string) ([]tes.ReportStatus, error) {
	if len(reportIDs) > MaxStatusQuery {
		return nil, tes.Errorf(tes.EINVALID, "Ask about at most %d reports at a time.", MaxStatusQuery)
	}
	ids := make([]string, 0, len(reportIDs))
	for _, id := range reportIDs {
		if v, err := tes.ValidateReportID(id); err == nil && v == id && id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT report_id::text, id, status, reject_reason, decided_at, points_applied FROM violations
		WHERE reported_by = $1 AND report_id = ANY($2::uuid[])`, user, ids)
	if err != nil {
		return nil, wrap("report statuses", err)
	}
	defer rows.Close()
	var out []tes.ReportStatus
	for rows.Next() {
		var s tes.ReportStatus
		var reason *string
		var decided *time.Time
		if err := rows.Scan(&s.ReportID, &s.ViolationID, &s.Status, &reason, &decided, &s.Points); err != nil {
			return nil, wrap("report statuses", err)
		}
		s.RejectReason = tes.RejectReason(deref(reason))
		s.DecidedAt = fromNullTS(decided)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("report statuses", err)
	}
	return out, nil
}
