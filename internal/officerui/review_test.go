package officerui_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officerui"
)

// TestPointsFromRules: the points added are the rules' for the stored
// speed, whatever a form or a JSON body says.
func TestPointsFromRules(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(
		tes.Report{Plate: "PT 1", Speed: 75},  // 20 points
		tes.Report{Plate: "PT 2", Speed: 55},  // 10
		tes.Report{Plate: "PT 3", Speed: 130}, // 50
		tes.Report{Plate: "PT 4", Speed: 40},  // 0
	)
	c := e.login("olga")
	wantStatus(t, c.post("/process/"+itoa(ids[0])+"/approve", url.Values{"points": {"999"}}, true), http.StatusSeeOther)
	r := c.post("/api/action", url.Values{"id": {itoa(ids[1])}, "action": {"approve"}, "points": {"999"}, "csrf": {c.csrf}}, false)
	wantStatus(t, r, http.StatusOK)
	r = c.api("POST", "/api/violations/"+itoa(ids[2])+"/approve", map[string]any{"points": 1}, map[string]string{"X-CSRF-Token": c.csrf})
	wantStatus(t, r, http.StatusOK)
	wantStatus(t, c.post("/bulk", url.Values{"id": {itoa(ids[3])}, "action": {"approve"}, "points": {"999"}}, true), http.StatusOK)
	for i, want := range []int{20, 10, 50, 0} {
		v := e.violation(ids[i])
		if v.Status != tes.StatusApproved || v.PointsApplied != want {
			t.Errorf("violation %d (%d km/h): %s with %d points, want APPROVED with %d", ids[i], v.Speed, v.Status, v.PointsApplied, want)
		}
		if got := e.driverPoints(v.Plate); got != want {
			t.Errorf("record of %s: %d points, want %d", v.Plate, got, want)
		}
	}
}

// TestDoubleDecision: a second decision on the same violation (a double
// click, a replayed POST, another officer, the API) is 409, says who
// decided it and when, and changes nothing.
func TestDoubleDecision(t *testing.T) {
	e := newEnv(t)
	id := e.ingest(tes.Report{Plate: "DD 1", Speed: 75})[0]
	olga := e.login("olga")
	ada := e.login("ada")

	r := olga.post("/process/"+itoa(id)+"/approve", nil, true)
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, olga.get(r.location()), "The violation was approved.", "Approved</strong> by olga", "20 points")
	decided := e.violation(id)

	want := "already decided by olga at " + decided.DecidedAt.UTC().Format("2006-01-02 15:04:05")
	for _, c := range []*client{olga, ada} {
		r := c.post("/process/"+itoa(id)+"/approve", nil, true)
		wantStatus(t, r, http.StatusConflict)
		wantBody(t, r, want, "Nothing was changed.")
		r = c.post("/process/"+itoa(id)+"/reject", url.Values{"reason": {"duplicate"}}, true)
		wantStatus(t, r, http.StatusConflict)
		wantBody(t, r, want)
		r = c.api("POST", "/api/violations/"+itoa(id)+"/approve", nil, map[string]string{"X-CSRF-Token": c.csrf})
		wantStatus(t, r, http.StatusConflict)
		if b := decodeJSON[map[string]string](t, r); !strings.Contains(b["error"], want) || b["code"] != tes.ECONFLICT {
			t.Errorf("API conflict body %v, want %q", b, want)
		}
	}
	if got := e.driverPoints("DD 1"); got != 20 {
		t.Errorf("record holds %d points after repeated approvals, want 20", got)
	}
	after := e.violation(id)
	if after.DecidedBy != "olga" || !after.DecidedAt.Equal(decided.DecidedAt) || after.PointsApplied != 20 {
		t.Errorf("the decision changed: %+v", after)
	}
}

// TestRejectValidation: a rejection needs a known reason, and a note when
// the reason is "other"; the form comes back filled in.
func TestRejectValidation(t *testing.T) {
	e := newEnv(t)
	id := itoa(e.ingest(tes.Report{Plate: "RV 1", Speed: 75})[0])
	c := e.login("olga")
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"note": {"keep me"}}, "Choose a reason"},
		{url.Values{"reason": {"because"}}, "Unknown reject reason"},
		{url.Values{"reason": {"other"}}, "Say why in the note"},
		{url.Values{"reason": {"duplicate"}, "note": {strings.Repeat("x", 1001)}}, "too long"},
	} {
		r := c.post("/process/"+id+"/reject", tc.form, true)
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, tc.want)
		if n := tc.form.Get("note"); n == "keep me" {
			wantBody(t, r, ">keep me</textarea>")
		}
	}
	r := c.post("/process/"+id+"/reject", url.Values{"reason": {"other"}, "note": {"Police vehicle on duty."}}, true)
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, c.get(r.location()), "Rejected</strong> by olga", "Reason: Other.", "Police vehicle on duty.")
	v := e.violation(1)
	if v.Status != tes.StatusRejected || v.RejectReason != tes.ReasonOther || v.RejectNote != "Police vehicle on duty." || e.driverPoints("RV 1") != 0 {
		t.Errorf("after rejection: %+v", v)
	}
}

// TestBulk: each selected row is decided with the same guard; the summary
// says what happened to each, including rows decided meanwhile and unknown
// ids.
func TestBulk(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(
		tes.Report{Plate: "BU 1", Speed: 55},
		tes.Report{Plate: "BU 1", Speed: 105},
		tes.Report{Plate: "BU 2", Speed: 30},
		tes.Report{Plate: "BU 3", Speed: 80},
		tes.Report{Plate: "BU 3", Speed: 90},
	)
	c := e.login("olga")
	wantStatus(t, c.post("/process/"+itoa(ids[0])+"/approve", nil, true), http.StatusSeeOther) // decided first

	r := c.post("/bulk", url.Values{"id": {itoa(ids[0]), itoa(ids[1]), itoa(ids[2]), "9999", itoa(ids[1])}, "action": {"approve"},
		"back": {"/dashboard?plate=BU+1"}}, true)
	wantStatus(t, r, http.StatusOK)
	summary := textOf(r.body)
	for _, want := range []string{"4 selected", "2 approved", "2 not changed", "50 points added in total",
		"already decided by olga at", "Violation 9999 not found", "Approved: 50 points added; record now 60 points.",
		"Approved: 0 points added; record now 0 points."} {
		if !strings.Contains(summary, want) {
			t.Errorf("bulk summary lacks %q:\n%s", want, summary)
		}
	}
	wantBody(t, r, `href="/dashboard?plate=BU&#43;1"`)
	if got := e.driverPoints("BU 1"); got != 60 {
		t.Errorf("BU 1 holds %d points, want 10 + 50", got)
	}

	// Reject needs a reason; with one, every row is rejected.
	r = c.post("/bulk", url.Values{"id": {itoa(ids[3]), itoa(ids[4])}, "action": {"reject"}}, true)
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "Choose a reason")
	r = c.post("/bulk", url.Values{"id": {itoa(ids[3]), itoa(ids[4])}, "action": {"reject"}, "reason": {"equipment_fault"}, "note": {"Radar 4 out of calibration."}}, true)
	wantStatus(t, r, http.StatusOK)
	if s := textOf(r.body); !strings.Contains(s, "2 rejected") || !strings.Contains(s, "Rejected: Equipment fault.") {
		t.Errorf("bulk reject summary:\n%s", s)
	}
	for _, id := range ids[3:] {
		if v := e.violation(id); v.Status != tes.StatusRejected || v.RejectReason != tes.ReasonEquipmentFault || v.RejectNote != "Radar 4 out of calibration." {
			t.Errorf("violation %d: %+v", id, v)
		}
	}
	// Nothing selected, or a bad id, is a clear 400.
	wantBody(t, c.post("/bulk", url.Values{"action": {"approve"}}, true), "Select at least one row")
	wantStatus(t, c.post("/bulk", url.Values{"action": {"approve"}, "id": {"x"}}, true), http.StatusBadRequest)
	// The back link cannot leave the site.
	r = c.post("/bulk", url.Values{"action": {"approve"}, "id": {"9998"}, "back": {"https://evil.example/"}}, true)
	if strings.Contains(r.body, "evil.example") {
		t.Error("bulk page links off-site")
	}
}

var tagRE = regexp.MustCompile(`<[^>]+>`)
var spaceRE = regexp.MustCompile(`\s+`)

// textOf is an HTML page's text with tags removed and spaces collapsed.
func textOf(html string) string {
	return strings.TrimSpace(spaceRE.ReplaceAllString(tagRE.ReplaceAllString(html, " "), " "))
}

var rowIDRE = regexp.MustCompile(`<td class="num col-wide">(\d+)</td>`)

// queueIDs lists the violation ids of a queue page in order.
func queueIDs(body string) []int64 {
	var out []int64
	for _, m := range rowIDRE.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

var nextRE = regexp.MustCompile(`href="([^"]+)" rel="next"`)

// TestQueueFiltersAndPages: keyset pages, both sorts in both directions,
// and every filter, as the URL gives them.
func TestQueueFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	day := func(d, h int) time.Time { return time.Date(2026, 5, d, h, 0, 0, 0, time.UTC) }
	r1 := ingestAt(t, e.store, day(8, 10), tes.Report{Plate: "AA 1", Speed: 45})[0]
	r2 := ingestAt(t, e.store, day(9, 10), tes.Report{Plate: "AA 1", Speed: 65})[0]
	r3 := ingestAt(t, e.store, day(10, 11), tes.Report{Plate: "BB 2", Speed: 85})[0]
	r4 := ingestAt(t, e.store, day(10, 12), tes.Report{Plate: "CC 3", Speed: 130})[0]
	r5 := ingestAt(t, e.store, day(7, 10), tes.Report{Plate: "BB 2", Speed: 72})[0]
	c := e.login("olga")

	// Pages of two, newest first, following the Next links.
	var got []int64
	page := "/dashboard?limit=2"
	for n := 0; page != ""; n++ {
		r := c.get(strings.ReplaceAll(page, "&amp;", "&"))
		wantStatus(t, r, http.StatusOK)
		ids := queueIDs(r.body)
		if len(ids) > 2 {
			t.Fatalf("page %d has %d rows", n, len(ids))
		}
		got = append(got, ids...)
		page = ""
		if m := nextRE.FindStringSubmatch(r.body); m != nil {
			page = m[1]
			if !strings.Contains(page, "after=") {
				t.Fatalf("next link %q has no keyset cursor", page)
			}
		}
		if n > 5 {
			t.Fatal("too many pages")
		}
	}
	if want := []int64{r4, r3, r2, r1, r5}; !slices.Equal(got, want) {
		t.Errorf("pages by time: %v, want %v", got, want)
	}

	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"", []int64{r4, r3, r2, r1, r5}},
		{"sort=time_asc", []int64{r5, r1, r2, r3, r4}},
		{"sort=speed", []int64{r4, r3, r5, r2, r1}},
		{"sort=speed_asc", []int64{r1, r2, r5, r3, r4}},
		{"sort=speed&limit=2&after=85." + itoa(r3), []int64{r5, r2}},
		{"band=70-99", []int64{r3, r5}},
		{"band=100%2B", []int64{r4}},
		{"band=0-49", []int64{r1}},
		{"plate=bb+2", []int64{r3, r5}},
		{"from=2026-05-09&to=2026-05-09", []int64{r2}},
		{"from=2026-05-09", []int64{r4, r3, r2}},
		{"to=2026-05-08", []int64{r1, r5}},
		{"plate=AA+1&band=50-69", []int64{r2}},
		{"status=approved", nil},
	} {
		r := c.get("/dashboard?" + tc.query)
		wantStatus(t, r, http.StatusOK)
		if got := queueIDs(r.body); !slices.Equal(got, tc.want) {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
		}
	}

	// The points column is the rules'.
	r := c.get("/dashboard?plate=CC+3")
	wantBody(t, r, `<td class="num"><strong>50</strong></td>`)

	// Decided rows leave the pending queue and show under their status.
	wantStatus(t, c.post("/process/"+itoa(r3)+"/approve", nil, true), http.StatusSeeOther)
	if got := queueIDs(c.get("/dashboard").body); slices.Contains(got, r3) {
		t.Errorf("approved %d still in the pending queue", r3)
	}
	if got := queueIDs(c.get("/dashboard?status=approved").body); !slices.Equal(got, []int64{r3}) {
		t.Errorf("approved queue %v", got)
	}
	if got := queueIDs(c.get("/dashboard?status=all").body); len(got) != 5 {
		t.Errorf("all: %v", got)
	}

	// Bad filters get a 400 that says what to fix.
	for q, want := range map[string]string{
		"band=abc":                      "Invalid speed band",
		"sort=bogus":                    "Unknown sort",
		"after=xyz":                     "Invalid page position",
		"status=lost":                   "Unknown status",
		"from=31/12/2025":               "Invalid &#34;from&#34; date",
		"plate=%3Cb%3E":                 "Invalid plate",
		"limit=0":                       "Invalid limit",
		"from=2026-05-10&to=2026-05-01": "must not be after",
	} {
		r := c.get("/dashboard?" + q)
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, want)
	}
}

// TestCSVExport: the queue export is the screen's filter, streamed as CSV
// across store batches, with formula injection neutralised; the records
// export lists plates and points.
func TestCSVExport(t *testing.T) {
	e := newEnv(t)
	reports := []tes.Report{
		{Plate: "CSV 1", Speed: 75, Location: `=HYPERLINK("http://evil.example","click")`},
		{Plate: "CSV 1", Speed: 55, Location: "+1+1"},
		{Plate: "-1 CMD", Speed: 120, Location: "@SUM(A1)"},
	}
	for i := range 1002 {
		reports = append(reports, tes.Report{Plate: "BULK " + itoa(int64(i%50)), Speed: 60 + i%40, Location: "Ring road"})
	}
	e.ingest(reports...)
	c := e.login("olga")
	wantStatus(t, c.post("/process/3/approve", nil, true), http.StatusSeeOther) // -1 CMD gets 50 points

	r := c.get("/export/violations.csv?status=all&plate=CSV+1")
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="violations-`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][0] != "id" || rows[0][7] != "location" || rows[0][11] != "points" {
		t.Fatalf("CSV rows: %q", rows)
	}
	if got := rows[1][7]; got != `'+1+1` {
		t.Errorf("location cell %q, want it prefixed with '", got)
	}
	if got := rows[2][7]; got != `'=HYPERLINK("http://evil.example","click")` {
		t.Errorf("location cell %q, want it prefixed with '", got)
	}
	if rows[2][4] != "CSV 1" || rows[2][5] != "75" || rows[2][11] != "20" || rows[2][10] != "PENDING" {
		t.Errorf("row %q", rows[2])
	}

	// All 1002 pending BULK rows, across two store batches, each once.
	r = c.get("/export/violations.csv?band=60-99&sort=speed")
	rows, err = csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, row := range rows[1:] {
		if seen[row[0]] {
			t.Fatalf("row %s exported twice", row[0])
		}
		seen[row[0]] = true
	}
	if len(rows) != 1+1002+1 { // the header, BULK rows, CSV 1 at 75 km/h
		t.Errorf("export holds %d rows, want 1003 and a header", len(rows)-1)
	}

	r = c.get("/export/records.csv")
	wantStatus(t, r, http.StatusOK)
	rows, err = csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1][0] != "'-1 CMD" || rows[1][1] != "50" || rows[1][2] != "false" {
		t.Errorf("records CSV %q", rows)
	}
	// Bad filters are a page error, not a broken file.
	wantStatus(t, c.get("/export/violations.csv?band=x"), http.StatusBadRequest)
}

// TestRecords: the records page lists drivers with points, highlights those
// at or over the threshold, searches by plate and shows a plate's history.
func TestRecords(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(
		tes.Report{Plate: "RC 1", Speed: 120}, tes.Report{Plate: "RC 1", Speed: 130}, tes.Report{Plate: "RC 1", Speed: 75},
		tes.Report{Plate: "RC 2", Speed: 55}, tes.Report{Plate: "RC 2", Speed: 56},
	)
	ctx := context.Background()
	olga, _ := e.store.User(ctx, "olga")
	for _, id := range ids[:4] {
		if _, err := e.review.Approve(ctx, olga, id); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login("olga")
	r := c.get("/records")
	wantStatus(t, r, http.StatusOK)
	// RC 1: 50+50+20 = 120 >= 100 is marked; RC 2: 10 is not.
	if !regexp.MustCompile(`<tr class="row-over">\s*<th scope="row"><a class="plate" href="/records/RC%201">RC 1</a></th>\s*<td class="num"><strong>120</strong>`).MatchString(r.body) {
		t.Errorf("RC 1 not marked over the threshold:\n%s", r.body)
	}
	if regexp.MustCompile(`<tr class="row-over">\s*<th scope="row"><a class="plate" href="/records/RC%202">`).MatchString(r.body) {
		t.Error("RC 2 marked over the threshold")
	}
	over := c.get("/records?over=1")
	if !strings.Contains(over.body, "RC 1") || strings.Contains(over.body, ">RC 2<") {
		t.Errorf("?over=1 lists the wrong records")
	}
	one := c.get("/records?limit=1")
	if n := strings.Count(one.body, `<th scope="row"><a class="plate"`); n != 1 || !strings.Contains(one.body, `rel="next"`) {
		t.Errorf("?limit=1 shows %d records, next link %v", n, strings.Contains(one.body, `rel="next"`))
	}
	wantStatus(t, c.get("/records?limit=0"), http.StatusBadRequest)
	s := c.get("/records?plate=rc+2")
	wantStatus(t, s, http.StatusSeeOther)
	if s.location() != "/records/RC%202" {
		t.Errorf("plate search goes to %q", s.location())
	}
	d := c.get("/records/RC%202")
	wantStatus(t, d, http.StatusOK)
	txt := textOf(d.body)
	for _, want := range []string{"10 points on record", "APPROVED", "PENDING", "(10 if approved)"} {
		if !strings.Contains(txt, want) {
			t.Errorf("driver page lacks %q:\n%s", want, txt)
		}
	}
	wantStatus(t, c.get("/records?plate=%21%21"), http.StatusBadRequest)
	wantStatus(t, c.get("/records/NOBODY"), http.StatusNotFound)
	// A lower threshold marks RC 2 too.
	e2 := newEnv(t, func(cfg *officerui.Config) { cfg.Threshold = 10 })
	e2.ingest(tes.Report{Plate: "TH 1", Speed: 55})
	o2, _ := e2.store.User(ctx, "olga")
	if _, err := e2.review.Approve(ctx, o2, 1); err != nil {
		t.Fatal(err)
	}
	wantBody(t, e2.login("olga").get("/records"), `class="row-over"`, "At or over 10")
}
