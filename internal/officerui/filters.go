package officerui

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// queueQuery is the queue's filter as it appears in the URL. The queue page,
// its CSV export and the JSON API read the same parameters, so an export is
// exactly what is on screen.
type queueQuery struct {
	Status string // "pending", "approved", "rejected" or "all"
	Plate  string
	From   string // YYYY-MM-DD, inclusive, in the dashboard's time zone
	To     string // YYYY-MM-DD, inclusive
	Band   string // "", "50-69", "100+"
	Sort   string // "time" (newest first), "time_asc", "speed" (fastest first), "speed_asc"
	After  string // keyset cursor "<key>.<id>"
	Limit  int
}

const (
	defaultPage = 50
	maxPage     = 1000
)

var sorts = map[string]bool{"time": true, "time_asc": true, "speed": true, "speed_asc": true}

// parseQueue reads q into a queueQuery and the store filter it means.
// defStatus is the status when none is given ("pending" on the dashboard,
// "all" in the API). Bad values give EINVALID errors that say what to fix.
func (ui *UI) parseQueue(q url.Values, defStatus string) (queueQuery, tes.ViolationFilter, error) {
	var qq queueQuery
	var f tes.ViolationFilter

	qq.Status = strings.ToLower(strings.TrimSpace(q.Get("status")))
	if qq.Status == "" {
		qq.Status = defStatus
	}
	if qq.Status != "all" {
		st, err := tes.ParseStatus(qq.Status)
		if err != nil {
			return qq, f, tes.Errorf(tes.EINVALID, "Unknown status %q: choose pending, approved, rejected or all.", qq.Status)
		}
		f.Status = st
	}

	if p := strings.TrimSpace(q.Get("plate")); p != "" {
		np, err := tes.NormalizePlate(p)
		if err != nil {
			return qq, f, err
		}
		qq.Plate, f.Plate = np, np
	}

	var err error
	qq.From = strings.TrimSpace(q.Get("from"))
	if f.From, err = ui.parseDate(qq.From, "from"); err != nil {
		return qq, f, err
	}
	qq.To = strings.TrimSpace(q.Get("to"))
	if qq.To != "" {
		if f.To, err = ui.parseDate(qq.To, "to"); err != nil {
			return qq, f, err
		}
		f.To = f.To.AddDate(0, 0, 1) // the whole "to" day
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return qq, f, tes.Errorf(tes.EINVALID, "The \"from\" date must not be after the \"to\" date.")
	}

	qq.Band = strings.TrimSpace(q.Get("band"))
	if qq.Band != "" {
		lo, hi, err := parseBand(qq.Band)
		if err != nil {
			return qq, f, err
		}
		f.MinSpeed, f.MaxSpeed = lo, hi
	}
	// The API may also give exact bounds.
	if s := q.Get("min_speed"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || tes.ValidateSpeed(n) != nil {
			return qq, f, tes.Errorf(tes.EINVALID, "Invalid min_speed: a whole number from 0 to %d.", tes.MaxSpeed)
		}
		f.MinSpeed = n
	}
	if s := q.Get("max_speed"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || tes.ValidateSpeed(n) != nil {
			return qq, f, tes.Errorf(tes.EINVALID, "Invalid max_speed: a whole number from 0 to %d.", tes.MaxSpeed)
		}
		f.MaxSpeed = n
	}

	qq.Sort = q.Get("sort")
	if qq.Sort == "" {
		qq.Sort = "time"
	}
	if !sorts[qq.Sort] {
		return qq, f, tes.Errorf(tes.EINVALID, "Unknown sort %q: use time, time_asc, speed or speed_asc.", qq.Sort)
	}
	f.Sort = qq.Sort

	qq.After = q.Get("after")
	if qq.After != "" {
		c, err := parseCursor(qq.After)
		if err != nil {
			return qq, f, err
		}
		f.After = c
	}

	qq.Limit = defaultPage
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return qq, f, tes.Errorf(tes.EINVALID, "Invalid limit: a whole number from 1 to %d.", maxPage)
		}
		qq.Limit = n
	}
	f.Limit = qq.Limit
	return qq, f, nil
}

// values is the URL form of qq; after replaces the cursor ("" drops it).
func (qq queueQuery) values(after string) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("status", qq.Status)
	set("plate", qq.Plate)
	set("from", qq.From)
	set("to", qq.To)
	set("band", qq.Band)
	if qq.Sort != "time" {
		set("sort", qq.Sort)
	}
	if qq.Limit != defaultPage && qq.Limit != 0 {
		v.Set("limit", strconv.Itoa(qq.Limit))
	}
	set("after", after)
	return v
}

// parseDate reads a YYYY-MM-DD date as midnight in the dashboard's zone.
func (ui *UI) parseDate(s, field string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, ui.loc)
	if err != nil {
		return time.Time{}, tes.Errorf(tes.EINVALID, "Invalid %q date %q: use the form 2025-01-31.", field, s)
	}
	return t, nil
}

// parseBand reads "50-69" (both inclusive) or "100+".
func parseBand(s string) (lo, hi int, err error) {
	bad := tes.Errorf(tes.EINVALID, "Invalid speed band %q: use the form 50-69 or 100+.", s)
	if a, ok := strings.CutSuffix(s, "+"); ok {
		lo, err = strconv.Atoi(a)
		if err != nil || tes.ValidateSpeed(lo) != nil {
			return 0, 0, bad
		}
		return lo, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, bad
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || tes.ValidateSpeed(lo) != nil || tes.ValidateSpeed(hi) != nil || hi < lo {
		return 0, 0, bad
	}
	return lo, hi, nil
}

// bandOption is one speed band in the queue's filter.
type bandOption struct {
	Value, Label string
}

// bands lists the rules' speed bands, and the band below them, as filter
// options, so that the filter and the points always agree.
func (ui *UI) bands() []bandOption {
	rules := ui.review.Rules.Bands
	var out []bandOption
	if len(rules) > 0 && rules[0].Min > 0 {
		out = append(out, bandOption{fmt.Sprintf("0-%d", rules[0].Min-1), fmt.Sprintf("Under %d km/h (0 points)", rules[0].Min)})
	}
	for _, b := range rules {
		if b.Max == 0 {
			out = append(out, bandOption{fmt.Sprintf("%d+", b.Min), fmt.Sprintf("%d km/h and over (%d points)", b.Min, b.Points)})
		} else {
			out = append(out, bandOption{fmt.Sprintf("%d-%d", b.Min, b.Max-1), fmt.Sprintf("%d–%d km/h (%d points)", b.Min, b.Max-1, b.Points)})
		}
	}
	return out
}

// parseCursor reads "<key>.<id>".
func parseCursor(s string) (*tes.Cursor, error) {
	a, b, ok := strings.Cut(s, ".")
	key, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || id < 0 {
		return nil, tes.Errorf(tes.EINVALID, "Invalid page position %q: go back to the first page.", s)
	}
	return &tes.Cursor{Key: key, ID: id}, nil
}

// formatCursor is the URL form of c; "" for nil.
func formatCursor(c *tes.Cursor) string {
	if c == nil {
		return ""
	}
	return strconv.FormatInt(c.Key, 10) + "." + strconv.FormatInt(c.ID, 10)
}

// parseID reads a violation id from a path segment.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, tes.Errorf(tes.ENOTFOUND, "There is no violation %q.", s)
	}
	return id, nil
}
