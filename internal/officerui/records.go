package officerui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tes-traffic/tes"
)

type recordsData struct {
	Plate     string // the search box
	Over      bool   // only drivers at or over the threshold
	Drivers   []*tes.Driver
	NextURL   string
	FirstURL  string
	ExportURL string
}

// recordsPage lists driver records (points decrypted for display only), a
// page at a time, optionally only those at or over the threshold. A plate
// search goes to that plate's page.
func (ui *UI) recordsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := recordsData{Plate: strings.TrimSpace(q.Get("plate")), Over: q.Get("over") == "1"}
	v := &view{Nav: "records", D: &d}
	if d.Plate != "" {
		p, err := tes.NormalizePlate(d.Plate)
		if err != nil {
			v.Error = ui.errorText(r, err)
			ui.render(w, r, httpStatus(err), "records", v)
			return
		}
		http.Redirect(w, r, "/records/"+url.PathEscape(p), http.StatusSeeOther)
		return
	}
	f := ui.driverFilter(d.Over)
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPage {
			err := tes.Errorf(tes.EINVALID, "Invalid limit: a whole number from 1 to %d.", maxPage)
			v.Error = ui.errorText(r, err)
			ui.render(w, r, httpStatus(err), "records", v)
			return
		}
		f.Limit = n
	}
	limit := f.Limit
	after := q.Get("after")
	f.AfterPlateKey = after
	drivers, next, err := ui.store.Drivers(r.Context(), f)
	// Points are encrypted, so the store filters by points after reading and
	// may return a short page with more to come: read on a little to fill it.
	for i := 0; err == nil && d.Over && len(drivers) < limit && next != "" && i < 10; i++ {
		var more []*tes.Driver
		f.AfterPlateKey, f.Limit = next, limit-len(drivers)
		more, next, err = ui.store.Drivers(r.Context(), f)
		drivers = append(drivers, more...)
	}
	if err != nil {
		v.Error = ui.errorText(r, err)
		ui.render(w, r, httpStatus(err), "records", v)
		return
	}
	d.Drivers = drivers
	base := url.Values{}
	if d.Over {
		base.Set("over", "1")
	}
	if limit != defaultPage {
		base.Set("limit", strconv.Itoa(limit))
	}
	exp := url.Values{}
	if d.Over {
		exp.Set("over", "1")
	}
	d.ExportURL = "/export/records.csv?" + exp.Encode()
	if next != "" {
		nv := url.Values{}
		for k, vs := range base {
			nv[k] = vs
		}
		nv.Set("after", next)
		d.NextURL = "/records?" + nv.Encode()
	}
	if after != "" {
		d.FirstURL = "/records?" + base.Encode()
	}
	ui.render(w, r, http.StatusOK, "records", v)
}

func (ui *UI) driverFilter(over bool) tes.DriverFilter {
	f := tes.DriverFilter{Limit: defaultPage}
	if over {
		f.MinPoints = ui.threshold
	}
	return f
}

type driverData struct {
	Plate    string
	Driver   *tes.Driver // nil when nothing was approved for the plate yet
	Rows     []row
	NextURL  string
	FirstURL string
}

// driverPage shows one plate's record and its history of violations and
// decisions, newest first.
func (ui *UI) driverPage(w http.ResponseWriter, r *http.Request) {
	plate, err := tes.NormalizePlate(r.PathValue("plate"))
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	ctx := r.Context()
	d := driverData{Plate: plate}
	if drv, err := ui.store.Driver(ctx, plate); err == nil {
		d.Driver = drv
	} else if tes.ErrorCode(err) != tes.ENOTFOUND {
		ui.pageError(w, r, err)
		return
	}
	q := url.Values{"status": {"all"}, "plate": {plate}, "after": {r.URL.Query().Get("after")}}
	qq, f, err := ui.parseQueue(q, "all")
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	vs, next, err := ui.review.Violations(ctx, current(r).User, f)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	if d.Driver == nil && len(vs) == 0 && qq.After == "" {
		ui.renderError(w, r, http.StatusNotFound, "There is no record and no violation for plate "+plate+". Check the plate and search again.")
		return
	}
	d.Rows = ui.rows(vs)
	self := "/records/" + url.PathEscape(plate)
	if next != nil {
		d.NextURL = self + "?after=" + url.QueryEscape(formatCursor(next))
	}
	if qq.After != "" {
		d.FirstURL = self
	}
	ui.render(w, r, http.StatusOK, "driver", &view{Nav: "records", D: &d})
}
