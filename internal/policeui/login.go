package policeui

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// DefaultPort is added to a server address typed without one.
const DefaultPort = "9999"

// flashes are the fixed messages a redirect may ask for with ?msg=, so a
// link cannot put words on the page.
var flashes = map[string]string{
	"signedout": "You have signed out; the protocol session to the officer server was closed.",
	"expired":   "Your session ended (30 minutes without use, or 12 hours after signing in). Sign in again.",
	"retry":     "Trying to send the queued reports now.",
}

type loginData struct {
	Token      string
	Server     string
	Name       string
	Waiting    int // reports on this device still to be delivered, of any user
	Queued     int // after sign-out: how many of this user's are still queued
	KeyChanged *keyWarning
	Device     *tlssuite.Device // this client's enrolment, if any
	Legacy     bool             // --allow-legacy
}

// loginPage shows the sign-in form, or sends a signed-in browser on.
func (ui *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if s := ui.sessions.get(r, false); s != nil {
		http.Redirect(w, r, "/report", http.StatusSeeOther)
		return
	}
	d := loginData{Token: ui.loginToken(w, r), Server: ui.cfg.DefaultServer, Device: ui.cfg.Device, Legacy: ui.cfg.AllowLegacy}
	d.Waiting, _ = ui.ob.Waiting(r.Context())
	if n, err := strconv.Atoi(r.URL.Query().Get("queued")); err == nil && n > 0 && n < 1e9 {
		d.Queued = n
	}
	ui.render(w, r, http.StatusOK, "login", &view{Flash: flashes[r.URL.Query().Get("msg")], D: d})
}

// normalizeServer trims a typed address, adds the default port and checks
// it is host:port.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	bad := tes.Errorf(tes.EINVALID, "Enter the officer server's address as host:port, for example 192.168.1.10:9999.")
	if s == "" || len(s) > 255 || strings.ContainsAny(s, " /\\@?#\t\r\n") {
		return "", bad
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") { // a bare IPv6 address
			s = "[" + s + "]"
		}
		host, port, err = net.SplitHostPort(s + ":" + DefaultPort)
	}
	if err != nil || host == "" {
		return "", bad
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad
	}
	return net.JoinHostPort(host, port), nil
}

// loginSubmit checks the form's CSRF token, then connects to the officer
// server over the suite outbox.DialConfig chooses (checking the server's
// key against the pin, or its certificate against the device's CA, before
// anything is sent), signs in with the credentials, and on success starts
// a new browser session whose sender takes over that protocol session.
func (ui *UI) loginSubmit(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("username"))
	pw := r.PostFormValue("password")
	d := loginData{Server: strings.TrimSpace(r.PostFormValue("server")), Name: name, Device: ui.cfg.Device, Legacy: ui.cfg.AllowLegacy}
	if len(d.Server) > 255 {
		d.Server = d.Server[:255]
	}
	if len(d.Name) > 64 {
		d.Name = d.Name[:64]
	}
	d.Waiting, _ = ui.ob.Waiting(r.Context())
	fail := func(status int, msg string) {
		ui.render(w, r, status, "login", &view{Error: msg, D: d})
	}

	c, err := ui.requestCookie(r, loginCookie)
	got := r.PostFormValue("csrf")
	if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) != 1 {
		d.Token = ui.loginToken(w, r)
		fail(http.StatusForbidden, "The sign-in form had expired, so you were not signed in. Please enter your details again.")
		return
	}
	d.Token = c.Value
	server, err := normalizeServer(d.Server)
	if err != nil {
		fail(http.StatusBadRequest, tes.ErrorMessage(err))
		return
	}
	d.Server = server
	if name == "" || pw == "" {
		fail(http.StatusBadRequest, "Enter your user name and password.")
		return
	}
	if err := tes.ValidateUsername(name); err != nil {
		fail(http.StatusBadRequest, tes.ErrorMessage(err))
		return
	}
	if len(pw) > 256 {
		fail(http.StatusBadRequest, "A password is at most 256 bytes.")
		return
	}

	scfg := ui.cfg.Sender
	if scfg.Timeout <= 0 {
		scfg.Timeout = ui.cfg.Timeout
	}
	if scfg.StatusWait <= 0 {
		scfg.StatusWait = 5 * time.Second
	}
	dc := outbox.DialConfig{Server: server, Pins: ui.cfg.Pins, Device: ui.cfg.Device, TLSAddr: ui.cfg.TLSAddr,
		AllowLegacy: ui.cfg.AllowLegacy, Timeout: ui.cfg.Timeout, StatusWait: scfg.StatusWait, Log: ui.log}
	ctx, cancel := context.WithTimeout(r.Context(), ui.cfg.Timeout)
	defer cancel()
	conn, err := dc.SignIn(ctx, name, pw)
	if err != nil {
		status, msg := ui.loginError(&dc, err)
		var changed *pins.ChangedError
		if errors.As(err, &changed) {
			d.KeyChanged = &keyWarning{Server: changed.Server, Pinned: changed.Pinned, Seen: changed.Seen,
				Command: forgetCommand(changed.Server, changed.File)}
		}
		ui.log.Info("sign-in failed", "user", name, "server", server, "err", err)
		fail(status, msg)
		return
	}

	// A session the browser already had ends first: a new sign-in always
	// gets a new id (no session fixation) and its own protocol session.
	if old := ui.sessions.get(r, false); old != nil {
		ui.sessions.remove(old)
	}
	info := conn.Info()
	scfg.Outbox, scfg.Server, scfg.User, scfg.Pins, scfg.Conn = ui.ob, server, name, ui.cfg.Pins, conn
	scfg.Dial, scfg.Log = outbox.NewDialer(dc), ui.log
	// Over the TLS suite the device certificate authorises reports: the
	// password is kept only when TES/1 may have to sign in again.
	if !dc.UsesTLS() || dc.AllowLegacy {
		scfg.Password = pw
	}
	sender, err := outbox.NewSender(scfg)
	if err != nil {
		conn.Close()
		ui.log.Error("new sender", "err", err)
		fail(http.StatusInternalServerError, "The police client could not start sending. The error has been logged.")
		return
	}
	sctx, stop := context.WithCancel(context.Background())
	s := &session{user: name, server: server, sender: sender, stop: stop, done: make(chan struct{})}
	go func() { defer close(s.done); sender.Run(sctx) }()
	id := ui.sessions.add(s)
	http.SetCookie(w, ui.cookie(r, sessionCookie, id, 0))
	ui.log.Info("signed in", "user", name, "server", server, "suite", info.Suite, "device", info.Device,
		"server_key", info.Fingerprint, "first_use", info.FirstUse)
	if info.Warning != "" {
		ui.log.Warn("signed in over the legacy suite", "user", name, "server", server, "warning", info.Warning)
	}

	target := "/report"
	if counts, err := ui.ob.Counts(r.Context(), name, server); err == nil {
		if n := counts[outbox.StateQueued] + counts[outbox.StateSent]; n > 0 {
			target += "?resumed=" + strconv.Itoa(n)
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// loginError tells apart what a person can act on: the server is
// unreachable, the credentials are wrong, the server's key changed, the
// device was refused, the TLS suite is down and TES/1 may not stand in.
func (ui *UI) loginError(dc *outbox.DialConfig, err error) (int, string) {
	server := dc.Server
	var changed *pins.ChangedError
	var re *tes1.ReplyError
	var down *outbox.DowngradeRefusedError
	switch {
	case errors.As(err, &changed):
		return http.StatusConflict, "The officer server's key has CHANGED since this device first connected to " + server +
			". You were not signed in and your password was not sent. This can mean someone is intercepting the connection."
	case errors.Is(err, tlssuite.ErrDeviceRefused):
		return http.StatusForbidden, "The officer server refuses this client's device " + dc.Device.ID +
			" (revoked, or enrolled with another server): ask an admin to enrol this client again. You were not signed in and your password was not sent."
	case errors.As(err, &down):
		return http.StatusServiceUnavailable, "TLS suite unreachable at " + down.Addr + " (" + netReason(down.Err) +
			"); not falling back to TES/1 (the legacy suite) — use --allow-legacy to permit it. You were not signed in and your password was not sent."
	case errors.As(err, &re):
		switch re.Text {
		case tes1.ReplyBadLogin:
			return http.StatusUnauthorized, "Wrong user name or password."
		case tes1.ReplyTooManyAttempts:
			return http.StatusTooManyRequests, "Too many failed sign-ins for this account. Wait a few minutes and try again."
		case tes1.ReplyUnauthorized:
			if dc.UsesTLS() {
				return http.StatusForbidden, "This police client is enrolled as a device of " + dc.Device.User +
					" for " + dc.Device.Host() + ": only " + dc.Device.User + " can sign in to that server here."
			}
		}
		return http.StatusBadGateway, "The officer server refused the sign-in: " + re.Text + "."
	}
	return http.StatusServiceUnavailable, "Could not reach the officer server at " + server + " (" + netReason(err) + "). " +
		"Check the address and the network connection. Your password was not sent."
}

// netReason names a connection failure in a few words.
func netReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "the connection was closed"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// logout stops the session's sender (closing its protocol session) and
// ends the browser session. Reports still queued wait for the next sign-in.
func (ui *UI) logout(w http.ResponseWriter, r *http.Request) {
	s := currentSession(r)
	ui.sessions.remove(s)
	http.SetCookie(w, ui.cookie(r, sessionCookie, "", -1))
	ui.log.Info("signed out", "user", s.user, "server", s.server)
	target := "/login?msg=signedout"
	if counts, err := ui.ob.Counts(r.Context(), s.user, s.server); err == nil {
		if n := counts[outbox.StateQueued] + counts[outbox.StateSent]; n > 0 {
			target += "&queued=" + strconv.Itoa(n)
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
