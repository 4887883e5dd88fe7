package officerui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// row is a violation as a table shows it, with the points the rules give.
type row struct {
	*tes.Violation
	Points int
}

func (ui *UI) rows(vs []*tes.Violation) []row {
	out := make([]row, len(vs))
	for i, v := range vs {
		out[i] = row{Violation: v, Points: ui.review.Points(v)}
	}
	return out
}

type sortLink struct {
	URL   string
	Arrow string // "▼", "▲" or "" when the column is not the sort key
	Aria  string // "descending", "ascending" or "none"
}

// queueRow is one queue line with every cell already formatted: the page
// shows up to a thousand of them, and plain fields render several times
// faster than method and function calls through reflection.
type queueRow struct {
	ID          int64
	Received    string
	ReceivedISO string
	Plate       string
	PlateURL    string
	Speed       int
	Limit       string
	Location    string
	ReportedBy  string
	Points      int
	Status      tes.Status
	StatusClass string
	Pending     bool
}

func (ui *UI) queueRows(vs []*tes.Violation) []queueRow {
	out := make([]queueRow, len(vs))
	for i, v := range vs {
		r := queueRow{
			ID: v.ID, Received: v.ReceivedAt.In(ui.loc).Format("2006-01-02 15:04:05"),
			ReceivedISO: v.ReceivedAt.UTC().Format(time.RFC3339), Plate: v.Plate,
			PlateURL: "/records/" + url.PathEscape(v.Plate), Speed: v.Speed, Limit: "—", Location: v.Location,
			ReportedBy: v.ReportedBy, Points: ui.review.Points(v), Status: v.Status,
			StatusClass: strings.ToLower(string(v.Status)), Pending: v.Status == tes.StatusPending,
		}
		if v.SpeedLimit > 0 {
			r.Limit = strconv.Itoa(v.SpeedLimit)
		}
		if r.Location == "" {
			r.Location = "—"
		}
		out[i] = r
	}
	return out
}

type queueData struct {
	Q         queueQuery
	Rows      []queueRow
	NextURL   string
	FirstURL  string
	ExportURL string
	Back      string // this page, to return to after a bulk decision
	Bands     []bandOption
	SortTime  sortLink
	SortSpeed sortLink
}

// queuePage is the review queue (the original's /dashboard): one keyset page
// of violations, newest first by default, with filters, sorting, the rules'
// points and check boxes for bulk decisions.
func (ui *UI) queuePage(w http.ResponseWriter, r *http.Request) {
	qq, f, err := ui.parseQueue(r.URL.Query(), "pending")
	d := queueData{Q: qq, Bands: ui.bands(), Back: r.URL.RequestURI()}
	d.SortTime, d.SortSpeed = sortLinks(qq)
	v := &view{Nav: "queue", Flash: flash(r), D: &d}
	if err != nil {
		v.Error = ui.errorText(r, err)
		ui.render(w, r, httpStatus(err), "queue", v)
		return
	}
	vs, next, err := ui.review.Violations(r.Context(), current(r).User, f)
	if err != nil {
		v.Error = ui.errorText(r, err)
		ui.render(w, r, httpStatus(err), "queue", v)
		return
	}
	d.Rows = ui.queueRows(vs)
	if next != nil {
		d.NextURL = "/dashboard?" + qq.values(formatCursor(next)).Encode()
	}
	if qq.After != "" {
		d.FirstURL = "/dashboard?" + qq.values("").Encode()
	}
	exp := qq.values("")
	exp.Del("limit")
	d.ExportURL = "/export/violations.csv?" + exp.Encode()
	ui.render(w, r, http.StatusOK, "queue", v)
}

// sortLinks builds the column-header links: a click on the sorted column
// reverses it, a click on the other column sorts by it, newest or fastest
// first.
func sortLinks(qq queueQuery) (byTime, bySpeed sortLink) {
	link := func(s string) string {
		q := qq
		q.Sort = s
		return "/dashboard?" + q.values("").Encode()
	}
	byTime = sortLink{URL: link("time"), Aria: "none"}
	bySpeed = sortLink{URL: link("speed"), Aria: "none"}
	switch qq.Sort {
	case "time":
		byTime = sortLink{URL: link("time_asc"), Arrow: "▼", Aria: "descending"}
	case "time_asc":
		byTime = sortLink{URL: link("time"), Arrow: "▲", Aria: "ascending"}
	case "speed":
		bySpeed = sortLink{URL: link("speed_asc"), Arrow: "▼", Aria: "descending"}
	case "speed_asc":
		bySpeed = sortLink{URL: link("speed"), Arrow: "▲", Aria: "ascending"}
	}
	return byTime, bySpeed
}
