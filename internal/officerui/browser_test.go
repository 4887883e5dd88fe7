package officerui_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/browsertest"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/officerui"
)

// browser drives one tab against an env's server.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	b := &browser{t: t, ctx: browsertest.New(t), base: base}
	b.acceptDialogs()
	return b
}

// acceptDialogs answers every confirm() with OK, as an officer who means it
// would, and logs the question.
func (b *browser) acceptDialogs() {
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			_ = ev
		}
	}()
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// nav opens path and waits for the load event.
func (b *browser) nav(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + path))
}

// clickAndLoad clicks sel and waits for the page that it loads.
func (b *browser) clickAndLoad(sel string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
}

func (b *browser) set(sel, value string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) path() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

// wantText fails unless the element's visible text holds every string.
func (b *browser) wantText(sel string, subs ...string) {
	b.t.Helper()
	got := b.text(sel)
	for _, s := range subs {
		// innerText applies CSS text-transform, so compare without case.
		if !strings.Contains(strings.ToLower(got), strings.ToLower(s)) {
			b.t.Errorf("%s on %s: text lacks %q:\n%s", sel, b.path(), s, got)
		}
	}
}

func (b *browser) login(name, pw string) {
	b.t.Helper()
	b.set("#username", name)
	b.set("#password", pw)
	b.clickAndLoad("form.form-panel button[type=submit]")
}

// fetchResult is what the page's fetch() saw.
type fetchResult struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Disp   string `json:"disp"`
	Body   string `json:"body"`
}

// fetch runs fetch() in the page, with its cookies, and returns the answer.
func (b *browser) fetch(js string) fetchResult {
	b.t.Helper()
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[fetchResult](`(async () => {
		const r = await `+js+`;
		return {status: r.status, type: r.headers.get("content-type") || "", disp: r.headers.get("content-disposition") || "", body: await r.text()};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("fetch: %v", err)
	}
	return res
}

// TestBrowserReview is the officer's day in a real Chromium: sign-in fails
// then succeeds, a new report appears in the queue, approval adds exactly
// the rule's points once (a replayed POST adds nothing), a rejection with a
// reason, a bulk approval, the CSV export, and sign-out. It takes the
// documentation's screenshots on the way when TES_SCREENSHOTS is set.
func TestBrowserReview(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	var now time.Time
	e := newEnv(t, func(c *officerui.Config) {
		c.Status = func() tes.ServerStatus { return demoStatus(now) }
	})
	now = e.clock.Now()
	pending := seedDemo(t, e.store, e.review.Rules, now, 220)
	b := newBrowser(t, e.srv.URL)

	// Signed out, the queue sends to the sign-in page.
	b.nav("/dashboard")
	if p := b.path(); !strings.HasPrefix(p, "/login?next=") {
		t.Fatalf("signed out, /dashboard went to %s, want /login?next=...", p)
	}
	browsertest.SaveScreenshot(t, b.ctx, "officer-login.png")

	// A wrong password is refused with a clear message.
	b.login("olga", "not the password")
	b.wantText(".notice-error", "Invalid user name or password.")
	if p := b.path(); p != "/login" {
		t.Errorf("after a failed sign-in the page is %s, want /login", p)
	}

	// The right one opens the queue.
	b.login("olga", testPassword)
	if p := b.path(); p != "/dashboard" {
		t.Fatalf("after sign-in the page is %s, want /dashboard", p)
	}

	// A report that arrives now appears at the top of the queue.
	const plate = "TES 2026"
	id := e.ingest(tes.Report{Plate: plate, Speed: 88, SpeedLimit: 50, Location: "Harbour Road at Mill Lane",
		User: "unit07", Evidence: demoEvidence("unit07")})[0]
	b.nav("/dashboard")
	b.wantText("#queue-table tbody tr:first-child", plate, "88 km/h", "20")
	b.nav("/dashboard?limit=20")
	browsertest.SaveScreenshot(t, b.ctx, "officer-queue.png")

	// The process page of a repeat offender's new report from an enrolled
	// device, for the documentation: the page checks the evidence again,
	// and its sealed evidence file downloads and verifies on its own.
	prior := e.violation(pending[len(pending)-3])
	devRep := tes.Report{Plate: prior.Plate, Speed: prior.SpeedLimit + 27, SpeedLimit: prior.SpeedLimit,
		Location: prior.Location, ObservedAt: now.Add(-40 * time.Second), User: "unit12"}
	pki().signTLS(&devRep, "cam-017")
	tid := e.ingest(devRep)[0]
	b.nav("/process/" + itoa(tid))
	b.wantText("#evidence", "TLS 1.3, enrolled device", "cam-017", "Verified now", "Match this record",
		"user unit12", "Issued by "+pki().ca.Cert.Subject.CommonName, "What it does not prove", "Download evidence file")
	browsertest.SaveScreenshot(t, b.ctx, "officer-process.png")
	file := b.fetch(`fetch(document.querySelector("#evidence-download").href)`)
	if want := `attachment; filename="violation-` + itoa(tid) + `-evidence.json"`; file.Status != 200 || file.Type != "application/json" || file.Disp != want {
		t.Errorf("evidence download: status %d, type %q, disposition %q; want 200, application/json, %s", file.Status, file.Type, file.Disp, want)
	}
	if res, err := evidence.Verify([]byte(file.Body), evidence.VerifyOptions{CAHash: pki().ca.Hash()}); err != nil || res.ViolationID != tid {
		t.Errorf("the downloaded evidence file does not verify as violation %d: %+v, %v", tid, res, err)
	}

	// Approve: the rule gives 88 km/h 20 points, and the record shows them.
	b.nav("/dashboard")
	b.clickAndLoad(`a[href="/process/` + itoa(id) + `"]`)
	b.wantText("main", plate, "Harbour Road at Mill Lane", "Verified", "SHA256:", "Approve and add 20 points")
	b.wantText("#evidence", "TES/1 (legacy RSA + DES)", "Verified now", "self-asserted", "cannot be tied to the ciphertext")
	b.clickAndLoad("#approve")
	b.wantText("#outcome", "Approved by olga", "20 points were added")
	if v := e.violation(id); v.Status != tes.StatusApproved || v.PointsApplied != 20 {
		t.Errorf("after approval: status %s, points %d; want APPROVED, 20", v.Status, v.PointsApplied)
	}
	b.nav("/records/" + url.PathEscape(plate))
	b.wantText("#driver-points", "20")
	b.wantText("#history-table", "APPROVED", "olga")

	// A replayed approval POST (a double click, a back button, a script) is
	// refused and adds nothing.
	b.nav("/process/" + itoa(id))
	res := b.fetch(`fetch("/process/` + itoa(id) + `/approve", {method: "POST", body: new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value})})`)
	if res.Status != 409 || !strings.Contains(res.Body, "already decided by olga at") {
		t.Errorf("replayed approve: status %d, want 409 with \"already decided by olga at\"; body:\n%.500s", res.Status, res.Body)
	}
	if got := e.driverPoints(plate); got != 20 {
		t.Errorf("after a replayed approval the record holds %d points, want 20", got)
	}

	// Reject with a coded reason and a note.
	rid := pending[0]
	b.nav("/process/" + itoa(rid))
	b.set("#reason", string(tes.ReasonPlateUnreadable))
	b.set("#note", "Plate covered by a bicycle rack.")
	b.clickAndLoad("#reject")
	b.wantText("#outcome", "Rejected by olga", "Plate unreadable", "Plate covered by a bicycle rack.")
	if v := e.violation(rid); v.Status != tes.StatusRejected || v.RejectReason != tes.ReasonPlateUnreadable || v.PointsApplied != 0 {
		t.Errorf("after rejection: %s %s %d", v.Status, v.RejectReason, v.PointsApplied)
	}

	// Bulk: select every row of one plate and approve them together.
	const bulkPlate = "BK 777"
	bulk := e.ingest(tes.Report{Plate: bulkPlate, Speed: 55}, tes.Report{Plate: bulkPlate, Speed: 75}, tes.Report{Plate: bulkPlate, Speed: 120})
	b.nav("/dashboard?plate=" + url.QueryEscape(bulkPlate))
	b.do(chromedp.Click(chromedp.CSS("#select-all")))
	b.wantText("#selected-count", "3 rows selected")
	b.clickAndLoad(`button[name=action][value=approve]`)
	b.wantText("#bulk-summary", "3\nselected", "3\napproved", "0\nnot changed", "80\npoints added")
	b.wantText("#bulk-table", itoa(bulk[0]), itoa(bulk[1]), itoa(bulk[2]),
		"Approved: 10 points added", "Approved: 20 points added", "Approved: 50 points added", "record now 80 points.")
	if got := e.driverPoints(bulkPlate); got != 80 {
		t.Errorf("after the bulk approval %s holds %d points, want 10+20+50 = 80", bulkPlate, got)
	}

	// CSV: the export of what is on screen, as the browser downloads it.
	b.nav("/dashboard?status=all&plate=" + url.QueryEscape(bulkPlate))
	csvRes := b.fetch(`fetch(document.querySelector("a[download]").href)`)
	if csvRes.Status != 200 || !strings.HasPrefix(csvRes.Type, "text/csv") || !strings.Contains(csvRes.Disp, "attachment") {
		t.Errorf("CSV: status %d, type %q, disposition %q", csvRes.Status, csvRes.Type, csvRes.Disp)
	}
	lines := strings.Split(strings.TrimSpace(csvRes.Body), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "id,report_id,received_at") {
		t.Errorf("CSV has %d lines, want a header and 3 rows:\n%s", len(lines), csvRes.Body)
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, bulkPlate) || !strings.Contains(l, "APPROVED") {
			t.Errorf("CSV row %q: want %s APPROVED", l, bulkPlate)
		}
	}

	// The other pages, for the documentation.
	b.nav("/records?limit=20")
	b.wantText("#records-table", plate)
	browsertest.SaveScreenshot(t, b.ctx, "officer-records.png")
	b.nav("/status")
	b.wantText("#status-cards", "connected clients")
	b.wantText("#events-table", "violation.approved", "olga")
	browsertest.SaveScreenshot(t, b.ctx, "officer-status.png")
	b.nav("/charts")
	b.wantText("main", "Violations per hour", "Speed distribution")
	browsertest.SaveScreenshot(t, b.ctx, "officer-charts.png")

	// Sign out: the session is gone, the queue asks for sign-in again.
	b.clickAndLoad(".masthead form button[type=submit]")
	b.wantText(".notice-success", "You have signed out.")
	b.nav("/dashboard")
	if p := b.path(); !strings.HasPrefix(p, "/login") {
		t.Errorf("after sign-out /dashboard showed %s, want the sign-in page", p)
	}

	// An admin sees the Users page.
	b.login("ada", testPassword)
	b.nav("/users")
	b.wantText("#users-table", "olga", "pete", "police")
	browsertest.SaveScreenshot(t, b.ctx, "officer-users.png")
}

// TestBrowserTablet checks the queue and the process page fit a 768 px wide
// tablet: nothing overflows the page sideways.
func TestBrowserTablet(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	e := newEnv(t)
	seedDemo(t, e.store, e.review.Rules, e.clock.Now(), 40)
	b := newBrowser(t, e.srv.URL)
	b.do(chromedp.EmulateViewport(768, 1024))
	b.nav("/login")
	b.login("ada", testPassword)
	for _, p := range []string{"/dashboard", "/process/2", "/records", "/records/" + url.PathEscape(e.violation(2).Plate), "/status", "/charts", "/users", "/password"} {
		b.nav(p)
		w, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if w > 768 {
			t.Errorf("%s is %d px wide at a 768 px viewport: it scrolls sideways", p, w)
		}
		if p == "/dashboard" {
			browsertest.SaveScreenshot(t, b.ctx, "officer-queue-tablet.png")
		}
	}
}
