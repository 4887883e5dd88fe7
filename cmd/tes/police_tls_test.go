package main_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes/internal/e2e"
)

// webUser is a cookie-keeping HTTP client for a police client's pages.
type webUser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newWebUser(t *testing.T, base string) *webUser {
	jar, _ := cookiejar.New(nil)
	return &webUser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (u *webUser) do(method, path string, form url.Values) (*http.Response, string) {
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
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var reFormCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (u *webUser) csrf(path string) string {
	u.t.Helper()
	_, page := u.do("GET", path, nil)
	m := reFormCSRF.FindStringSubmatch(page)
	if m == nil {
		u.t.Fatalf("no CSRF field on %s:\n%s", path, page)
	}
	return m[1]
}

// login posts the sign-in form and returns the status and the page.
func (u *webUser) login(server, name, pw string) (int, string) {
	u.t.Helper()
	resp, page := u.do("POST", "/login", url.Values{"csrf": {u.csrf("/login")}, "server": {server}, "username": {name}, "password": {pw}})
	return resp.StatusCode, page
}

// report saves a report through the form and returns its id.
func (u *webUser) report(plate, speed string) string {
	u.t.Helper()
	resp, page := u.do("POST", "/report", url.Values{"csrf": {u.csrf("/report")}, "plate": {plate}, "speed": {speed}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/report?saved=") {
		u.t.Fatalf("report %s: %d %s\n%s", plate, resp.StatusCode, loc, page)
	}
	return strings.TrimPrefix(loc, "/report?saved=")
}

// panel returns /api/state's status panel.
func (u *webUser) panel() map[string]any {
	u.t.Helper()
	_, body := u.do("GET", "/api/state", nil)
	var st struct {
		Panel map[string]any `json:"panel"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		u.t.Fatalf("/api/state: %v\n%s", err, body)
	}
	return st.Panel
}

// storedSuites returns the suite of every stored violation by report id.
func storedSuites(t *testing.T, data string) map[string]string {
	t.Helper()
	out, errOut, code := e2e.Run(t, "", nil, "violations", "--data", data, "--json")
	if code != 0 {
		t.Fatalf("tes violations: exit %d: %s", code, errOut)
	}
	var vs []struct {
		ReportID string `json:"report_id"`
		Suite    string `json:"suite"`
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, v := range vs {
		m[v.ReportID] = v.Suite
	}
	return m
}

// cutter is a man-in-the-middle on the TLS port that can block it: it
// then cuts the connections open through it and closes every new one.
type cutter struct {
	ln      net.Listener
	mu      sync.Mutex
	blocked bool
	conns   []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	t.Cleanup(func() { ln.Close(); c.block() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			blocked := c.blocked
			c.mu.Unlock()
			if blocked {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

func (c *cutter) block() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = true
	for _, nc := range c.conns {
		nc.Close()
	}
	c.conns = nil
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// TestPoliceJoin: `tes police --join TOKEN` enrols the web client as a
// device (its key made and kept in DATA/device), a person signs in with
// their password over the TLS suite and reports; a man-in-the-middle that
// strips the TLS port leaves the next report queued with the reason on the
// page, not sent over TES/1; restarted with --allow-legacy the client
// delivers it over TES/1 with a warning.
func TestPoliceJoin(t *testing.T) {
	o, data, _ := tlsSetup(t)
	mitm := newCutter(t, o.TLSAddr)
	devID, token := mustDeviceAdd(t, data, mitm.addr())
	pdata := t.TempDir()

	p := startPoliceProcess(t, o.TES1Addr, pdata, "--join", token)
	key, err := os.Stat(filepath.Join(pdata, "device", "device-key.pem"))
	if err != nil || key.Mode().Perm() != 0o600 {
		t.Fatalf("the device key in DATA/device: %v %v", key, err)
	}
	u := newWebUser(t, p.url)
	if _, page := u.do("GET", "/login", nil); !strings.Contains(page, devID) {
		t.Fatalf("the sign-in page does not name device %s", devID)
	}
	if code, page := u.login(o.TES1Addr, "police1", "wrong-password"); code != http.StatusUnauthorized || !strings.Contains(page, "Wrong user name or password") {
		t.Fatalf("wrong password: %d", code)
	}
	if code, page := u.login(o.TES1Addr, "police1", "police-password-1"); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", code, page)
	}
	if pn := u.panel(); pn["suite"] != "tls" || pn["device"] != devID || pn["ca_hash"] != o.CAHash {
		t.Fatalf("panel %v: want the TLS suite, device %s, CA %s", pn, devID, o.CAHash)
	}
	first := u.report("34abc123", "120")
	waitUntil(t, "the report over TLS", func() bool { return storedSuites(t, data)[first] == "tls" })

	mitm.block()
	held := u.report("MITM1", "99")
	waitUntil(t, "the no-downgrade state", func() bool { return u.panel()["state"] == "no-downgrade" })
	if d, _ := u.panel()["state_detail"].(string); !strings.Contains(d, "not falling back to TES/1 (the legacy suite)") {
		t.Fatalf("state detail %q", d)
	}
	if _, ok := storedSuites(t, data)[held]; ok {
		t.Fatal("the report went out while the TLS port was stripped")
	}

	// Restarted with the same --join (already enrolled: no error) and
	// --allow-legacy, the client signs in over TES/1 and delivers it.
	p.kill()
	p = startPoliceProcess(t, o.TES1Addr, pdata, "--join", token, "--allow-legacy")
	u = newWebUser(t, p.url)
	if code, page := u.login(o.TES1Addr, "police1", "police-password-1"); code != http.StatusSeeOther {
		t.Fatalf("sign-in with --allow-legacy: %d\n%s", code, page)
	}
	waitUntil(t, "the held report over TES/1", func() bool { return storedSuites(t, data)[held] == "tes1" })
	if w, _ := u.panel()["suite_warning"].(string); !strings.Contains(w, "--allow-legacy") {
		t.Fatalf("no warning on the page after the fallback: %q", w)
	}

	// Another token on an enrolled client is refused at start.
	_, other := mustDeviceAdd(t, data, o.TLSAddr)
	_, errOut, code := e2e.Run(t, "", nil, "police", "--data", pdata, "--http", "127.0.0.1:0", "--join", other)
	if code != 2 || !strings.Contains(errOut, "already holds the enrolment of device "+devID) {
		t.Fatalf("a second --join: exit %d: %s", code, errOut)
	}
}
