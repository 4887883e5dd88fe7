package policeui_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/browsertest"
	"github.com/tes-traffic/tes/internal/outbox"
)

// browser drives one Chromium (its own profile, so its own cookies)
// against a police client.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	return &browser{t: t, ctx: browsertest.New(t), base: base}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

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
	if value == "" {
		// chromedp passes an empty argument as undefined, which a text
		// input would show as "undefined".
		b.eval(`(() => { document.querySelector(` + strconv.Quote(sel) + `).value = ''; return ''; })()`)
		return
	}
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS(sel), value)); err != nil {
		b.t.Fatalf("set %s to %.40q: %v", sel, value, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

func (b *browser) url() *url.URL {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// wantText fails unless the element's visible text holds every string.
func (b *browser) wantText(sel string, subs ...string) {
	b.t.Helper()
	got := b.text(sel)
	for _, s := range subs {
		if !strings.Contains(strings.ToLower(got), strings.ToLower(s)) {
			b.t.Errorf("%s on %s: text lacks %q:\n%s", sel, b.url().Path, s, got)
		}
	}
}

// waitJS waits until the expression is true in the page. The page changes
// by itself (it refreshes from /api/state); the minute only bounds a hung
// test.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(time.Minute))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// waitState waits until the history row of reportID shows state.
func (b *browser) waitState(reportID string, state outbox.State) {
	b.t.Helper()
	b.waitJS("report "+reportID+" "+string(state),
		`(document.querySelector('tr[data-report="`+reportID+`"]') || {dataset: {}}).dataset.state === "`+string(state)+`"`)
}

func (b *browser) login(server, name, pw string) {
	b.t.Helper()
	b.nav("/login")
	b.set("#server", server)
	b.set("#username", name)
	b.set("#password", pw)
	b.clickAndLoad("form.form-panel button[type=submit]")
}

// report fills and submits the observation form and returns the saved
// report's id.
func (b *browser) report(plate, speed, limit, location string) string {
	b.t.Helper()
	if b.url().Path != "/report" {
		b.nav("/report")
	}
	b.set("#plate", plate)
	b.set("#speed", speed)
	b.set("#speed_limit", limit)
	b.set("#location", location)
	b.clickAndLoad("#report-form button[type=submit]")
	id := b.url().Query().Get("saved")
	if id == "" {
		b.t.Fatalf("submitting %s did not save it: at %s\n%s", plate, b.url(), b.text("main"))
	}
	b.wantText("#saved", "Report saved on this device", plate)
	return id
}

// TestBrowserReportAcknowledgedThenApproved is the unit's day in a real
// Chromium: a wrong password, sign-in, the status panel, a report that is
// acknowledged and then shown as approved after an officer approves it
// through the service, and a rejection with its reason.
func TestBrowserReportAcknowledgedThenApproved(t *testing.T) {
	ctx := context.Background()
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	b := newBrowser(t, c.url)

	b.nav("/")
	if b.url().Path != "/login" {
		t.Fatalf("/ without a session went to %s", b.url())
	}
	b.set("#username", "police1")
	b.set("#password", "not-the-password")
	browsertest.SaveScreenshot(t, b.ctx, "police-login.png")
	b.clickAndLoad("form.form-panel button[type=submit]")
	b.wantText("#page-error", "Wrong user name or password")

	b.login(srv.addr, "police1", policeAccounts["police1"])
	if b.url().Path != "/report" {
		t.Fatalf("after sign-in: %s\n%s", b.url(), b.text("main"))
	}
	// The failed sign-in already pinned the key: it is checked before
	// any credential is sent.
	b.wantText(".status-panel", "Online", "police1", srv.addr, "DES-CBC (TES/1 legacy suite)",
		"RSA-2048 PKCS#1 v1.5 SHA-256", srv.fingerprint(), "Matches the key pinned for this server")

	first := b.report("34abc123", "120", "90", "E5 km 12, northbound")
	b.waitState(first, outbox.StateAcknowledged)
	stored := byReport(srv.violations(t), first)
	if len(stored) != 1 {
		t.Fatalf("the officer store holds %d violations for report %s, want 1", len(stored), first)
	}
	v := stored[0]
	if v.Plate != "34ABC123" || v.Speed != 120 || v.SpeedLimit != 90 || v.Location != "E5 km 12, northbound" ||
		v.ReportedBy != "police1" || v.ObservedAt.IsZero() || !v.SigVerified {
		t.Fatalf("stored violation %+v", v)
	}
	b.wantText(".status-panel", "Message Queued for Processing")

	officer := &tes.User{Name: "officer1", Role: tes.RoleOfficer}
	if _, err := srv.srv.Review.Approve(ctx, officer, v.ID); err != nil {
		t.Fatal(err)
	}
	b.waitState(first, outbox.StateApproved) // the page refreshes itself
	b.wantText(`tr[data-report="`+first+`"]`, "Approved", "50 penalty points")

	second := b.report("06XYZ99", "64", "50", "Main Street school zone")
	third := b.report("TR06", "102", "80", "Coast road")
	b.waitState(third, outbox.StateAcknowledged)
	list := srv.violations(t)
	if _, err := srv.srv.Review.Reject(ctx, officer, byReport(list, second)[0].ID, tes.ReasonPlateUnreadable, ""); err != nil {
		t.Fatal(err)
	}
	b.waitState(second, outbox.StateRejected)
	b.wantText(`tr[data-report="`+second+`"]`, "Rejected", "Plate unreadable")
	fourth := b.report("AB123", "85", "70", "41.01523,28.97951")
	b.waitState(fourth, outbox.StateAcknowledged)
	browsertest.SaveScreenshot(t, b.ctx, "police-observation.png")

	// One more while the officer server is down: it waits on this device.
	srv.stop()
	fifth := b.report("XY999", "55", "50", "Harbour avenue")
	b.waitState(fifth, outbox.StateQueued)
	b.nav("/history")
	b.wantText("main", "My reports", "34ABC123", "06XYZ99", "TR06", "AB123", "XY999")
	b.waitJS("four delivered", `document.querySelectorAll('tr[data-state="acknowledged"], tr[data-state="approved"], tr[data-state="rejected"]').length === 4`)
	b.waitJS("offline", `document.getElementById('conn-state').className.includes('conn-offline')`)
	b.wantText(`tr[data-report="`+fifth+`"]`, "Queued on this device")
	browsertest.SaveScreenshot(t, b.ctx, "police-history.png")

	// Every field has its label; the pages fit a tablet without sideways
	// scrolling.
	b.nav("/report")
	if got := b.eval(`[...document.querySelectorAll('#report-form input:not([type=hidden])')].filter(i => !document.querySelector('label[for="' + i.id + '"]')).map(i => i.id).join(',')`); got != "" {
		t.Fatalf("inputs without a label: %s", got)
	}
	for _, w := range []int64{768, 1024} {
		b.do(chromedp.EmulateViewport(w, 1024))
		for _, p := range []string{"/report", "/history"} {
			b.nav(p)
			if got := b.eval(`String(document.documentElement.scrollWidth)`); got != strconv.FormatInt(w, 10) {
				t.Errorf("%s at %d px wide scrolls sideways: scrollWidth %s", p, w, got)
			}
		}
	}
}

// TestBrowserOfflineQueue: the officer server stops; three reports are
// saved and shown as queued on this device; the server starts again on the
// same address and all three arrive exactly once.
func TestBrowserOfflineQueue(t *testing.T) {
	dir := t.TempDir()
	srv := mustStartOfficer(t, dir, "127.0.0.1:0")
	addr := srv.addr
	c := mustStartClient(t, addr)
	b := newBrowser(t, c.url)
	b.login(addr, "police1", policeAccounts["police1"])

	srv.stop()
	var ids []string
	for i, plate := range []string{"OFF1", "OFF2", "OFF3"} {
		ids = append(ids, b.report(plate, "9"+string(rune('1'+i)), "", "Offline road"))
	}
	for _, id := range ids {
		b.waitState(id, outbox.StateQueued)
	}
	b.waitJS("the offline state", `document.getElementById('conn-state').className.includes('conn-offline')`)
	// The first send after the stop may find the old connection closed
	// ("lost"); the retry that follows at once finds nothing listening.
	b.waitJS("the server reported unreachable", `document.querySelector('.status-panel').innerText.includes('unreachable')`)
	b.wantText(".status-panel", "Offline", "unreachable")
	b.wantText(`tr[data-report="`+ids[0]+`"]`, "Queued on this device")
	if n := len(c.entries(t, "police1", addr)); n != 3 {
		t.Fatalf("the outbox holds %d reports, want 3", n)
	}

	srv = mustStartOfficer(t, dir, addr)
	for _, id := range ids {
		b.waitState(id, outbox.StateAcknowledged)
	}
	list := srv.violations(t)
	for _, id := range ids {
		if n := len(byReport(list, id)); n != 1 {
			t.Fatalf("report %s is stored %d times, want exactly once", id, n)
		}
	}
	if len(list) != 3 {
		t.Fatalf("the officer store holds %d violations, want 3", len(list))
	}
	b.waitJS("online again", `document.getElementById('conn-state').className.includes('conn-online')`)
}

// TestBrowserTwoUsersTwoSessions: two browsers, two users. Each sees only
// its own session and reports, each report is stored under its own user,
// one browser's CSRF token does nothing in the other, and one signing out
// leaves the other's protocol session alone. (The original shared one
// global connection between every browser.)
func TestBrowserTwoUsersTwoSessions(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	a := newBrowser(t, c.url)
	b := newBrowser(t, c.url)
	a.login(srv.addr, "police1", policeAccounts["police1"])
	b.login(srv.addr, "police2", policeAccounts["police2"])

	ra := a.report("AAA111", "101", "", "")
	rb := b.report("BBB222", "102", "", "")
	a.waitState(ra, outbox.StateAcknowledged)
	b.waitState(rb, outbox.StateAcknowledged)

	a.nav("/history")
	b.nav("/history")
	a.wantText(".masthead", "police1")
	b.wantText(".masthead", "police2")
	if strings.Contains(a.text("main"), "BBB222") || strings.Contains(b.text("main"), "AAA111") {
		t.Fatal("a browser shows the other user's report")
	}
	if got := a.eval(`fetch('/api/state').then(r => r.json()).then(j => j.panel.user)`); got != "police1" {
		t.Fatalf("browser A's session is %q", got)
	}
	list := srv.violations(t)
	if v := byReport(list, ra); len(v) != 1 || v[0].ReportedBy != "police1" {
		t.Fatalf("A's report stored as %v", v)
	}
	if v := byReport(list, rb); len(v) != 1 || v[0].ReportedBy != "police2" {
		t.Fatalf("B's report stored as %v", v)
	}

	// A's CSRF token is worthless in B's session.
	tokenA := a.eval(`document.querySelector('meta[name="csrf-token"]').content`)
	status := b.eval(`fetch('/report', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
		body: 'csrf=` + url.QueryEscape(tokenA) + `&plate=EVIL1&speed=99'}).then(r => String(r.status))`)
	if status != "403" {
		t.Fatalf("B posting with A's token: %s, want 403", status)
	}
	for _, e := range c.entries(t, "police2", srv.addr) {
		if e.Plate == "EVIL1" {
			t.Fatal("a report was saved with another session's token")
		}
	}

	// A signs out; B's own protocol session keeps working.
	a.clickAndLoad(".masthead form button[type=submit]")
	a.wantText("main", "You have signed out")
	rb2 := b.report("BBB333", "103", "", "")
	b.waitState(rb2, outbox.StateAcknowledged)
	if v := byReport(srv.violations(t), rb2); len(v) != 1 || v[0].ReportedBy != "police2" {
		t.Fatalf("B's report after A signed out: %v", v)
	}
	a.nav("/report")
	if a.url().Path != "/login" {
		t.Fatalf("A reached %s after signing out", a.url())
	}
}

// TestBrowserChangedServerKey: another server answers on the pinned
// address. Nothing is sent to it, the page shows the warning with both
// fingerprints and the command, and the queued reports arrive once the
// real server is back.
func TestBrowserChangedServerKey(t *testing.T) {
	realDir := t.TempDir()
	real := mustStartOfficer(t, realDir, "127.0.0.1:0")
	addr := real.addr
	realFP := real.fingerprint()
	c := mustStartClient(t, addr)
	b := newBrowser(t, c.url)
	b.login(addr, "police1", policeAccounts["police1"])
	first := b.report("PIN1", "80", "", "")
	b.waitState(first, outbox.StateAcknowledged)
	if b.eval(`String(document.getElementById('key-warning').hidden)`) != "true" {
		t.Fatal("the key warning shows while the key is the pinned one")
	}

	real.stop()
	impostor := mustStartOfficer(t, t.TempDir(), addr)
	fakeFP := impostor.fingerprint()
	q1 := b.report("KEEP1", "81", "", "")
	q2 := b.report("KEEP2", "82", "", "")
	b.waitJS("the key warning", `!document.getElementById('key-warning').hidden`)
	b.wantText("#key-warning", "key has CHANGED", "Nothing is being sent", realFP, fakeFP,
		"tes police pins forget "+addr+" --pins "+c.pinsPath)
	b.wantText(".status-panel", "Server key changed")
	b.waitState(q1, outbox.StateQueued)
	b.waitState(q2, outbox.StateQueued)
	if n := len(impostor.violations(t)); n != 0 {
		t.Fatalf("the other server received %d reports", n)
	}
	if impostor.srv.TES1.Stats.Logins.Load() != 0 {
		t.Fatal("the credentials were sent to the other server")
	}

	impostor.stop()
	real = mustStartOfficer(t, realDir, addr)
	b.waitState(q1, outbox.StateAcknowledged)
	b.waitState(q2, outbox.StateAcknowledged)
	b.waitJS("the warning to go", `document.getElementById('key-warning').hidden`)
	list := real.violations(t)
	if len(byReport(list, q1)) != 1 || len(byReport(list, q2)) != 1 || len(list) != 3 {
		t.Fatalf("the real server holds %d violations; each queued report must be there exactly once", len(list))
	}
}

// TestBrowserBadInput: the page refuses bad values itself, and the server
// refuses them again when the page's checks are bypassed; each time a
// clear message names the field and nothing is saved or sent.
func TestBrowserBadInput(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	b := newBrowser(t, c.url)
	b.login(srv.addr, "police1", policeAccounts["police1"])

	// In the page: the form does not leave, the field says what is wrong.
	for _, tc := range []struct{ plate, speed, field, want string }{
		{"", "90", "plate", "Enter the licence plate."},
		{"AB!12", "90", "plate", "only letters A-Z, digits, space and dash"},
		{"AB123", "", "speed", "Enter the measured speed in km/h."},
		{"AB123", "-5", "speed", "must be 0 to 500 km/h"},
	} {
		b.nav("/report")
		b.set("#plate", tc.plate)
		b.set("#speed", tc.speed)
		b.do(chromedp.Click(chromedp.CSS("#report-form button[type=submit]")))
		b.waitJS("the "+tc.field+" message", `!document.getElementById('`+tc.field+`-error').hidden`)
		b.wantText("#"+tc.field+"-error", tc.want)
		if b.url().Path != "/report" || b.url().Query().Get("saved") != "" {
			t.Fatalf("%q/%q: the form was submitted", tc.plate, tc.speed)
		}
		if got := b.eval(`document.activeElement.id`); got != tc.field {
			t.Errorf("%q/%q: focus on %q, want %q", tc.plate, tc.speed, got, tc.field)
		}
	}

	// On the server: bypass the page's checks (form.submit() skips them;
	// the inputs lose their types and limits).
	long := strings.Repeat("A", 10<<10)
	for _, tc := range []struct{ name, plate, speed, field, want string }{
		{"empty plate", "", "90", "plate", "Enter the licence plate."},
		{"speed fast", "AB123", "fast", "speed", "Invalid speed: enter a whole number of km/h"},
		{"negative speed", "AB123", "-5", "speed", "Invalid speed: must be 0 to 500 km/h."},
		{"10 KB plate", long, "90", "plate", "Invalid plate: at most 16 characters."},
	} {
		b.nav("/report")
		b.eval(`(() => {
			for (const el of document.querySelectorAll('#report-form input')) {
				el.removeAttribute('maxlength'); el.removeAttribute('pattern'); el.removeAttribute('required');
				el.removeAttribute('min'); el.removeAttribute('max');
			}
			document.getElementById('speed').type = 'text';
			return '';
		})()`)
		b.set("#plate", tc.plate)
		b.set("#speed", tc.speed)
		if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil,
			chromedp.Evaluate[chromedp.Void](`HTMLFormElement.prototype.submit.call(document.getElementById('report-form'))`))); err != nil {
			t.Fatalf("%s: submit: %v", tc.name, err)
		}
		b.wantText("#error-summary", "The report was not saved or sent", tc.want)
		b.wantText("#"+tc.field+"-error", tc.want)
		if got := b.eval(`document.getElementById('` + tc.field + `').getAttribute('aria-invalid') || ''`); got != "true" {
			t.Errorf("%s: the field is not marked invalid", tc.name)
		}
		if got := b.eval(`document.getElementById('plate').value`); len(got) > 64 {
			t.Errorf("%s: the page echoes %d bytes of plate", tc.name, len(got))
		}
	}
	if n, err := c.ob.Waiting(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d reports queued after bad input (%v)", n, err)
	}
	if n := len(c.entries(t, "police1", srv.addr)); n != 0 {
		t.Fatalf("%d reports saved after bad input", n)
	}
	if n := len(srv.violations(t)); n != 0 {
		t.Fatalf("%d reports reached the officer server", n)
	}
}
