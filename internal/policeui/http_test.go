package policeui_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/pins"
)

// TestHeadersAndCookies checks the security headers on every page and the
// flags of the sign-in and session cookies.
func TestHeadersAndCookies(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	u := newHTTPUser(t, c.url)

	resp, page := u.do("GET", "/login", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /login: %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Permissions-Policy":      "geolocation=(self)",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", k, got, want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") || strings.Contains(page, "onclick") {
		t.Error("the page has inline script or style, which the CSP forbids")
	}
	if !strings.Contains(page, `value="`+srv.addr+`"`) {
		t.Errorf("the server field does not default to %s", srv.addr)
	}

	var sc *http.Cookie
	resp, _ = u.login(srv.addr, "police1", policeAccounts["police1"])
	for _, ck := range resp.Cookies() {
		if ck.Name == "tes_police_session" {
			sc = ck
		}
	}
	if sc == nil {
		t.Fatal("no tes_police_session cookie after sign-in")
	}
	if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure || len(sc.Value) != 43 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure over plain HTTP, 32 random bytes", sc)
	}

	resp, _ = u.do("GET", "/static/app.js", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("GET /static/app.js: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestLoginErrorsAreTellable: unreachable server, wrong password and a
// changed server key each give their own status and message.
func TestLoginErrorsAreTellable(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	u := newHTTPUser(t, c.url)

	resp, body := u.login(srv.addr, "police1", "wrong-password")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") {
		t.Fatalf("wrong password: %d\n%s", resp.StatusCode, body)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	resp, body = u.login(closed, "police1", policeAccounts["police1"])
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Could not reach the officer server at "+closed) ||
		!strings.Contains(body, "connection refused") {
		t.Fatalf("unreachable server: %d\n%s", resp.StatusCode, body)
	}

	resp, body = u.login("no spaces allowed", "police1", "x")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "host:port") {
		t.Fatalf("bad address: %d\n%s", resp.StatusCode, body)
	}

	// Pin another key for the server: the next sign-in meets a changed key.
	c2 := mustStartClient(t, srv.addr)
	const fake = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, err := pins.Open(c2.pinsPath).Check(srv.addr, fake); err != nil {
		t.Fatal(err)
	}
	u2 := newHTTPUser(t, c2.url)
	resp, body = u2.login(srv.addr, "police1", policeAccounts["police1"])
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("changed key: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{"CHANGED", fake, srv.fingerprint(), "tes police pins forget " + srv.addr + " --pins " + c2.pinsPath, "your password was not sent"} {
		if !strings.Contains(body, want) {
			t.Errorf("the changed-key page lacks %q", want)
		}
	}
	if srv.srv.TES1.Stats.Logins.Load() != 0 {
		t.Fatalf("%d sign-ins reached the server: none should have", srv.srv.TES1.Stats.Logins.Load())
	}

	// Without the pre-session CSRF cookie nothing happens.
	resp, body = newHTTPUser(t, c.url).do("POST", "/login", url.Values{"server": {srv.addr}, "username": {"police1"}, "password": {"x"}}, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "sign-in form had expired") {
		t.Fatalf("login without CSRF: %d\n%s", resp.StatusCode, body)
	}
}

// TestUnsafeRequestsNeedTheToken: a POST without the session's CSRF token,
// or from another site, changes nothing; the same form sent twice saves
// one report.
func TestUnsafeRequestsNeedTheToken(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	u := newHTTPUser(t, c.url)
	u.mustLogin(srv.addr, "police1", policeAccounts["police1"])
	_, page := u.do("GET", "/report", nil, nil)
	token := u.csrf(page)
	form := url.Values{"plate": {"AB123"}, "speed": {"99"}, "report_id": {tes.NewReportID()}}

	resp, _ := u.do("POST", "/report", form, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without a token: %d", resp.StatusCode)
	}
	wrong := "x" + token[1:]
	if token[0] == 'x' { // else the "wrong" token would be the right one, one run in 64
		wrong = "y" + token[1:]
	}
	form.Set("csrf", wrong)
	if resp, _ = u.do("POST", "/report", form, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST with a wrong token: %d", resp.StatusCode)
	}
	form.Set("csrf", token)
	if resp, _ = u.do("POST", "/report", form, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", resp.StatusCode)
	}
	if n := len(c.entries(t, "police1", srv.addr)); n != 0 {
		t.Fatalf("%d reports were saved by refused requests", n)
	}

	for range 2 { // a double click
		if resp, _ = u.do("POST", "/report", form, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST with the token: %d", resp.StatusCode)
		}
	}
	if list := c.entries(t, "police1", srv.addr); len(list) != 1 || list[0].ReportID != form.Get("report_id") {
		t.Fatalf("the same form twice saved %d reports, want 1", len(list))
	}
	waitFor(t, "the report at the officer server", func() bool { return len(srv.violations(t)) == 1 })
}

// TestLogoutClosesTheProtocolSession: signing out closes this browser's
// TES/1 connection and the cookie stops working.
func TestLogoutClosesTheProtocolSession(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	c := mustStartClient(t, srv.addr)
	u := newHTTPUser(t, c.url)
	u.mustLogin(srv.addr, "police1", policeAccounts["police1"])
	waitFor(t, "one open TES/1 connection", func() bool { return srv.srv.TES1.Stats.Conns.Load() == 1 })
	old := u.cookie("tes_police_session")

	_, page := u.do("GET", "/report", nil, nil)
	resp, _ := u.do("POST", "/logout", url.Values{"csrf": {u.csrf(page)}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?msg=signedout") {
		t.Fatalf("logout: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	waitFor(t, "the TES/1 connection to close", func() bool { return srv.srv.TES1.Stats.Conns.Load() == 0 })

	replay := newHTTPUser(t, c.url)
	uu, _ := url.Parse(c.url)
	replay.c.Jar.SetCookies(uu, []*http.Cookie{old})
	resp, _ = replay.do("GET", "/report", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("the signed-out cookie still works: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := replay.do("GET", "/api/state", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "error") {
		t.Fatalf("/api/state without a session: %d %s", resp.StatusCode, body)
	}
}

// TestRestartNeedsSignIn: after the police client restarts, queued
// reports wait for their officer to sign in again (the password was only in
// memory); the sign-in page says so, and they are then delivered once.
func TestRestartNeedsSignIn(t *testing.T) {
	srvDir, clientDir := t.TempDir(), t.TempDir()
	srv := mustStartOfficer(t, srvDir, "127.0.0.1:0")
	addr := srv.addr
	c := mustStartClientIn(t, clientDir, addr)
	u := newHTTPUser(t, c.url)
	u.mustLogin(addr, "police1", policeAccounts["police1"])
	srv.stop()
	_, page := u.do("GET", "/report", nil, nil)
	resp, _ := u.do("POST", "/report", url.Values{"csrf": {u.csrf(page)}, "plate": {"WAIT1"}, "speed": {"88"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("report while offline: %d", resp.StatusCode)
	}
	list := c.entries(t, "police1", addr)
	if len(list) != 1 || !list[0].State.Pending() {
		t.Fatalf("outbox before the restart: %v", list)
	}
	c.close()

	c = mustStartClientIn(t, clientDir, addr)
	u = newHTTPUser(t, c.url)
	_, page = u.do("GET", "/login", nil, nil)
	if !strings.Contains(page, "1 report is waiting on this device") {
		t.Fatalf("the sign-in page does not say a report is waiting:\n%s", page)
	}
	srv = mustStartOfficer(t, srvDir, addr)
	if n := len(srv.violations(t)); n != 0 {
		t.Fatalf("%d reports arrived before anyone signed in", n)
	}
	resp, _ = u.login(addr, "police1", policeAccounts["police1"])
	if loc := resp.Header.Get("Location"); loc != "/report?resumed=1" {
		t.Fatalf("after sign-in: %s", loc)
	}
	waitFor(t, "the waiting report to arrive", func() bool { return len(srv.violations(t)) == 1 })
	if got := byReport(srv.violations(t), list[0].ReportID); len(got) != 1 || got[0].Plate != "WAIT1" {
		t.Fatalf("stored: %v", got)
	}
}
