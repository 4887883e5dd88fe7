package officerui_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/officerui"
)

// snapshot is everything a request could change: used to prove that a
// refused request changed nothing.
type snapshot struct {
	statuses map[int64]tes.Status
	users    map[string]tes.User
	tokens   int
	lastSeq  int64
	drivers  int
}

func (e *env) snapshot(ids ...int64) snapshot {
	e.t.Helper()
	ctx := context.Background()
	s := snapshot{statuses: map[int64]tes.Status{}, users: map[string]tes.User{}}
	for _, id := range ids {
		s.statuses[id] = e.violation(id).Status
	}
	us, err := e.store.Users(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range us {
		c := *u
		c.UpdatedAt = time.Time{}
		s.users[u.Name] = c
	}
	ts, err := e.store.APITokens(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	s.tokens = len(ts)
	ev, err := e.store.Events(ctx, 0, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(ev) > 0 {
		s.lastSeq = ev[0].Seq
	}
	ds, _, err := e.store.Drivers(ctx, tes.DriverFilter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	s.drivers = len(ds)
	return s
}

func (e *env) wantUnchanged(before snapshot, ids ...int64) {
	e.t.Helper()
	after := e.snapshot(ids...)
	for id, st := range before.statuses {
		if after.statuses[id] != st {
			e.t.Errorf("violation %d changed from %s to %s", id, st, after.statuses[id])
		}
	}
	for name, u := range before.users {
		a := after.users[name]
		if a.Role != u.Role || a.Disabled != u.Disabled || a.PasswordHash != u.PasswordHash || a.MustChangePass != u.MustChangePass {
			e.t.Errorf("user %s changed: %+v -> %+v", name, u, a)
		}
	}
	if len(after.users) != len(before.users) {
		e.t.Errorf("%d users, want %d", len(after.users), len(before.users))
	}
	if after.tokens != before.tokens {
		e.t.Errorf("%d API tokens, want %d", after.tokens, before.tokens)
	}
	if after.drivers != before.drivers {
		e.t.Errorf("%d driver records, want %d", after.drivers, before.drivers)
	}
	if after.lastSeq != before.lastSeq {
		e.t.Errorf("the audit log grew from %d to %d events", before.lastSeq, after.lastSeq)
	}
}

// route is one request that would change something if it were let through.
type route struct {
	method, path string
	form         url.Values
}

func unsafeRoutes(tokenID string) []route {
	return []route{
		{"POST", "/process/1/approve", url.Values{"points": {"999"}}},
		{"POST", "/process/1/reject", url.Values{"reason": {"duplicate"}, "note": {"x"}}},
		{"POST", "/bulk", url.Values{"id": {"1", "2"}, "action": {"approve"}}},
		{"POST", "/password", url.Values{"current": {testPassword}, "new": {"a brand new password"}, "confirm": {"a brand new password"}}},
		{"POST", "/users", url.Values{"name": {"eve"}, "role": {"admin"}, "password": {"eve password 123"}}},
		{"POST", "/users/olga/role", url.Values{"role": {"admin"}}},
		{"POST", "/users/olga/disable", nil},
		{"POST", "/users/olga/enable", nil},
		{"POST", "/users/olga/reset", nil},
		{"POST", "/tokens", url.Values{"token_name": {"evil"}, "token_user": {"olga"}}},
		{"POST", "/tokens/" + tokenID + "/revoke", nil},
		{"POST", "/logout", nil},
	}
}

// TestNoSessionNoAccess: every page without a session redirects to the
// sign-in page, every API call answers 401 JSON, and nothing changes.
func TestNoSessionNoAccess(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(tes.Report{Plate: "AB 1", Speed: 75}, tes.Report{Plate: "AB 2", Speed: 120})
	_, tok, err := e.auth.CreateAPIToken(context.Background(), "test", "existing", "olga")
	if err != nil {
		t.Fatal(err)
	}
	tokenID := hex.EncodeToString(tok.IDHash)
	before := e.snapshot(ids...)

	pages := []string{"/", "/dashboard", "/dashboard?status=all", "/process/1", "/process/1/evidence", "/records", "/records/AB%201",
		"/status", "/charts", "/users", "/password", "/export/violations.csv", "/export/records.csv"}
	for _, cookie := range []string{"", "garbage", base64.RawURLEncoding.EncodeToString(make([]byte, 32))} {
		c := e.client()
		if cookie != "" {
			u, _ := url.Parse(e.srv.URL)
			c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "tes_session", Value: cookie}})
		}
		for _, p := range pages {
			r := c.get(p)
			wantStatus(t, r, http.StatusSeeOther)
			if loc := r.location(); !strings.HasPrefix(loc, "/login") {
				t.Errorf("GET %s (cookie %q) redirects to %q, want /login", p, cookie, loc)
			}
			if strings.Contains(r.body, "AB 1") {
				t.Errorf("GET %s without a session shows data", p)
			}
		}
		if loc := c.get("/process/1").location(); loc != "/login?next=%2Fprocess%2F1" {
			t.Errorf("redirect keeps the destination: got %q", loc)
		}
		for _, rt := range unsafeRoutes(tokenID) {
			r := c.post(rt.path, rt.form, false)
			wantStatus(t, r, http.StatusSeeOther)
			if loc := r.location(); loc != "/login" {
				t.Errorf("POST %s redirects to %q, want /login", rt.path, loc)
			}
		}
		for _, rt := range []route{
			{"GET", "/api/violations", nil}, {"GET", "/api/violations?status=pending", nil}, {"GET", "/api/violations/1", nil},
			{"GET", "/api/violations/1/evidence", nil},
			{"POST", "/api/violations/1/approve", nil}, {"POST", "/api/violations/1/reject", nil}, {"POST", "/api/action", nil},
		} {
			var r *resp
			if rt.method == "GET" {
				r = c.get(rt.path)
			} else {
				r = c.post(rt.path, url.Values{"id": {"1"}, "action": {"approve"}, "reason": {"duplicate"}}, false)
			}
			wantStatus(t, r, http.StatusUnauthorized)
			body := decodeJSON[map[string]string](t, r)
			if body["error"] == "" || body["code"] != tes.EUNAUTHORIZED {
				t.Errorf("%s %s: body %v, want an error and code unauthorized", rt.method, rt.path, body)
			}
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: no WWW-Authenticate header", rt.method, rt.path)
			}
		}
	}
	e.wantUnchanged(before, ids...)
}

// TestCSRF: with a valid session, an unsafe request without the session's
// token, or with another token, is refused with 403 and changes nothing.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(tes.Report{Plate: "AB 1", Speed: 75}, tes.Report{Plate: "AB 2", Speed: 120})
	_, tok, err := e.auth.CreateAPIToken(context.Background(), "test", "existing", "olga")
	if err != nil {
		t.Fatal(err)
	}
	ada := e.login("ada")
	other := e.login("olga") // a real token, but of another session
	before := e.snapshot(ids...)
	for _, token := range []string{"", "wrong", other.csrf} {
		for _, rt := range unsafeRoutes(hex.EncodeToString(tok.IDHash)) {
			form := url.Values{}
			for k, v := range rt.form {
				form[k] = v
			}
			if token != "" {
				form.Set("csrf", token)
			}
			r := ada.post(rt.path, form, false)
			wantStatus(t, r, http.StatusForbidden)
			wantBody(t, r, "nothing was changed")
		}
		r := ada.api("POST", "/api/violations/1/approve", nil, map[string]string{"X-CSRF-Token": token})
		wantStatus(t, r, http.StatusForbidden)
		if b := decodeJSON[map[string]string](t, r); !strings.Contains(b["error"], "X-CSRF-Token") {
			t.Errorf("API CSRF error %v", b)
		}
	}
	e.wantUnchanged(before, ids...)

	// The same requests with the right token work.
	wantStatus(t, ada.post("/process/1/approve", nil, true), http.StatusSeeOther)
	r := ada.api("POST", "/api/violations/2/approve", nil, map[string]string{"X-CSRF-Token": ada.csrf})
	wantStatus(t, r, http.StatusOK)
	if e.violation(1).Status != tes.StatusApproved || e.violation(2).Status != tes.StatusApproved {
		t.Error("approvals with the right token did not apply")
	}
}

// TestLoginCSRF: the sign-in form carries a token bound to a pre-session
// cookie; a POST without it (a login CSRF) signs nobody in.
func TestLoginCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for _, form := range []url.Values{
		{"username": {"olga"}, "password": {testPassword}},
		{"username": {"olga"}, "password": {testPassword}, "csrf": {"forged"}},
	} {
		r := c.post("/login", form, false)
		wantStatus(t, r, http.StatusForbidden)
		wantBody(t, r, "sign-in form had expired")
		if c.sessionCookie() != "" {
			t.Fatal("a forged sign-in set a session cookie")
		}
	}
	// The page sets the cookie; its token then works.
	wantStatus(t, c.tryLogin("olga", testPassword), http.StatusSeeOther)
	if c.sessionCookie() == "" {
		t.Fatal("no session after a proper sign-in")
	}
}

// TestCrossOrigin: http.CrossOriginProtection refuses a browser POST from
// another site even with a valid session and token, and the sign-in form.
func TestCrossOrigin(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(tes.Report{Plate: "AB 1", Speed: 75})
	c := e.login("olga")
	before := e.snapshot(ids...)
	for _, h := range []map[string]string{
		{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		for k, v := range h {
			c.hdr.Set(k, v)
		}
		r := c.post("/process/1/approve", nil, true)
		wantStatus(t, r, http.StatusForbidden)
		wantBody(t, r, "came from another site")
		r = c.post("/login", url.Values{"username": {"olga"}, "password": {testPassword}}, false)
		wantStatus(t, r, http.StatusForbidden)
		r = c.api("POST", "/api/violations/1/approve", nil, map[string]string{"X-CSRF-Token": c.csrf})
		wantStatus(t, r, http.StatusForbidden)
		decodeJSON[map[string]string](t, r)
		c.hdr = http.Header{}
	}
	e.wantUnchanged(before, ids...)
	// Same-origin browser requests go through.
	c.hdr.Set("Sec-Fetch-Site", "same-origin")
	c.hdr.Set("Origin", e.srv.URL)
	wantStatus(t, c.post("/process/1/approve", nil, true), http.StatusSeeOther)
	if e.violation(1).Status != tes.StatusApproved {
		t.Error("same-origin approval did not apply")
	}
}

// TestPoliceForbidden: a police account may sign in (to change its
// password) but every review page, action and API call is 403.
func TestPoliceForbidden(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(tes.Report{Plate: "AB 1", Speed: 75})
	raw, _, err := e.auth.CreateAPIToken(context.Background(), "test", "unit token", "pete")
	if err != nil {
		t.Fatal(err)
	}
	c := e.login("pete")
	before := e.snapshot(ids...)
	for _, p := range []string{"/dashboard", "/process/1", "/process/1/evidence", "/records", "/records/AB%201", "/status", "/charts", "/users", "/export/violations.csv", "/export/records.csv"} {
		r := c.get(p)
		wantStatus(t, r, http.StatusForbidden)
		wantBody(t, r, "police role")
		if strings.Contains(r.body, "AB 1") {
			t.Errorf("%s shows data to police", p)
		}
	}
	for _, rt := range []route{
		{"POST", "/process/1/approve", nil},
		{"POST", "/process/1/reject", url.Values{"reason": {"duplicate"}}},
		{"POST", "/bulk", url.Values{"id": {"1"}, "action": {"approve"}}},
		{"POST", "/users", url.Values{"name": {"eve"}, "role": {"admin"}, "password": {"eve password 123"}}},
	} {
		wantStatus(t, c.post(rt.path, rt.form, true), http.StatusForbidden)
	}
	for _, hdr := range []map[string]string{{"X-CSRF-Token": c.csrf}, {"Authorization": "Bearer " + raw}} {
		wantStatus(t, c.api("GET", "/api/violations", nil, hdr), http.StatusForbidden)
		wantStatus(t, c.api("GET", "/api/violations/1/evidence", nil, hdr), http.StatusForbidden)
		r := c.api("POST", "/api/violations/1/approve", nil, hdr)
		wantStatus(t, r, http.StatusForbidden)
		if b := decodeJSON[map[string]string](t, r); b["code"] != tes.EFORBIDDEN {
			t.Errorf("police API body %v", b)
		}
	}
	e.wantUnchanged(before, ids...)
	// The password page and sign-out stay open to police.
	wantStatus(t, c.get("/password"), http.StatusOK)
	wantStatus(t, c.post("/logout", nil, true), http.StatusSeeOther)
}

// TestEscaping: text from reports, officers and forms is escaped wherever
// it is shown, so a <script> in a location, a reject note, a sign-in name,
// a user form or a token name never runs.
func TestEscaping(t *testing.T) {
	e := newEnv(t)
	const evil = `<script>alert("xss")</script>`
	ids := e.ingest(
		tes.Report{Plate: "XSS 1", Speed: 75, Location: evil + ` & "quotes"`},
		tes.Report{Plate: "XSS 1", Speed: 55},
	)
	ada := e.login("ada")
	r := ada.post("/process/2/reject", url.Values{"reason": {"other"}, "note": {evil}}, true)
	wantStatus(t, r, http.StatusSeeOther)
	if _, _, err := e.auth.CreateAPIToken(context.Background(), "ada", evil, "olga"); err != nil {
		t.Fatal(err)
	}

	check := func(r *resp) {
		t.Helper()
		if strings.Contains(r.body, "<script>alert") {
			t.Errorf("%s: unescaped script:\n%.3000s", r.Request.URL, r.body)
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;") {
			t.Errorf("%s: escaped script not shown", r.Request.URL)
		}
	}
	for _, p := range []string{"/process/1", "/process/2", "/dashboard?status=all", "/records/XSS%201", "/users", "/status"} {
		r := ada.get(p)
		wantStatus(t, r, http.StatusOK)
		check(r)
	}
	// A rejected form refills the note escaped.
	r = ada.post("/process/"+itoa(ids[0])+"/reject", url.Values{"reason": {"bogus"}, "note": {evil}}, true)
	wantStatus(t, r, http.StatusBadRequest)
	check(r)
	// A bad user name is shown back escaped.
	r = ada.post("/users", url.Values{"name": {evil}, "role": {"officer"}, "password": {"long enough password"}}, true)
	wantStatus(t, r, http.StatusBadRequest)
	check(r)
	// The sign-in form shows the name it was given, escaped.
	c := e.client()
	r = c.tryLogin(evil, "whatever password")
	wantStatus(t, r, http.StatusUnauthorized)
	check(r)
	// JSON escapes it too.
	r = ada.api("GET", "/api/violations/1", nil, nil)
	if strings.Contains(r.body, "<script>") {
		t.Errorf("API body holds a raw <script>: %s", r.body)
	}
}

// TestCookieFlags checks the session and sign-in cookies' attributes, with
// and without TLS. Behind TLS the names carry the __Host- prefix, so a
// browser accepts them only Secure, host-only and Path=/, and a cookie of
// the bare name (planted over plain HTTP or by a sibling subdomain) is not
// a session.
func TestCookieFlags(t *testing.T) {
	for _, secure := range []bool{false, true} {
		prefix := ""
		if secure {
			prefix = "__Host-"
		}
		e := newEnv(t, func(c *officerui.Config) { c.Secure = secure })
		c := e.client()
		page := c.get("/login")
		var login *http.Cookie
		for _, ck := range page.Cookies() {
			if ck.Name == prefix+"tes_login_csrf" {
				login = ck
			}
		}
		if login == nil || !login.HttpOnly || login.SameSite != http.SameSiteStrictMode || login.Secure != secure || login.Path != "/" {
			t.Fatalf("secure=%v: sign-in cookie %+v (cookies %v)", secure, login, page.Cookies())
		}
		// The jar does not send Secure cookies to an http:// test server, so
		// the cookies go by hand.
		form := url.Values{"username": {"olga"}, "password": {testPassword}, "csrf": {csrfFrom(t, page.body)}}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(login)
		r := c.do(req)
		wantStatus(t, r, http.StatusSeeOther)
		var sess *http.Cookie
		for _, ck := range r.Cookies() {
			if ck.Name == prefix+"tes_session" {
				sess = ck
			}
		}
		if sess == nil {
			t.Fatalf("secure=%v: no %stes_session cookie in %v", secure, prefix, r.Cookies())
		}
		if !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Secure != secure || sess.Domain != "" {
			t.Errorf("secure=%v: session cookie %+v: want HttpOnly, SameSite=Lax, Path=/, host-only, Secure=%v", secure, sess, secure)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(sess.Value); err != nil || len(raw) != 32 {
			t.Errorf("session id %q is not 32 random bytes", sess.Value)
		}
		hsts := r.Header.Get("Strict-Transport-Security")
		if secure != (hsts != "") {
			t.Errorf("secure=%v: Strict-Transport-Security %q", secure, hsts)
		}
		// The session works under its own name only.
		noJar := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, tc := range []struct {
			name string
			want int
		}{{sess.Name, http.StatusOK}, {"tes_session", http.StatusSeeOther}} {
			if !secure && tc.name == "tes_session" {
				continue
			}
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/dashboard", nil)
			req.AddCookie(&http.Cookie{Name: tc.name, Value: sess.Value})
			res, err := noJar.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Errorf("secure=%v: GET /dashboard with cookie %s: %d (%s), want %d", secure, tc.name, res.StatusCode, res.Header.Get("Location"), tc.want)
			}
		}
	}
}

// TestSessionStoredAsHash: the store holds SHA-256 of the id only.
func TestSessionStoredAsHash(t *testing.T) {
	e := newEnv(t)
	c := e.login("olga")
	raw, _ := base64.RawURLEncoding.DecodeString(c.sessionCookie())
	h := sha256.Sum256(raw)
	s, err := e.store.WebSession(context.Background(), h[:])
	if err != nil {
		t.Fatalf("no session under SHA-256 of the cookie: %v", err)
	}
	if s.User != "olga" || s.CSRFToken != c.csrf {
		t.Errorf("stored session %+v", s)
	}
	if _, err := e.store.WebSession(context.Background(), raw); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("the raw id finds a session: %v", err)
	}
}

// TestSessionRotation: signing in issues a new id and deletes any session
// the browser carried, so an id planted before sign-in (fixation) is dead.
func TestSessionRotation(t *testing.T) {
	e := newEnv(t)
	mallory := e.login("ada")
	planted := mallory.sessionCookie()

	victim := e.client()
	form := victim.get("/login")
	u, _ := url.Parse(e.srv.URL)
	victim.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "tes_session", Value: planted, Path: "/"}})
	r := victim.post("/login", url.Values{"username": {"olga"}, "password": {testPassword}, "csrf": {csrfFrom(t, form.body)}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	got := victim.sessionCookie()
	if got == "" || got == planted {
		t.Fatalf("sign-in kept the planted session id")
	}
	// The planted id no longer works for anyone.
	wantStatus(t, mallory.get("/dashboard"), http.StatusSeeOther)
	// Signing in again (the form of an old tab) rotates again.
	var token string
	for _, ck := range victim.hc.Jar.Cookies(u) {
		if ck.Name == "tes_login_csrf" {
			token = ck.Value
		}
	}
	r = victim.post("/login", url.Values{"username": {"olga"}, "password": {testPassword}, "csrf": {token}}, false)
	wantStatus(t, r, http.StatusSeeOther)
	if again := victim.sessionCookie(); again == got {
		t.Error("a second sign-in kept the session id")
	}
	old := e.client()
	old.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "tes_session", Value: got, Path: "/"}})
	wantStatus(t, old.get("/dashboard"), http.StatusSeeOther)
}

// TestLogout deletes the session row: the old cookie is dead.
func TestLogout(t *testing.T) {
	e := newEnv(t)
	c := e.login("olga")
	cookie := c.sessionCookie()
	r := c.post("/logout", nil, true)
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.location(); loc != "/login?msg=signedout" {
		t.Errorf("logout goes to %q", loc)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(cookie)
	h := sha256.Sum256(raw)
	if _, err := e.store.WebSession(context.Background(), h[:]); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("session row still there after logout: %v", err)
	}
	replay := e.client()
	u, _ := url.Parse(e.srv.URL)
	replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "tes_session", Value: cookie, Path: "/"}})
	wantStatus(t, replay.get("/dashboard"), http.StatusSeeOther)
	wantBody(t, c.get("/login?msg=signedout"), "You have signed out.")
}

// TestLockout: after auth.FreeFailures wrong passwords the account is
// locked, even for the right password, until the lock runs out.
func TestLockout(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for i := range auth.FreeFailures {
		r := c.tryLogin("olga", "wrong password "+itoa(int64(i)))
		wantStatus(t, r, http.StatusUnauthorized)
		wantBody(t, r, "Invalid user name or password.")
	}
	r := c.tryLogin("olga", testPassword)
	wantStatus(t, r, http.StatusTooManyRequests)
	wantBody(t, r, "Too many failed sign-ins")
	if c.sessionCookie() != "" {
		t.Fatal("a locked account got a session")
	}
	// Unknown users get the same answer as wrong passwords.
	wantBody(t, c.tryLogin("nobody", "wrong password"), "Invalid user name or password.")

	e.clock.Add(auth.BaseLock + time.Second)
	wantStatus(t, c.tryLogin("olga", testPassword), http.StatusSeeOther)
	evs, err := e.store.Events(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var locked bool
	for _, ev := range evs {
		locked = locked || ev.Action == "user.locked" && ev.Subject == "user:olga"
	}
	if !locked {
		t.Error("no user.locked event in the audit log")
	}
}

// TestIdleTimeout: a session unused for IdleTimeout is gone; activity
// keeps it alive; LastSeen is written at most once a minute.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t)
	c := e.login("olga")
	raw, _ := base64.RawURLEncoding.DecodeString(c.sessionCookie())
	h := sha256.Sum256(raw)
	lastSeen := func() time.Time {
		s, err := e.store.WebSession(context.Background(), h[:])
		if err != nil {
			t.Fatal(err)
		}
		return s.LastSeen
	}
	start := lastSeen()

	e.clock.Add(30 * time.Second)
	wantStatus(t, c.get("/dashboard"), http.StatusOK)
	if !lastSeen().Equal(start) {
		t.Error("LastSeen written within a minute of the last write")
	}
	e.clock.Add(officerui.IdleTimeout - time.Minute) // 29.5 min after sign-in
	wantStatus(t, c.get("/dashboard"), http.StatusOK)
	if !lastSeen().After(start) {
		t.Error("LastSeen not updated after a minute")
	}
	e.clock.Add(officerui.IdleTimeout - time.Second) // active just in time
	wantStatus(t, c.get("/dashboard"), http.StatusOK)
	e.clock.Add(officerui.IdleTimeout) // idle too long
	r := c.get("/dashboard")
	wantStatus(t, r, http.StatusSeeOther)
	if !strings.HasPrefix(r.location(), "/login") {
		t.Errorf("idle session went to %q", r.location())
	}
	if _, err := e.store.WebSession(context.Background(), h[:]); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("expired session not deleted: %v", err)
	}
	// The API says 401 for an expired session too.
	wantStatus(t, c.api("GET", "/api/violations", nil, nil), http.StatusUnauthorized)
}

// TestAbsoluteTimeout: however active, a session ends AbsoluteTimeout after
// sign-in.
func TestAbsoluteTimeout(t *testing.T) {
	e := newEnv(t)
	c := e.login("olga")
	step := 20 * time.Minute
	for elapsed := step; elapsed < officerui.AbsoluteTimeout; elapsed += step {
		e.clock.Add(step)
		if r := c.get("/dashboard"); r.StatusCode != http.StatusOK {
			t.Fatalf("active session refused after %s: %d", elapsed, r.StatusCode)
		}
	}
	e.clock.Add(step)
	r := c.get("/dashboard")
	wantStatus(t, r, http.StatusSeeOther)
	if !strings.HasPrefix(r.location(), "/login") {
		t.Errorf("after %s the session went to %q", officerui.AbsoluteTimeout, r.location())
	}
}

// TestMustChangePassword: a generated or reset password sends the user to
// /password on every page until it is changed; the change starts a new
// session and the old one is dead.
func TestMustChangePassword(t *testing.T) {
	e := newEnv(t)
	if _, err := e.auth.CreateUser(context.Background(), "test", "newbie", tes.RoleOfficer, "temporary password 1", true); err != nil {
		t.Fatal(err)
	}
	e.ingest(tes.Report{Plate: "AB 1", Speed: 75})
	c := e.client()
	r := c.tryLogin("newbie", "temporary password 1")
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/password" {
		t.Fatalf("first sign-in goes to %q, want /password", r.location())
	}
	for _, p := range []string{"/dashboard", "/process/1", "/records", "/users"} {
		r := c.get(p)
		wantStatus(t, r, http.StatusSeeOther)
		if r.location() != "/password" {
			t.Errorf("%s goes to %q, want /password", p, r.location())
		}
	}
	c.refreshCSRF()
	wantBody(t, c.get("/password"), "temporary password")
	wantStatus(t, c.api("GET", "/api/violations", nil, nil), http.StatusForbidden)
	wantStatus(t, c.post("/process/1/approve", nil, true), http.StatusSeeOther)
	if e.violation(1).Status != tes.StatusPending {
		t.Fatal("a user with a temporary password approved")
	}

	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"current": {"wrong one"}, "new": {"my own password"}, "confirm": {"my own password"}}, "current password is not right"},
		{url.Values{"current": {"temporary password 1"}, "new": {"my own password"}, "confirm": {"my own passw0rd"}}, "not the same"},
		{url.Values{"current": {"temporary password 1"}, "new": {"short"}, "confirm": {"short"}}, "at least 8"},
		{url.Values{"current": {"temporary password 1"}, "new": {"temporary password 1"}, "confirm": {"temporary password 1"}}, "must be different"},
	} {
		r := c.post("/password", tc.form, true)
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, tc.want)
	}
	old := c.sessionCookie()
	r = c.post("/password", url.Values{"current": {"temporary password 1"}, "new": {"my own password"}, "confirm": {"my own password"}}, true)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/dashboard?msg=password" {
		t.Errorf("after the change: %q", r.location())
	}
	if c.sessionCookie() == old {
		t.Error("the password change kept the session id")
	}
	wantStatus(t, c.get("/dashboard"), http.StatusOK)
	u, _ := e.store.User(context.Background(), "newbie")
	if u.MustChangePass {
		t.Error("MustChangePass still set")
	}
	stale := e.client()
	su, _ := url.Parse(e.srv.URL)
	stale.hc.Jar.SetCookies(su, []*http.Cookie{{Name: "tes_session", Value: old, Path: "/"}})
	wantStatus(t, stale.get("/dashboard"), http.StatusSeeOther)
	wantStatus(t, e.client().tryLogin("newbie", "my own password"), http.StatusSeeOther)
}

// TestSafeNext: ?next= only ever leads to a path on this site.
func TestSafeNext(t *testing.T) {
	e := newEnv(t)
	for next, want := range map[string]string{
		"/records":              "/records",
		"//evil.example/x":      "/dashboard",
		"https://evil.example/": "/dashboard",
		`/\evil.example`:        "/dashboard",
		"":                      "/dashboard",
	} {
		c := e.client()
		page := c.get("/login?next=" + url.QueryEscape(next))
		r := c.post("/login", url.Values{"username": {"olga"}, "password": {testPassword}, "csrf": {csrfFrom(t, page.body)}, "next": {next}}, false)
		wantStatus(t, r, http.StatusSeeOther)
		if r.location() != want {
			t.Errorf("next=%q: went to %q, want %q", next, r.location(), want)
		}
	}
}
