package officerui

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// exportBatch is how many rows each store read of an export fetches. An
// export is streamed a batch at a time, so memory stays flat however many
// rows match.
const exportBatch = 1000

// csvCell neutralises spreadsheet formula injection (OWASP "CSV
// injection"): a cell that starts with = + - @, a tab or a carriage return is
// prefixed with a single quote, so a spreadsheet shows it as text instead of
// running it.
func csvCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (ui *UI) startCSV(w http.ResponseWriter, name string) *csv.Writer {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	w.Header().Set("Cache-Control", "no-store")
	return csv.NewWriter(w)
}

// exportViolations streams the queue as CSV with the same filters as the
// page (and its sort), all pages, without the page's limit.
func (ui *UI) exportViolations(w http.ResponseWriter, r *http.Request) {
	_, f, err := ui.parseQueue(r.URL.Query(), "pending")
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	f.Limit = exportBatch
	user := current(r).User
	ctx := r.Context()
	// Read the first batch before writing anything, so that an error can
	// still be an error page.
	vs, next, err := ui.review.Violations(ctx, user, f)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	cw := ui.startCSV(w, "violations-"+ui.now().In(ui.loc).Format("20060102-1504")+".csv")
	_ = cw.Write([]string{"id", "report_id", "received_at", "observed_at", "plate", "speed", "speed_limit", "location",
		"reported_by", "suite", "status", "points", "points_applied", "decided_by", "decided_at", "reject_reason",
		"reject_note", "signature_verified", "key_fingerprint"})
	for {
		for _, v := range vs {
			_ = cw.Write([]string{
				strconv.FormatInt(v.ID, 10), csvCell(v.ReportID), csvTime(v.ReceivedAt), csvTime(v.ObservedAt),
				csvCell(v.Plate), strconv.Itoa(v.Speed), strconv.Itoa(v.SpeedLimit), csvCell(v.Location),
				csvCell(v.ReportedBy), csvCell(v.Suite), string(v.Status), strconv.Itoa(ui.review.Points(v)),
				strconv.Itoa(v.PointsApplied), csvCell(v.DecidedBy), csvTime(v.DecidedAt), csvCell(string(v.RejectReason)),
				csvCell(v.RejectNote), strconv.FormatBool(v.SigVerified), csvCell(v.Evidence.KeyFingerprint),
			})
		}
		cw.Flush()
		if next == nil || cw.Error() != nil {
			break
		}
		f.After = next
		if vs, next, err = ui.review.Violations(ctx, user, f); err != nil {
			// The header is gone; all we can do is stop and log.
			ui.log.Error("csv export stopped", "err", err)
			return
		}
	}
}

// exportRecords streams the driver records as CSV, filtered as on screen.
func (ui *UI) exportRecords(w http.ResponseWriter, r *http.Request) {
	f := ui.driverFilter(r.URL.Query().Get("over") == "1")
	f.Limit = exportBatch
	ctx := r.Context()
	ds, next, err := ui.store.Drivers(ctx, f)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	cw := ui.startCSV(w, "records-"+ui.now().In(ui.loc).Format("20060102-1504")+".csv")
	_ = cw.Write([]string{"plate", "points", "over_threshold", "updated_at"})
	for {
		for _, d := range ds {
			_ = cw.Write([]string{csvCell(d.Plate), strconv.Itoa(d.Points), strconv.FormatBool(d.Points >= ui.threshold), csvTime(d.UpdatedAt)})
		}
		cw.Flush()
		if next == "" || cw.Error() != nil {
			break
		}
		f.AfterPlateKey = next
		if ds, next, err = ui.store.Drivers(ctx, f); err != nil {
			ui.log.Error("csv export stopped", "err", err)
			return
		}
	}
}
