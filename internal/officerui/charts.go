package officerui

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/tes-traffic/tes"
)

// Charts are drawn on the server as inline SVG: no chart library, no
// script, and they work under the dashboard's Content-Security-Policy. Each
// chart also comes as a table for screen readers and for exact figures.

// barChart is a bar chart laid out in SVG user units.
type barChart struct {
	Title, Unit   string
	Width, Height int
	PlotX, PlotY  float64 // top-left of the plot area
	PlotW, PlotH  float64
	Bottom        float64 // y of the x axis
	Bars          []bar
	Ticks         []tick
	Total         int
	Max           int
}

type bar struct {
	X, Y, W, H float64
	Label      string // what the bar counts, for the table and the tooltip
	Axis       string // the label drawn under the axis when ShowLabel
	ShowLabel  bool
	LabelX     float64
	Anchor     string // text-anchor of the axis label: kept inside the chart
	Value      int
	Class      string // CSS class: colours by penalty band
}

type tick struct {
	Y     float64
	Label string
}

// newBarChart lays out values (one per bar) with labels; every labelEvery-th
// label is drawn under the axis.
func newBarChart(title, unit string, values []int, labels []string, labelEvery int) *barChart {
	c := &barChart{Title: title, Unit: unit, Width: 760, Height: 260, PlotX: 48, PlotY: 14}
	c.PlotW = float64(c.Width) - c.PlotX - 12
	c.PlotH = float64(c.Height) - c.PlotY - 44
	c.Bottom = c.PlotY + c.PlotH
	for _, v := range values {
		c.Max = max(c.Max, v)
		c.Total += v
	}
	step := niceStep(float64(max(c.Max, 1)) / 4)
	top := step * math.Ceil(float64(max(c.Max, 1))/step)
	for y := 0.0; y <= top+step/2; y += step {
		c.Ticks = append(c.Ticks, tick{Y: c.Bottom - y/top*c.PlotH, Label: thousands(int64(y))})
	}
	n := len(values)
	if n == 0 {
		return c
	}
	band := c.PlotW / float64(n)
	w := math.Max(1, band*0.78)
	for i, v := range values {
		h := float64(v) / top * c.PlotH
		x := c.PlotX + float64(i)*band + (band-w)/2
		b := bar{X: x, Y: c.Bottom - h, W: w, H: h, Value: v, LabelX: x + w/2, Anchor: "middle"}
		switch {
		case b.LabelX > c.PlotX+c.PlotW-40:
			b.LabelX, b.Anchor = x+w, "end"
		case b.LabelX < c.PlotX+20:
			b.LabelX, b.Anchor = x, "start"
		}
		if i < len(labels) {
			b.Label = labels[i]
			b.Axis = labels[i]
		}
		b.ShowLabel = labelEvery > 0 && i%labelEvery == 0
		c.Bars = append(c.Bars, b)
	}
	return c
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

type chartsData struct {
	Available bool
	Days      int
	Hourly    *barChart
	Speeds    *barChart
	Since     time.Time
	Legend    []legendItem
}

type legendItem struct {
	Class, Label string
}

// chartDays is how far back the charts look.
const chartDays = 3

// chartsPage draws violations per hour over the last three days and the
// speed distribution in 10 km/h buckets over the same period. The figures
// come from one aggregate query bounded to the period (tes.StatsStore); a
// store without it shows "charts unavailable".
func (ui *UI) chartsPage(w http.ResponseWriter, r *http.Request) {
	d := chartsData{Days: chartDays}
	v := &view{Nav: "charts", D: &d}
	ss, ok := ui.store.(tes.StatsStore)
	if !ok {
		ui.render(w, r, http.StatusOK, "charts", v)
		return
	}
	now := ui.now().In(ui.loc)
	end := now.Truncate(time.Hour).Add(time.Hour) // the end of the current hour
	since := end.Add(-chartDays * 24 * time.Hour)
	st, err := ss.ViolationStats(r.Context(), since)
	if err != nil {
		v.Error = ui.errorText(r, err)
		ui.render(w, r, httpStatus(err), "charts", v)
		return
	}
	d.Available = true
	d.Since = since

	// Hours with no violation are absent from the stats: fill them with 0.
	byHour := map[int64]int{}
	for _, h := range st.Hourly {
		byHour[h.Hour.Unix()] += h.Count
	}
	hours := chartDays * 24
	values := make([]int, hours)
	labels := make([]string, hours)
	for i := range hours {
		t := since.Add(time.Duration(i) * time.Hour)
		values[i] = byHour[t.Unix()]
		labels[i] = t.In(ui.loc).Format("Mon 2 Jan 15:04")
	}
	d.Hourly = newBarChart(fmt.Sprintf("Violations received per hour, last %d days", chartDays), "violations", values, labels, 0)
	// Mark midnight with the day and noon with the time.
	for i := range d.Hourly.Bars {
		t := since.Add(time.Duration(i) * time.Hour).In(ui.loc)
		switch t.Hour() {
		case 0:
			d.Hourly.Bars[i].ShowLabel, d.Hourly.Bars[i].Axis = true, t.Format("Mon 2 Jan")
		case 12:
			d.Hourly.Bars[i].ShowLabel, d.Hourly.Bars[i].Axis = true, "12:00"
		}
	}

	// Speed buckets from 0 up to the fastest bucket seen, at least 0-149.
	top := 140
	byBucket := map[int]int{}
	for _, b := range st.SpeedBuckets {
		byBucket[b.Min] += b.Count
		top = max(top, b.Min)
	}
	var sv []int
	var sl []string
	for lo := 0; lo <= top; lo += tes.SpeedBucketWidth {
		sv = append(sv, byBucket[lo])
		sl = append(sl, fmt.Sprintf("%d–%d", lo, lo+tes.SpeedBucketWidth-1))
	}
	d.Speeds = newBarChart(fmt.Sprintf("Speed distribution (km/h), last %d days", chartDays), "violations", sv, sl, 1)
	for i := range d.Speeds.Bars {
		lo := i * tes.SpeedBucketWidth
		d.Speeds.Bars[i].Class = ui.bandClass(lo)
		d.Speeds.Bars[i].Axis = fmt.Sprint(lo)
		d.Speeds.Bars[i].ShowLabel = len(sv) <= 26 || i%2 == 0
	}
	d.Legend = append(d.Legend, legendItem{"band0", "No points"})
	for i, b := range ui.review.Rules.Bands {
		label := fmt.Sprintf("%d–%d km/h: %d points", b.Min, b.Max-1, b.Points)
		if b.Max == 0 {
			label = fmt.Sprintf("%d km/h and over: %d points", b.Min, b.Points)
		}
		d.Legend = append(d.Legend, legendItem{fmt.Sprintf("band%d", min(i+1, 3)), label})
	}
	ui.render(w, r, http.StatusOK, "charts", v)
}

// bandClass names the CSS class of the penalty band a speed falls in:
// "band0" below every band, then "band1", "band2", ... in rule order.
func (ui *UI) bandClass(speed int) string {
	for i, b := range ui.review.Rules.Bands {
		if speed >= b.Min && (b.Max == 0 || speed < b.Max) {
			return fmt.Sprintf("band%d", min(i+1, 3))
		}
	}
	return "band0"
}
