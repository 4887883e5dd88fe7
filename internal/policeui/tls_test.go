package policeui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/policeui"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// mustStartTLSOfficer is mustStartOfficer with the TLS suite on tlsAddr
// as well ("127.0.0.1:0" for a new port).
func mustStartTLSOfficer(t testing.TB, dir, addr, tlsAddr string) *officerServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var srv *officer.Server
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		srv, err = officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: dir}, Listen: addr, ListenTLS: tlsAddr,
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

// mustEnrollDevice enrols a device of police1 with the officer, as `tes
// police --join` does, in dir.
func mustEnrollDevice(t testing.TB, o *officerServer, dir string) *tlssuite.Device {
	t.Helper()
	root, err := ca.Load(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := &enroll.Service{Devices: o.srv.Store.(tes.DeviceStore), Users: o.srv.Store, CA: root}
	tok, err := svc.Create(context.Background(), "police1", "test", time.Hour, o.srv.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tlssuite.Enroll(context.Background(), tok.String(), dir)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	return dev
}

// logBuffer collects what the client logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mustStartDeviceClient starts the police client on the data directory
// dir, enrolled as dev.
func mustStartDeviceClient(t testing.TB, dir, server string, dev *tlssuite.Device, allowLegacy bool) (*policeClient, *logBuffer) {
	t.Helper()
	ob, err := outbox.Open(context.Background(), filepath.Join(dir, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	pinsPath := filepath.Join(dir, "known_servers")
	ui, err := policeui.New(policeui.Config{Outbox: ob, Pins: pins.Open(pinsPath), DefaultServer: server,
		Log: slog.New(slog.NewTextHandler(logs, nil)), Timeout: 10 * time.Second,
		Device: dev, AllowLegacy: allowLegacy,
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
	return &policeClient{ui: ui, ob: ob, url: hs.URL, pinsPath: pinsPath, close: stop}, logs
}

// state is the page's /api/state answer, the panel as a map.
type state struct {
	Panel   map[string]any `json:"panel"`
	Reports []struct {
		ReportID string `json:"report_id"`
		State    string `json:"state"`
		Detail   string `json:"detail"`
	} `json:"reports"`
}

func (u *httpUser) state() *state {
	u.t.Helper()
	resp, body := u.do("GET", "/api/state?list=all", nil, nil)
	if resp.StatusCode != http.StatusOK {
		u.t.Fatalf("/api/state: %d %s", resp.StatusCode, body)
	}
	var st state
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		u.t.Fatal(err)
	}
	return &st
}

func (st *state) panel(k string) string { s, _ := st.Panel[k].(string); return s }

// report submits the observation form and returns the saved report's id.
func (u *httpUser) report(plate, speed string) string {
	u.t.Helper()
	_, page := u.do("GET", "/report", nil, nil)
	resp, body := u.do("POST", "/report", url.Values{"csrf": {u.csrf(page)}, "plate": {plate}, "speed": {speed}}, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/report?saved=") {
		u.t.Fatalf("report %s: %d %s\n%s", plate, resp.StatusCode, loc, body)
	}
	return strings.TrimPrefix(loc, "/report?saved=")
}

func (c *policeClient) waitEntry(t testing.TB, id, what string, cond func(*outbox.Entry) bool) *outbox.Entry {
	t.Helper()
	var e *outbox.Entry
	waitFor(t, what, func() bool {
		var err error
		e, err = c.ob.Get(context.Background(), id)
		return err == nil && cond(e)
	})
	return e
}

func wantContains(t testing.TB, what, got string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(got, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, got)
		}
	}
}

// TestEnrolledSignInAndReport: a police client enrolled as a device signs
// in over the TLS suite (LOGIN checks the password; only the device's user
// may), reports signed by the device, and sees the decision; TES/1 is
// never touched.
func TestEnrolledSignInAndReport(t *testing.T) {
	ctx := context.Background()
	srv := mustStartTLSOfficer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	data := t.TempDir()
	dev := mustEnrollDevice(t, srv, filepath.Join(data, "device"))
	c, _ := mustStartDeviceClient(t, data, srv.addr, dev, false)
	u := newHTTPUser(t, c.url)

	_, page := u.do("GET", "/login", nil, nil)
	wantContains(t, "the sign-in page", page, "This client is enrolled as device <code>"+dev.ID+"</code> of police1", "never falls back to TES/1")
	resp, page := u.login(srv.addr, "police1", "not-the-password")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	wantContains(t, "a wrong password's page", page, "Wrong user name or password")
	resp, page = u.login(srv.addr, "police2", policeAccounts["police2"])
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another user on the device: %d", resp.StatusCode)
	}
	wantContains(t, "another user's page", page, "enrolled as a device of police1", "only police1 can sign in")
	u.mustLogin(srv.addr, "police1", policeAccounts["police1"])

	st := u.state()
	for k, want := range map[string]string{"suite": "tls", "encryption": "TLS 1.3, device " + dev.ID + ", Ed25519",
		"key_label": "Server certificate", "device": dev.ID, "ca_hash": dev.CAHash, "state": "online", "suite_warning": ""} {
		if got := st.panel(k); got != want {
			t.Errorf("panel %s = %q, want %q", k, got, want)
		}
	}
	wantContains(t, "the pin note", st.panel("pin_note"), dev.CAHash)
	if !strings.HasPrefix(st.panel("fingerprint"), "SHA256:") {
		t.Errorf("panel fingerprint %q: want the server certificate's", st.panel("fingerprint"))
	}
	_, page = u.do("GET", "/report", nil, nil)
	wantContains(t, "the report page", page, "TLS 1.3, device "+dev.ID+", Ed25519", "Server certificate", dev.CAHash)

	id := u.report("34abc123", "120")
	c.waitEntry(t, id, "the report to be acknowledged", func(e *outbox.Entry) bool { return e.State == outbox.StateAcknowledged })
	stored := byReport(srv.violations(t), id)
	if len(stored) != 1 || stored[0].Suite != tes.SuiteTLS || stored[0].Evidence.DeviceID != dev.ID || !stored[0].SigVerified ||
		stored[0].ReportedBy != "police1" {
		t.Fatalf("stored %+v: want one violation over tls from device %s", stored, dev.ID)
	}
	if _, err := srv.srv.Review.Approve(ctx, &tes.User{Name: "officer1", Role: tes.RoleOfficer}, stored[0].ID); err != nil {
		t.Fatal(err)
	}
	c.waitEntry(t, id, "the approval", func(e *outbox.Entry) bool { return e.State == outbox.StateApproved })
	if st := u.state(); len(st.Reports) != 1 || st.Reports[0].State != "approved" {
		t.Fatalf("the page shows %+v, want the report approved", st.Reports)
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections: an enrolled client signs in and reports over the TLS suite only", n)
	}
}

// TestEnrolledNoDowngrade: the TLS port goes dark while TES/1 stays up.
// Reports stay queued and the page says why, nothing goes over TES/1 and a
// sign-in is refused without sending the password; restarted with
// --allow-legacy the client delivers them over TES/1 with a warning on the
// page and in the log.
func TestEnrolledNoDowngrade(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	srv := mustStartTLSOfficer(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	addr := srv.addr
	dev := mustEnrollDevice(t, srv, filepath.Join(data, "device"))
	c, _ := mustStartDeviceClient(t, data, addr, dev, false)
	u := newHTTPUser(t, c.url)
	u.mustLogin(addr, "police1", policeAccounts["police1"])

	srv.stop()
	srv = mustStartTLSOfficer(t, dir, addr, "127.0.0.1:0") // the device's TLS port is closed now
	ids := []string{u.report("DARK1", "91"), u.report("DARK2", "92")}
	for _, id := range ids {
		c.waitEntry(t, id, "the reason on the queued report", func(e *outbox.Entry) bool {
			return e.State == outbox.StateQueued && strings.Contains(e.LastError, "not falling back to TES/1")
		})
	}
	waitFor(t, "the no-downgrade state", func() bool { return u.state().panel("state") == string(outbox.ConnNoDowngrade) })
	st := u.state()
	if got := st.panel("state_label"); got != "TLS suite unreachable" {
		t.Errorf("state label %q", got)
	}
	wantContains(t, "the state detail", st.panel("state_detail"), "TLS suite unreachable", "not falling back to TES/1 (the legacy suite)",
		"use --allow-legacy to permit it", "Reports stay queued on this device")
	_, page := u.do("GET", "/history", nil, nil)
	wantContains(t, "the history page", page, "TLS suite unreachable", "not falling back to TES/1")

	other := newHTTPUser(t, c.url)
	resp, page := other.login(addr, "police1", policeAccounts["police1"])
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("sign-in with the TLS suite down: %d", resp.StatusCode)
	}
	wantContains(t, "the refused sign-in", page, "TLS suite unreachable", "not falling back to TES/1 (the legacy suite)",
		"--allow-legacy", "your password was not sent")
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections while the TLS suite was down: that is a downgrade", n)
	}
	if n := len(srv.violations(t)); n != 0 {
		t.Fatalf("%d reports arrived", n)
	}

	// The operator restarts the client with --allow-legacy.
	c.close()
	c, logs := mustStartDeviceClient(t, data, addr, dev, true)
	u = newHTTPUser(t, c.url)
	_, page = u.do("GET", "/login", nil, nil)
	wantContains(t, "the sign-in page", page, "falls back to TES/1 (the legacy suite) and says so")
	u.mustLogin(addr, "police1", policeAccounts["police1"])
	for _, id := range ids {
		c.waitEntry(t, id, "delivery over TES/1", func(e *outbox.Entry) bool { return e.State == outbox.StateAcknowledged })
		if v := byReport(srv.violations(t), id); len(v) != 1 || v[0].Suite != tes.SuiteTES1 {
			t.Fatalf("report %s stored as %+v: want once, over tes1", id, v)
		}
	}
	st = u.state()
	if st.panel("suite") != "tes1" || st.panel("encryption") != policeui.EncryptionLabel {
		t.Errorf("panel suite %q / %q after the fallback", st.panel("suite"), st.panel("encryption"))
	}
	wantContains(t, "the suite warning", st.panel("suite_warning"), "WARNING", "TLS suite", "TES/1", "--allow-legacy")
	wantContains(t, "the state detail", st.panel("state_detail"), "legacy suite")
	_, page = u.do("GET", "/report", nil, nil)
	wantContains(t, "the report page", page, "WARNING: the TLS suite at "+dev.Addr+" failed")
	wantContains(t, "the log", logs.String(), "level=WARN", "falling back to TES/1")
}

// TestEnrolledDeviceRevoked: an admin revokes the device. The signed-in
// session stops sending with a clear state, the report written after it
// stays queued, and a new sign-in is refused without sending the password,
// --allow-legacy or not.
func TestEnrolledDeviceRevoked(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	srv := mustStartTLSOfficer(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	addr, tlsAddr := srv.addr, srv.srv.TLSAddr().String()
	dev := mustEnrollDevice(t, srv, filepath.Join(data, "device"))
	c, _ := mustStartDeviceClient(t, data, addr, dev, false)
	u := newHTTPUser(t, c.url)
	u.mustLogin(addr, "police1", policeAccounts["police1"])
	first := u.report("REV1", "90")
	c.waitEntry(t, first, "the first report", func(e *outbox.Entry) bool { return e.State == outbox.StateAcknowledged })

	if err := srv.srv.Store.(tes.DeviceStore).RevokeDevice(context.Background(), dev.ID, "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	srv.stop() // its open connection ends; the next handshake is refused
	srv = mustStartTLSOfficer(t, dir, addr, tlsAddr)
	kept := u.report("REV2", "91")
	waitFor(t, "the device-revoked state", func() bool { return u.state().panel("state") == string(outbox.ConnDeviceRevoked) })
	st := u.state()
	if got := st.panel("state_label"); got != "Device revoked" {
		t.Errorf("state label %q", got)
	}
	wantContains(t, "the state detail", st.panel("state_detail"), "Device revoked: ask an admin to enrol this client again")
	e := c.waitEntry(t, kept, "the reason on the queued report", func(e *outbox.Entry) bool { return strings.Contains(e.LastError, "Device revoked") })
	if e.State != outbox.StateQueued {
		t.Fatalf("the report written after revocation is %s, want queued", e.State)
	}
	if n := len(byReport(srv.violations(t), kept)); n != 0 {
		t.Fatalf("the report written after revocation was stored")
	}
	for _, allowLegacy := range []bool{false, true} {
		c, _ := mustStartDeviceClient(t, t.TempDir(), addr, dev, allowLegacy)
		other := newHTTPUser(t, c.url)
		resp, page := other.login(addr, "police1", policeAccounts["police1"])
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("sign-in with a revoked device (--allow-legacy %t): %d", allowLegacy, resp.StatusCode)
		}
		wantContains(t, "the refused sign-in", page, "refuses this client's device "+dev.ID, "ask an admin to enrol this client again")
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections by a revoked device", n)
	}
}
