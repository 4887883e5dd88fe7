package policeui

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
)

// historyLimit is how many reports the history page lists.
const historyLimit = 200

// maxFutureSkew is how far in the future an observed time may be: clocks
// on a laptop and a phone differ a little, not by hours.
const maxFutureSkew = 5 * time.Minute

// observedLayout is the value format of <input type="datetime-local">.
const observedLayout = "2006-01-02T15:04"

// reportForm is the observation form as typed, echoed back with the
// messages when something is wrong.
type reportForm struct {
	ReportID   string // generated when the form is shown, so a double submit saves once
	Plate      string
	Speed      string
	SpeedLimit string
	Location   string
	ObservedAt string
	TZ         string // the browser's offset from UTC in minutes, set by the page's script
	NowDefault bool   // ObservedAt is the default "now": the script sets the browser's own now
}

// fieldErrors maps a field name to what is wrong with it.
type fieldErrors map[string]string

type reportData struct {
	Form    reportForm
	Errors  fieldErrors
	Order   []string // fields with errors, in form order, for the summary
	Problem string   // a failure that is not a field's
	Saved   *row     // the report just saved
	Resumed int      // reports from an earlier session being sent now
	Recent  []row
	MaxNow  string // the latest observed time the form accepts
}

// fieldOrder and fieldLabels drive the error summary.
var (
	fieldOrder  = []string{"plate", "speed", "speed_limit", "location", "observed_at"}
	fieldLabels = map[string]string{"plate": "Plate", "speed": "Speed", "speed_limit": "Speed limit",
		"location": "Location", "observed_at": "Observed at"}
)

// reportPage shows the observation form with the status panel and the
// newest reports.
func (ui *UI) reportPage(w http.ResponseWriter, r *http.Request) {
	s := currentSession(r)
	d := &reportData{Form: ui.blankForm()}
	if id := r.URL.Query().Get("saved"); id != "" {
		if e, err := ui.ob.Get(r.Context(), id); err == nil && e.User == s.user && e.Server == s.server {
			rows := ui.buildRows([]*outbox.Entry{e}, s.sender.Status().Decisions)
			d.Saved = &rows[0]
		}
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("resumed")); err == nil && n > 0 && n < 1e9 {
		d.Resumed = n
	}
	ui.renderReport(w, r, http.StatusOK, d, flashes[r.URL.Query().Get("msg")])
}

func (ui *UI) blankForm() reportForm {
	return reportForm{ReportID: tes.NewReportID(), ObservedAt: ui.now().In(ui.loc).Format(observedLayout), NowDefault: true}
}

func (ui *UI) renderReport(w http.ResponseWriter, r *http.Request, status int, d *reportData, flash string) {
	s := currentSession(r)
	list, err := ui.ob.List(r.Context(), s.user, s.server, 5)
	if err != nil {
		ui.log.Error("outbox list", "err", err)
	}
	d.Recent = ui.buildRows(list, s.sender.Status().Decisions)
	d.MaxNow = ui.now().Add(maxFutureSkew).In(ui.loc).Format(observedLayout)
	for _, f := range fieldOrder {
		if d.Errors[f] != "" {
			d.Order = append(d.Order, f)
		}
	}
	// Field errors get their own summary (report.html); anything else is
	// the page's error.
	v := &view{Nav: "report", Flash: flash, Refresh: true, Panel: ui.buildPanel(r, s), Error: d.Problem, D: d}
	ui.render(w, r, status, "report", v)
}

// echo bounds what is shown back in a field: a 10 KB plate is refused, not
// repeated.
func echo(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// parseReport checks every field with the domain's rules (the same the
// officer server applies) and returns the report, or a message per field.
func (ui *UI) parseReport(f reportForm) (*tes.Report, fieldErrors) {
	errs := fieldErrors{}
	r := &tes.Report{}

	if strings.TrimSpace(f.Plate) == "" {
		errs["plate"] = "Enter the licence plate."
	} else if p, err := tes.NormalizePlate(f.Plate); err != nil {
		errs["plate"] = tes.ErrorMessage(err)
	} else {
		r.Plate = p
	}

	if sp := strings.TrimSpace(f.Speed); sp == "" {
		errs["speed"] = "Enter the measured speed in km/h."
	} else if n, err := strconv.Atoi(sp); err != nil {
		errs["speed"] = "Invalid speed: enter a whole number of km/h, for example 87."
	} else if err := tes.ValidateSpeed(n); err != nil {
		errs["speed"] = tes.ErrorMessage(err)
	} else {
		r.Speed = n
	}

	if sl := strings.TrimSpace(f.SpeedLimit); sl != "" {
		if n, err := strconv.Atoi(sl); err != nil {
			errs["speed_limit"] = "Invalid speed limit: enter a whole number of km/h, or leave it empty."
		} else if n < 0 || n > tes.MaxSpeed {
			errs["speed_limit"] = "Invalid speed limit: must be 0 to 500 km/h."
		} else {
			r.SpeedLimit = n
		}
	}

	r.Location = strings.TrimSpace(f.Location)
	if len(r.Location) > tes.MaxLocationLen {
		errs["location"] = "Invalid location: at most 200 characters."
	} else if strings.ContainsFunc(r.Location, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		errs["location"] = "Invalid location: control characters are not allowed."
	}

	loc := ui.loc
	if off, err := strconv.Atoi(f.TZ); err == nil && off >= -14*60 && off <= 14*60 {
		loc = time.FixedZone("", off*60)
	}
	if ob := strings.TrimSpace(f.ObservedAt); ob == "" {
		r.ObservedAt = ui.now().UTC().Truncate(time.Second)
	} else if t, err := parseObserved(ob, loc); err != nil {
		errs["observed_at"] = "Invalid observed time: use the date and time picker, or the form 2026-03-01T14:05."
	} else if t.After(ui.now().Add(maxFutureSkew)) {
		errs["observed_at"] = "The observed time is in the future."
	} else {
		r.ObservedAt = t.UTC()
	}

	if id, err := tes.ValidateReportID(f.ReportID); err == nil && id != "" {
		r.ReportID = id
	} else {
		r.ReportID = tes.NewReportID()
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// The domain's own check has the last word.
	if err := r.Validate(); err != nil {
		errs["plate"] = tes.ErrorMessage(err)
		return nil, errs
	}
	return r, nil
}

func parseObserved(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{observedLayout, "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, tes.Errorf(tes.EINVALID, "bad time")
}

// reportSubmit validates the form, commits the report to the outbox and
// only then says it is queued; the session's sender sends it at once if it
// can. Nothing is saved or sent when a field is wrong.
func (ui *UI) reportSubmit(w http.ResponseWriter, r *http.Request) {
	s := currentSession(r)
	f := reportForm{ReportID: r.PostFormValue("report_id"), Plate: r.PostFormValue("plate"), Speed: r.PostFormValue("speed"),
		SpeedLimit: r.PostFormValue("speed_limit"), Location: r.PostFormValue("location"),
		ObservedAt: r.PostFormValue("observed_at"), TZ: r.PostFormValue("tz")}
	rep, errs := ui.parseReport(f)
	if errs != nil {
		shown := reportForm{ReportID: f.ReportID, Plate: echo(f.Plate), Speed: echo(f.Speed), SpeedLimit: echo(f.SpeedLimit),
			Location: echo(f.Location), ObservedAt: echo(f.ObservedAt)}
		if _, err := tes.ValidateReportID(shown.ReportID); err != nil || shown.ReportID == "" {
			shown.ReportID = tes.NewReportID()
		}
		if len(f.Location) <= tes.MaxLocationLen+50 {
			shown.Location = f.Location
		}
		ui.renderReport(w, r, http.StatusBadRequest, &reportData{Form: shown, Errors: errs}, "")
		return
	}
	e, err := ui.ob.Enqueue(r.Context(), s.user, s.server, rep)
	if tes.ErrorCode(err) == tes.ECONFLICT && e != nil {
		if e.User != s.user || e.Server != s.server {
			ui.renderError(w, r, http.StatusConflict, "This form was already used. Reload the page to write a new report.")
			return
		}
		// The same form submitted twice (a double click, a resend after a
		// dropped response): it is saved once.
	} else if err != nil {
		ui.log.Error("outbox enqueue", "err", err)
		f.TZ = ""
		ui.renderReport(w, r, http.StatusInternalServerError, &reportData{Form: f,
			Problem: "The report could NOT be saved on this device, so it was not queued or sent. Try again; if it keeps failing, write it down and tell an administrator."}, "")
		return
	}
	s.sender.Kick()
	http.Redirect(w, r, "/report?saved="+e.ReportID, http.StatusSeeOther)
}

type historyData struct {
	Rows  []row
	Limit int
}

// historyPage lists the signed-in user's reports for this server.
func (ui *UI) historyPage(w http.ResponseWriter, r *http.Request) {
	s := currentSession(r)
	list, err := ui.ob.List(r.Context(), s.user, s.server, historyLimit)
	if err != nil {
		ui.log.Error("outbox list", "err", err)
		ui.renderError(w, r, http.StatusInternalServerError, "The outbox on this device could not be read. The error has been logged.")
		return
	}
	d := historyData{Rows: ui.buildRows(list, s.sender.Status().Decisions), Limit: historyLimit}
	ui.render(w, r, http.StatusOK, "history", &view{Nav: "history", Refresh: true, Panel: ui.buildPanel(r, s),
		Flash: flashes[r.URL.Query().Get("msg")], D: d})
}
