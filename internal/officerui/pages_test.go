package officerui_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officerui"
	"github.com/tes-traffic/tes/internal/review"
)

// inlineRE finds what the CSP forbids: a <script> without src, a <style>
// element, a style= attribute or an on...= event handler attribute.
var inlineRE = regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]|<script>|<style|\sstyle=|\son[a-z]+=`)

// TestPagesRender opens every page as an admin with some data in the store
// and checks each is complete, carries the security headers and uses no
// inline script or style.
func TestPagesRender(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(
		tes.Report{Plate: "KA 1234", Speed: 55, SpeedLimit: 50, Location: "A7 km 12, northbound"},
		tes.Report{Plate: "KA 1234", Speed: 105, SpeedLimit: 80, Location: "Ring road"},
		tes.Report{Plate: "B-XY 77", Speed: 72},
	)
	ctx := context.Background()
	olga, _ := e.store.User(ctx, "olga")
	if _, err := e.review.Approve(ctx, olga, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.review.Reject(ctx, olga, ids[2], tes.ReasonDuplicate, "same as #1"); err != nil {
		t.Fatal(err)
	}
	c := e.login("ada")
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/dashboard", []string{"Review queue", "KA 1234", `name="id" value="2"`}},
		{"/dashboard?status=all&sort=speed", []string{"B-XY 77", "APPROVED", "REJECTED"}},
		{"/process/1", []string{"Approved", "10 points", "were added"}},
		{"/process/2", []string{"Approve and add 50 points", "Ring road", "Plate unreadable"}},
		{"/process/3", []string{"Rejected", "Duplicate report", "same as #1"}},
		{"/records", []string{"Driver records", "KA 1234"}},
		{"/records/KA%201234", []string{"Record of", "History of violations", "Ring road"}},
		{"/status", []string{"System status", "SHA256:testfingerprint", "Recent events", "violation.approved"}},
		{"/charts", []string{"Violations per hour", "Speed distribution", "<svg", "chart-bar"}},
		{"/users", []string{"Accounts", "olga", "pete", "API tokens"}},
		{"/password", []string{"Change your password"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := c.get(tc.path)
			wantStatus(t, r, http.StatusOK)
			wantBody(t, r, tc.want...)
			wantBody(t, r, "</html>", `href="#main"`, "Skip to main content")
			checkHeaders(t, r)
			if m := inlineRE.FindString(r.body); m != "" {
				t.Errorf("inline script or style %q in %s", m, tc.path)
			}
		})
	}
}

func checkHeaders(t *testing.T, r *resp) {
	t.Helper()
	h := r.Header
	if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || strings.Contains(got, "unsafe-inline") {
		t.Errorf("CSP = %q", got)
	}
	for k, want := range map[string]string{
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestLabelsForInputs checks that every visible form control on every page
// has a label (or an aria-label), so that a screen reader names it.
func TestLabelsForInputs(t *testing.T) {
	e := newEnv(t)
	e.ingest(tes.Report{Plate: "AB 1", Speed: 80})
	c := e.login("ada")
	idRE := regexp.MustCompile(`<(input|select|textarea)\b([^>]*)>`)
	attr := func(tag, name string) string {
		m := regexp.MustCompile(`\s` + name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, path := range []string{"/dashboard", "/process/1", "/records", "/users", "/password", "/status", "/charts"} {
		body := c.get(path).body
		for _, m := range idRE.FindAllStringSubmatch(body, -1) {
			tag := m[0]
			if attr(tag, "type") == "hidden" {
				continue
			}
			if attr(tag, "aria-label") != "" {
				continue
			}
			id := attr(tag, "id")
			if id == "" || !strings.Contains(body, `for="`+id+`"`) {
				t.Errorf("%s: control without a label: %s", path, tag)
			}
		}
	}
	// The sign-in page, signed out.
	body := e.client().get("/login").body
	for _, id := range []string{"username", "password"} {
		if !strings.Contains(body, `<label for="`+id+`"`) {
			t.Errorf("/login: no label for %s", id)
		}
	}
}

// TestStaticAssets checks the embedded CSS and JS are served with the right
// types and long caching for fingerprinted URLs, and that a directory
// listing is not.
func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	page := c.get("/login").body
	m := regexp.MustCompile(`href="(/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no fingerprinted stylesheet link in:\n%s", page)
	}
	r := c.get(m[1])
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("style.css Content-Type %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("style.css Cache-Control %q", cc)
	}
	if r := c.get("/static/app.js"); r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	wantStatus(t, c.get("/static/"), http.StatusNotFound)
	wantStatus(t, c.get("/static/nope.css"), http.StatusNotFound)
}

// TestChartsUnavailable: a store without tes.StatsStore gives a page that
// says so instead of failing.
func TestChartsUnavailable(t *testing.T) {
	e := newEnv(t, func(c *officerui.Config) { c.Store = plainStore{c.Store} })
	r := e.login("olga").get("/charts")
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Charts unavailable")
	if strings.Contains(r.body, "<svg") {
		t.Error("charts drawn without a StatsStore")
	}
}

// plainStore hides every method but tes.Store's.
type plainStore struct{ tes.Store }

// TestChartsCounts checks the SVG charts reflect the store's aggregates:
// the per-hour and per-speed tables hold the seeded counts.
func TestChartsCounts(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	ingestAt(t, e.store, now.Add(-2*time.Hour), tes.Report{Plate: "C 1", Speed: 52}, tes.Report{Plate: "C 2", Speed: 58})
	ingestAt(t, e.store, now, tes.Report{Plate: "C 3", Speed: 123})
	ingestAt(t, e.store, now.Add(-5*24*time.Hour), tes.Report{Plate: "C 4", Speed: 77}) // outside the 3 days
	r := e.login("olga").get("/charts")
	wantStatus(t, r, http.StatusOK)
	// Table rows: bucket label then count.
	wantBody(t, r, `<th scope="row">50–59</th><td class="num">2</td>`, `<th scope="row">120–129</th><td class="num">1</td>`,
		`<th scope="row">70–79</th><td class="num">0</td>`)
	if n := strings.Count(r.body, `class="chart-bar`); n < 72+15 {
		t.Errorf("%d bars, want at least 72 hours + 15 speed buckets", n)
	}
	wantBody(t, r, `aria-label="Violations received per hour, last 3 days: 3 violations in total`)
}

// TestNotFound: unknown pages and ids give a clean 404, API paths JSON.
func TestNotFound(t *testing.T) {
	e := newEnv(t)
	c := e.login("olga")
	for _, p := range []string{"/nope", "/process/999", "/process/abc", "/records/ZZ%2099"} {
		r := c.get(p)
		wantStatus(t, r, http.StatusNotFound)
		checkHeaders(t, r)
		if !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q", p, r.Header.Get("Content-Type"))
		}
	}
	r := c.api("GET", "/api/violations/999", nil, nil)
	wantStatus(t, r, http.StatusNotFound)
	if got := decodeJSON[map[string]string](t, r); got["code"] != tes.ENOTFOUND || got["error"] == "" {
		t.Errorf("API 404 body %v", got)
	}
	r = c.api("GET", "/api/nope", nil, nil)
	wantStatus(t, r, http.StatusNotFound)
	decodeJSON[map[string]string](t, r)
}

// failingStore fails every violation read with an error whose text must
// never reach a user.
type failingStore struct{ tes.Store }

var errSecret = errors.New("disk I/O error in /var/lib/tes/secret-path/tes.db")

func (failingStore) Violations(context.Context, tes.ViolationFilter) ([]*tes.Violation, *tes.Cursor, error) {
	return nil, nil, errSecret
}

func (failingStore) Violation(context.Context, int64) (*tes.Violation, error) { return nil, errSecret }

// TestInternalErrorsHidden: an unexpected error is a 500 with a generic
// message on pages and in the API, never its text or a stack trace, and it
// is logged.
func TestInternalErrorsHidden(t *testing.T) {
	var logs strings.Builder
	e := newEnv(t, func(c *officerui.Config) {
		c.Store = failingStore{c.Store}
		c.Log = slog.New(slog.NewTextHandler(&logs, nil))
		c.Review = review.New(c.Store, tes.DefaultRules(), c.Log)
	})
	c := e.login("olga")
	for _, p := range []string{"/dashboard", "/process/1", "/export/violations.csv"} {
		r := c.get(p)
		wantStatus(t, r, http.StatusInternalServerError)
		wantBody(t, r, "Something went wrong on the server")
		if strings.Contains(r.body, "secret-path") || strings.Contains(r.body, "goroutine") {
			t.Errorf("%s leaks the error:\n%s", p, r.body)
		}
	}
	r := c.api("GET", "/api/violations", nil, nil)
	wantStatus(t, r, http.StatusInternalServerError)
	if b := decodeJSON[map[string]string](t, r); b["code"] != tes.EINTERNAL || strings.Contains(b["error"], "secret") {
		t.Errorf("API 500 body %v", b)
	}
	if !strings.Contains(logs.String(), "secret-path") {
		t.Errorf("the error was not logged:\n%s", logs.String())
	}
}
