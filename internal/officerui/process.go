package officerui

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tes-traffic/tes"
)

type processData struct {
	V        row
	Driver   *tes.Driver // nil when the plate has no record yet
	History  []row       // the plate's other recent violations
	Reason   string      // the reject form, refilled after an error
	Note     string
	Conflict bool          // a decision was refused because the violation was already decided
	Evidence *evidenceView // checked again on every load (evidence.go)
}

// processPage is the original's /process/<id>: every fact of one violation,
// its evidence checked again now, the points the rules give and the Approve
// and Reject forms, or the outcome when it has been decided.
func (ui *UI) processPage(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	ui.showProcess(w, r, http.StatusOK, id, &view{Flash: flash(r)}, processData{})
}

// showProcess renders the process page of id with status, v's messages and
// d's form values.
func (ui *UI) showProcess(w http.ResponseWriter, r *http.Request, status int, id int64, v *view, d processData) {
	ctx := r.Context()
	viol, err := ui.review.Violation(ctx, current(r).User, id)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	d.V = row{Violation: viol, Points: ui.review.Points(viol)}
	d.Evidence = ui.describeEvidence(viol)
	if drv, err := ui.store.Driver(ctx, viol.Plate); err == nil {
		d.Driver = drv
	} else if tes.ErrorCode(err) != tes.ENOTFOUND {
		ui.pageError(w, r, err)
		return
	}
	hist, _, err := ui.store.Violations(ctx, tes.ViolationFilter{Plate: viol.Plate, Limit: 11})
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	for _, h := range hist {
		if h.ID != viol.ID && len(d.History) < 10 {
			d.History = append(d.History, row{Violation: h, Points: ui.review.Points(h)})
		}
	}
	v.Nav = "queue"
	v.D = &d
	ui.render(w, r, status, "process", v)
}

// processApprove approves one violation. The points come from the rules and
// the stored speed; anything the form says about points is ignored. A
// second decision is refused with 409 and the page says who decided it.
func (ui *UI) processApprove(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	if _, err := ui.review.Approve(r.Context(), current(r).User, id); err != nil {
		ui.decisionFailed(w, r, id, err, processData{})
		return
	}
	http.Redirect(w, r, "/process/"+strconv.FormatInt(id, 10)+"?msg=approved", http.StatusSeeOther)
}

// processReject rejects one violation with a coded reason and a note.
func (ui *UI) processReject(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	reason, note := r.PostFormValue("reason"), r.PostFormValue("note")
	if reason == "" {
		ui.decisionFailed(w, r, id, tes.Errorf(tes.EINVALID, "Choose a reason for the rejection."), processData{Note: note})
		return
	}
	if _, err := ui.review.Reject(r.Context(), current(r).User, id, tes.RejectReason(reason), note); err != nil {
		ui.decisionFailed(w, r, id, err, processData{Reason: reason, Note: note})
		return
	}
	http.Redirect(w, r, "/process/"+strconv.FormatInt(id, 10)+"?msg=rejected", http.StatusSeeOther)
}

// decisionFailed re-renders the process page with the error: 409 with who
// decided it and when for a second decision, 400 with the form refilled for
// bad input, the error page for anything else.
func (ui *UI) decisionFailed(w http.ResponseWriter, r *http.Request, id int64, err error, d processData) {
	switch tes.ErrorCode(err) {
	case tes.ECONFLICT:
		d.Conflict = true
		ui.showProcess(w, r, http.StatusConflict, id, &view{Error: ui.conflictText(r.Context(), id, err)}, d)
	case tes.EINVALID:
		ui.showProcess(w, r, http.StatusBadRequest, id, &view{Error: ui.errorText(r, err)}, d)
	default:
		ui.pageError(w, r, err)
	}
}

// conflictText says who decided violation id and when. It reads the
// violation again so the message is the same whatever the store's wording.
func (ui *UI) conflictText(ctx context.Context, id int64, err error) string {
	v, verr := ui.store.Violation(ctx, id)
	if verr != nil || v.Status == tes.StatusPending {
		return tes.ErrorMessage(err)
	}
	return fmt.Sprintf("Violation %d was already decided by %s at %s (%s). Nothing was changed.",
		id, v.DecidedBy, v.DecidedAt.In(ui.loc).Format("2006-01-02 15:04:05 MST"), strings.ToLower(string(v.Status)))
}
