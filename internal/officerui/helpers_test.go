package officerui_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/officerui"
	"github.com/tes-traffic/tes/internal/review"
	"github.com/tes-traffic/tes/internal/sqlite"
)

// testPassword is every seeded account's password.
const testPassword = "correct horse battery"

// clock is an injectable time source shared by the UI and the services.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a dashboard over a real SQLite store in a temporary directory,
// served by httptest, with three accounts: ada (admin), olga (officer) and
// pete (police).
type env struct {
	t      *testing.T
	store  *sqlite.DB
	auth   *auth.Service
	review *review.Service
	ui     *officerui.UI
	srv    *httptest.Server
	clock  *clock
	cfg    officerui.Config
}

func mustOpenStore(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	master := make([]byte, atrest.KeySize)
	rand.Read(master)
	keys, err := atrest.New(master)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newEnv builds the environment; edit changes the Config before New.
func newEnv(t *testing.T, edit ...func(*officerui.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	e.store = mustOpenStore(t, t.TempDir())
	log := slog.New(slog.DiscardHandler)
	e.auth = auth.New(e.store, log)
	e.auth.Now = e.clock.Now
	e.review = review.New(e.store, tes.DefaultRules(), log)
	e.review.Now = e.clock.Now
	ctx := context.Background()
	for _, u := range []struct {
		name string
		role tes.Role
	}{{"ada", tes.RoleAdmin}, {"olga", tes.RoleOfficer}, {"pete", tes.RolePolice}} {
		if _, err := e.auth.CreateUser(ctx, "test", u.name, u.role, testPassword, false); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = officerui.Config{
		Store:  e.store,
		Review: e.review,
		Auth:   e.auth,
		Log:    log,
		Now:    e.clock.Now,
		Status: func() tes.ServerStatus {
			return tes.ServerStatus{
				StartedAt:    e.clock.Now().Add(-3 * time.Hour),
				Fingerprints: []tes.KeyFingerprint{{Suite: "tes1 (RSA-2048)", Fingerprint: "SHA256:testfingerprintAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
				Connections:  3,
				ReportsTotal: 42,
				PerMinute:    []int{1, 0, 4, 2},
			}
		},
		Location: time.UTC,
		Evidence: pki().exporter(e.store, e.clock.Now),
	}
	for _, f := range edit {
		f(&e.cfg)
	}
	ui, err := officerui.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ui = ui
	e.srv = httptest.NewServer(ui.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

var digestSeq struct {
	sync.Mutex
	n int
}

// ingest stores reports received now and returns their ids.
func (e *env) ingest(reports ...tes.Report) []int64 {
	e.t.Helper()
	return ingestAt(e.t, e.store, e.clock.Now(), reports...)
}

func ingestAt(t testing.TB, s tes.Store, at time.Time, reports ...tes.Report) []int64 {
	t.Helper()
	items := make([]*tes.IngestItem, len(reports))
	for i := range reports {
		r := reports[i]
		if r.User == "" {
			r.User = "pete"
		}
		if r.Suite == "" {
			r.Suite = tes.SuiteTES1
		}
		digestSeq.Lock()
		digestSeq.n++
		d := sha256.Sum256(fmt.Appendf(nil, "test-digest-%d-%s", digestSeq.n, rand.Text()))
		digestSeq.Unlock()
		items[i] = &tes.IngestItem{Report: &r, MessageDigest: d[:], ReceivedAt: at}
	}
	if err := s.Ingest(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(items))
	for i, it := range items {
		if it.Outcome != tes.OutcomeStored {
			t.Fatalf("ingest item %d: outcome %v", i, it.Outcome)
		}
		ids[i] = it.ViolationID
	}
	return ids
}

func (e *env) violation(id int64) *tes.Violation {
	e.t.Helper()
	v, err := e.store.Violation(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// driverPoints is the plate's record total, 0 when it has none.
func (e *env) driverPoints(plate string) int {
	e.t.Helper()
	d, err := e.store.Driver(context.Background(), plate)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		return 0
	} else if err != nil {
		e.t.Fatal(err)
	}
	return d.Points
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects, so tests see every 303.
type client struct {
	t    *testing.T
	e    *env
	hc   *http.Client
	csrf string
	hdr  http.Header // added to every request
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, e: e, hdr: http.Header{}, hc: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type resp struct {
	*http.Response
	body string
}

func (r *resp) location() string { return r.Header.Get("Location") }

func (c *client) do(req *http.Request) *resp {
	c.t.Helper()
	for k, vs := range c.hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return &resp{Response: res, body: string(b)}
}

func (c *client) get(path string) *resp {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.e.srv.URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

// post sends form; with withCSRF the session's token is added as "csrf".
func (c *client) post(path string, form url.Values, withCSRF bool) *resp {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if withCSRF {
		form.Set("csrf", c.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, c.e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfFrom returns the first CSRF token in an HTML page.
func csrfFrom(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}

// tryLogin submits the sign-in form the way a browser does.
func (c *client) tryLogin(name, pw string) *resp {
	c.t.Helper()
	page := c.get("/login")
	if page.StatusCode != http.StatusOK {
		c.t.Fatalf("GET /login: %d", page.StatusCode)
	}
	form := url.Values{"username": {name}, "password": {pw}, "csrf": {csrfFrom(c.t, page.body)}}
	return c.post("/login", form, false)
}

// login signs in as name and remembers the session's CSRF token.
func (e *env) login(name string) *client {
	e.t.Helper()
	c := e.client()
	r := c.tryLogin(name, testPassword)
	if r.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d\n%s", name, r.StatusCode, r.body)
	}
	c.refreshCSRF()
	return c
}

// refreshCSRF reads the session's token from a page that has the sign-out
// form.
func (c *client) refreshCSRF() {
	c.t.Helper()
	p := c.get("/password")
	if p.StatusCode != http.StatusOK {
		c.t.Fatalf("GET /password: %d", p.StatusCode)
	}
	c.csrf = csrfFrom(c.t, p.body)
}

// sessionCookie is the client's tes_session cookie value, "" if none.
func (c *client) sessionCookie() string {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == "tes_session" {
			return ck.Value
		}
	}
	return ""
}

// api sends a JSON API request; body may be nil.
func (c *client) api(method, path string, body any, hdr map[string]string) *resp {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.do(req)
}

func decodeJSON[T any](t *testing.T, r *resp) T {
	t.Helper()
	var v T
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON; body:\n%s", ct, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}

// wantStatus fails the test unless r has the status.
func wantStatus(t *testing.T, r *resp, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.2000s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.body)
	}
}

// wantBody fails unless the body holds every string.
func wantBody(t *testing.T, r *resp, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s %s: body lacks %q:\n%.3000s", r.Request.Method, r.Request.URL.Path, s, r.body)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
