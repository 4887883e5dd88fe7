package officerui

import (
	"encoding/json"
	"mime"
	"net/http"
	"time"

	"github.com/tes-traffic/tes"
)

// apiViolation is a violation in the JSON API. Times are RFC 3339 in UTC;
// optional times are null when unknown.
type apiViolation struct {
	ID                int64      `json:"id"`
	ReportID          string     `json:"report_id"`
	Plate             string     `json:"plate"`
	Speed             int        `json:"speed"`
	SpeedLimit        int        `json:"speed_limit"`
	Location          string     `json:"location"`
	ObservedAt        *time.Time `json:"observed_at"`
	ReceivedAt        time.Time  `json:"received_at"`
	ReportedBy        string     `json:"reported_by"`
	Suite             string     `json:"suite"`
	Status            tes.Status `json:"status"`
	Points            int        `json:"points"`
	PointsApplied     int        `json:"points_applied"`
	DecidedBy         string     `json:"decided_by"`
	DecidedAt         *time.Time `json:"decided_at"`
	RejectReason      string     `json:"reject_reason"`
	RejectNote        string     `json:"reject_note"`
	SignatureVerified bool       `json:"signature_verified"`
	KeyFingerprint    string     `json:"key_fingerprint"`
	DeviceID          string     `json:"device_id,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (ui *UI) apiView(v *tes.Violation) apiViolation {
	return apiViolation{
		ID: v.ID, ReportID: v.ReportID, Plate: v.Plate, Speed: v.Speed, SpeedLimit: v.SpeedLimit,
		Location: v.Location, ObservedAt: optTime(v.ObservedAt), ReceivedAt: v.ReceivedAt.UTC(),
		ReportedBy: v.ReportedBy, Suite: v.Suite, Status: v.Status, Points: ui.review.Points(v),
		PointsApplied: v.PointsApplied, DecidedBy: v.DecidedBy, DecidedAt: optTime(v.DecidedAt),
		RejectReason: string(v.RejectReason), RejectNote: v.RejectNote,
		SignatureVerified: v.SigVerified, KeyFingerprint: v.Evidence.KeyFingerprint, DeviceID: v.Evidence.DeviceID,
	}
}

type apiList struct {
	Violations []apiViolation `json:"violations"`
	Next       string         `json:"next"`
}

// apiList answers GET /api/violations?status=&plate=&from=&to=&band=
// &min_speed=&max_speed=&sort=&limit=&after=: one keyset page and the cursor
// of the next ("" at the end). Without status every status is listed.
func (ui *UI) apiList(w http.ResponseWriter, r *http.Request) {
	_, f, err := ui.parseQueue(r.URL.Query(), "all")
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	vs, next, err := ui.review.Violations(r.Context(), current(r).User, f)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	out := apiList{Violations: make([]apiViolation, len(vs)), Next: formatCursor(next)}
	for i, v := range vs {
		out.Violations[i] = ui.apiView(v)
	}
	writeJSON(w, http.StatusOK, out)
}

// apiGet answers GET /api/violations/{id}.
func (ui *UI) apiGet(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	v, err := ui.review.Violation(r.Context(), current(r).User, id)
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ui.apiView(v))
}

type apiDecided struct {
	Violation   apiViolation `json:"violation"`
	DriverTotal int          `json:"driver_total"`
}

// apiApprove answers POST /api/violations/{id}/approve. The body, if any, is
// ignored: points come from the rules. A second decision is 409.
func (ui *UI) apiApprove(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	ui.apiDecide(w, r, id, true, "", "")
}

type rejectBody struct {
	Reason string `json:"reason"`
	Note   string `json:"note"`
}

// apiReject answers POST /api/violations/{id}/reject with a JSON body
// {"reason": "...", "note": "..."} or the same as form fields.
func (ui *UI) apiReject(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	var b rejectBody
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			ui.apiError(w, r, tes.Errorf(tes.EINVALID, "The body is not valid JSON: send {\"reason\": \"...\", \"note\": \"...\"}."))
			return
		}
	} else {
		b.Reason, b.Note = r.PostFormValue("reason"), r.PostFormValue("note")
	}
	ui.apiDecide(w, r, id, false, b.Reason, b.Note)
}

// apiAction is the original dashboard's POST /api/action (form fields id,
// action=approve|reject, and its "points", which is ignored), kept so that
// old scripts keep working, now with authentication, CSRF and the guard.
func (ui *UI) apiAction(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PostFormValue("id"))
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	switch r.PostFormValue("action") {
	case "approve":
		ui.apiDecide(w, r, id, true, "", "")
	case "reject":
		reason := r.PostFormValue("reason")
		if reason == "" {
			reason = string(tes.ReasonOther)
		}
		note := r.PostFormValue("note")
		if note == "" && reason == string(tes.ReasonOther) {
			note = "Rejected through /api/action."
		}
		ui.apiDecide(w, r, id, false, reason, note)
	default:
		ui.apiError(w, r, tes.Errorf(tes.EINVALID, "action must be approve or reject."))
	}
}

func (ui *UI) apiDecide(w http.ResponseWriter, r *http.Request, id int64, approve bool, reason, note string) {
	var d *tes.Decided
	var err error
	if approve {
		d, err = ui.review.Approve(r.Context(), current(r).User, id)
	} else {
		if reason == "" {
			err = tes.Errorf(tes.EINVALID, "A rejection needs a reason: one of plate_unreadable, duplicate, exempt_vehicle, equipment_fault, other.")
		} else {
			d, err = ui.review.Reject(r.Context(), current(r).User, id, tes.RejectReason(reason), note)
		}
	}
	if tes.ErrorCode(err) == tes.ECONFLICT {
		err = &tes.Error{Code: tes.ECONFLICT, Message: ui.conflictText(r.Context(), id, err), Err: err}
	}
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDecided{Violation: ui.apiView(d.Violation), DriverTotal: d.DriverTotal})
}
