package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/tes-traffic/tes"
)

var _ tes.ReportStatusStore = (*DB)(nil)

// MaxStatusQuery bounds how many report ids one ReportStatuses call takes.
const MaxStatusQuery = 500

// ReportStatuses returns the review state of user's reports among
// reportIDs (the report_id index makes each one a point lookup).
func (db *DB) ReportStatuses(ctx context.Context, user string, reportIDs []string) ([]tes.ReportStatus, error) {
	if len(reportIDs) > MaxStatusQuery {
		return nil, tes.Errorf(tes.EINVALID, "Ask about at most %d reports at a time.", MaxStatusQuery)
	}
	if len(reportIDs) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(reportIDs)+1)
	args = append(args, user)
	for _, id := range reportIDs {
		args = append(args, id)
	}
	q := `SELECT report_id, id, status, reject_reason, decided_at, points_applied FROM violations
		WHERE reported_by = ? AND report_id IN (?` + strings.Repeat(",?", len(reportIDs)-1) + `)`
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: report statuses: %w", err)
	}
	defer rows.Close()
	var out []tes.ReportStatus
	for rows.Next() {
		var s tes.ReportStatus
		var reason *string
		var decided *int64
		if err := rows.Scan(&s.ReportID, &s.ViolationID, &s.Status, &reason, &decided, &s.Points); err != nil {
			return nil, fmt.Errorf("sqlite: report statuses: %w", err)
		}
		if reason != nil {
			s.RejectReason = tes.RejectReason(*reason)
		}
		if decided != nil {
			s.DecidedAt = fromMicros(*decided)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: report statuses: %w", err)
	}
	return out, nil
}
