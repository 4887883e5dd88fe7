package policeui_test

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/policeui"
)

// The police accounts every test officer server has.
var policeAccounts = map[string]string{"police1": "pw-police-1", "police2": "pw-police-2"}

// officerServer is a real officer server (TES/1 over TCP, SQLite store)
// running in this process.
type officerServer struct {
	t      testing.TB
	dir    string
	addr   string
	srv    *officer.Server
	cancel context.CancelFunc
	done   chan error
}

// mustStartOfficer opens an officer server on dir listening on addr
// ("127.0.0.1:0" for a new port) with the police accounts.
func mustStartOfficer(t testing.TB, dir, addr string) *officerServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var srv *officer.Server
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		srv, err = officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: dir}, Listen: addr, HTTP: "",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("start officer server: %v", err)
	}
	for name, pw := range policeAccounts {
		if _, err := srv.Auth.CreateUser(ctx, "test", name, tes.RolePolice, pw, false); err != nil && tes.ErrorCode(err) != tes.ECONFLICT {
			t.Fatal(err)
		}
	}
	o := &officerServer{t: t, dir: dir, addr: srv.TES1Addr().String(), srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { o.done <- srv.Run(ctx) }()
	t.Cleanup(o.stop)
	return o
}

// stop shuts the server down gracefully and waits for it.
func (o *officerServer) stop() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.cancel = nil
	if err := <-o.done; err != nil {
		o.t.Errorf("officer server: %v", err)
	}
}

func (o *officerServer) fingerprint() string { return o.srv.TES1.Fingerprint() }

// violations returns every violation in the running server's store.
func (o *officerServer) violations(t testing.TB) []*tes.Violation {
	t.Helper()
	list, _, err := o.srv.Store.Violations(context.Background(), tes.ViolationFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// byReport returns the stored violations with reportID.
func byReport(list []*tes.Violation, reportID string) []*tes.Violation {
	var out []*tes.Violation
	for _, v := range list {
		if v.ReportID == reportID {
			out = append(out, v)
		}
	}
	return out
}

// policeClient is the police web client on a real loopback port.
type policeClient struct {
	ui       *policeui.UI
	ob       *outbox.Outbox
	url      string
	pinsPath string
	close    func() // stops the client (as a process exit would), keeping its files
}

// mustStartClient starts the police client with its own data directory,
// its sign-in form defaulting to server, and short retry timings.
func mustStartClient(t testing.TB, server string) *policeClient {
	return mustStartClientIn(t, t.TempDir(), server)
}

// mustStartClientIn starts the police client on the data directory dir.
func mustStartClientIn(t testing.TB, dir, server string) *policeClient {
	t.Helper()
	ob, err := outbox.Open(context.Background(), filepath.Join(dir, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	pinsPath := filepath.Join(dir, "known_servers")
	ui, err := policeui.New(policeui.Config{Outbox: ob, Pins: pins.Open(pinsPath), DefaultServer: server,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 10 * time.Second,
		Sender: outbox.SenderConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
			PollInterval: 200 * time.Millisecond, StatusWait: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ui.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			hs.Close()
			ui.Close()
			ob.Close()
		})
	}
	t.Cleanup(stop)
	return &policeClient{ui: ui, ob: ob, url: hs.URL, pinsPath: pinsPath, close: stop}
}

// entries returns every report in the client's outbox for user at server.
func (c *policeClient) entries(t testing.TB, user, server string) []*outbox.Entry {
	t.Helper()
	list, err := c.ob.List(context.Background(), user, server, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// waitFor polls cond until it holds, failing the test after a minute. It
// asserts an outcome, not a time: the minute only bounds a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpUser is a browser-like HTTP client (cookie jar, no redirects
// followed) for the tests that look at status codes and headers.
type httpUser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newHTTPUser(t testing.TB, base string) *httpUser {
	jar, _ := cookiejar.New(nil)
	return &httpUser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request as a page of the client would (same-origin fetch
// metadata) and returns the response and its body.
func (u *httpUser) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	u.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.base+path, body)
	if err != nil {
		u.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, html.UnescapeString(string(b))
}

var reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token in a page's form.
func (u *httpUser) csrf(page string) string {
	u.t.Helper()
	m := reCSRF.FindStringSubmatch(page)
	if m == nil {
		u.t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

// login signs in through the form and returns the response.
func (u *httpUser) login(server, name, pw string) (*http.Response, string) {
	u.t.Helper()
	_, page := u.do("GET", "/login", nil, nil)
	return u.do("POST", "/login", url.Values{"csrf": {u.csrf(page)}, "server": {server}, "username": {name}, "password": {pw}}, nil)
}

// mustLogin signs in and fails the test unless it lands on the report form.
func (u *httpUser) mustLogin(server, name, pw string) {
	u.t.Helper()
	resp, body := u.login(server, name, pw)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/report") {
		u.t.Fatalf("sign-in: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

func (u *httpUser) cookie(name string) *http.Cookie {
	uu, _ := url.Parse(u.base)
	for _, c := range u.c.Jar.Cookies(uu) {
		if c.Name == name {
			return c
		}
	}
	return nil
}
