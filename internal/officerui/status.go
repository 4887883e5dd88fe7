package officerui

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/tes-traffic/tes"
)

type countRow struct {
	Status tes.Status
	N      int
}

type statusData struct {
	Have      bool // cfg.Status is set
	S         tes.ServerStatus
	Uptime    string
	Counts    []countRow
	Total     int
	Events    []*tes.Event
	OlderURL  string
	NewerURL  string
	PerMinute *barChart
	LastMin   int
}

// eventsPage is how many audit events the status page shows at a time.
const eventsPage = 25

// statusPage shows what the original's status page showed and more: the
// server's key fingerprints, uptime, open connections, reports per minute,
// counts by status and the recent audit events (the original's log view).
func (ui *UI) statusPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var d statusData
	if ui.cfg.Status != nil {
		d.Have = true
		d.S = ui.cfg.Status()
		if !d.S.StartedAt.IsZero() {
			d.Uptime = ago(ui.now().Sub(d.S.StartedAt))
		}
		if n := len(d.S.PerMinute); n > 0 {
			d.LastMin = d.S.PerMinute[n-1]
			labels := make([]string, n)
			for i := range labels {
				labels[i] = fmt.Sprintf("−%d min", n-1-i)
			}
			labels[n-1] = "now"
			d.PerMinute = newBarChart("Reports acknowledged per minute", "reports", d.S.PerMinute, labels, max(1, n/6))
		}
	}
	counts, err := ui.store.CountByStatus(ctx)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	for _, s := range tes.Statuses {
		d.Counts = append(d.Counts, countRow{s, counts[s]})
		d.Total += counts[s]
	}
	var before int64
	if s := r.URL.Query().Get("before"); s != "" {
		before, err = strconv.ParseInt(s, 10, 64)
		if err != nil || before < 0 {
			ui.pageError(w, r, tes.Errorf(tes.EINVALID, "Invalid event position %q.", s))
			return
		}
		d.NewerURL = "/status"
	}
	d.Events, err = ui.store.Events(ctx, before, eventsPage)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	if n := len(d.Events); n == eventsPage && d.Events[n-1].Seq > 1 {
		d.OlderURL = "/status?before=" + strconv.FormatInt(d.Events[n-1].Seq, 10)
	}
	ui.render(w, r, http.StatusOK, "status", &view{Nav: "status", D: &d})
}
