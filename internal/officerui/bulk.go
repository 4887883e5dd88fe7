package officerui

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/tes-traffic/tes"
)

type bulkRow struct {
	ID      int64
	Plate   string
	OK      bool
	Outcome string
}

type bulkData struct {
	Approve  bool
	Rows     []bulkRow
	Done     int
	Failed   int
	Points   int // total points applied
	Back     string
	Reason   tes.RejectReason
	Selected int
}

// bulkSubmit approves or rejects the selected rows one by one, each with the
// same PENDING guard as a single decision, and shows what happened to each.
func (ui *UI) bulkSubmit(w http.ResponseWriter, r *http.Request) {
	back := localPath(r.PostFormValue("back"))
	d := bulkData{Back: back}
	v := &view{Nav: "queue", D: &d}
	fail := func(err error) {
		v.Error = ui.errorText(r, err)
		ui.render(w, r, httpStatus(err), "bulk", v)
	}

	action := r.PostFormValue("action")
	switch action {
	case "approve":
		d.Approve = true
	case "reject":
	default:
		fail(tes.Errorf(tes.EINVALID, "Choose Approve selected or Reject selected."))
		return
	}
	seen := map[int64]bool{}
	var ids []int64
	for _, s := range r.PostForm["id"] {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			fail(tes.Errorf(tes.EINVALID, "The selection holds an invalid row id %q.", s))
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	d.Selected = len(ids)
	if len(ids) == 0 {
		fail(tes.Errorf(tes.EINVALID, "Select at least one row with its check box first."))
		return
	}
	var reason tes.RejectReason
	note := r.PostFormValue("note")
	if !d.Approve {
		if r.PostFormValue("reason") == "" {
			fail(tes.Errorf(tes.EINVALID, "Choose a reason to reject the selected rows."))
			return
		}
		rr, err := tes.ParseRejectReason(r.PostFormValue("reason"))
		if err != nil {
			fail(err)
			return
		}
		reason = rr
		d.Reason = rr
	}
	results, err := ui.review.Bulk(r.Context(), current(r).User, ids, d.Approve, reason, note)
	if err != nil {
		fail(err)
		return
	}
	for _, res := range results {
		br := bulkRow{ID: res.ID}
		switch {
		case res.Err == nil:
			br.OK = true
			br.Plate = res.Decided.Violation.Plate
			d.Done++
			if d.Approve {
				d.Points += res.Decided.Violation.PointsApplied
				br.Outcome = fmt.Sprintf("Approved: %d points added; record now %d points.", res.Decided.Violation.PointsApplied, res.Decided.DriverTotal)
			} else {
				br.Outcome = "Rejected: " + reason.Label() + "."
			}
		case tes.ErrorCode(res.Err) == tes.ECONFLICT:
			d.Failed++
			br.Outcome = ui.conflictText(r.Context(), res.ID, res.Err)
		default:
			d.Failed++
			br.Outcome = ui.errorText(r, res.Err)
		}
		if br.Plate == "" {
			if viol, err := ui.store.Violation(r.Context(), res.ID); err == nil {
				br.Plate = viol.Plate
			}
		}
		d.Rows = append(d.Rows, br)
	}
	ui.render(w, r, http.StatusOK, "bulk", v)
}
