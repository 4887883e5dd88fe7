// Package policeui is the police web client (the original's port 5000): a
// sign-in page, the observation form, a status panel and the history of the
// signed-in user's reports, on top of the store-and-forward outbox.
//
// Every browser session has its own protocol session to the officer server,
// opened at sign-in with that user's credentials and closed at sign-out;
// nothing is shared between browser sessions. (The original kept one global
// connection, so whoever opened the page next reported as the last user to
// sign in.)
//
// Store-and-forward: a report is validated (the same domain rules the
// officer server applies), committed to the outbox on this device, and only
// then is the user told it is queued. The browser session's outbox.Sender
// delivers it at once when the server is reachable, and retries with
// backoff when not; the page keeps accepting reports while offline.
//
// Suites: a client enrolled as a device (Config.Device) signs in to a
// server on the device's host over the TLS suite, the password checked by
// LOGIN inside the device's mutual-TLS connection, and sends every report
// signed by the device key; it never falls back to TES/1 for that host
// unless Config.AllowLegacy, and then with a warning on the page and in
// the log (outbox.DialConfig has the rule).
//
// Credentials: the password is held in memory by the session's sender, so
// that it can sign in again after the network drops; it is never written
// to disk. Over the TLS suite it is not kept at all (the device
// certificate authorises reports), unless AllowLegacy may need it for
// TES/1. So after this program restarts, reports that were still queued
// are delivered as soon as the officer who wrote them signs in again; the
// sign-in page says how many are waiting. A browser session that times out
// keeps its sender until its queue is empty (at most AbsoluteTimeout after
// sign-in); signing out stops it at once and says what is still queued.
//
// Security model: a 32-byte random session id in the tes_police_session
// cookie (HttpOnly, SameSite=Lax, Secure over TLS), of which the server
// keeps only the SHA-256; idle (30 min) and absolute (12 h) timeouts; a new
// id at every sign-in; a CSRF token on every POST compared in constant
// time (the sign-in form's is bound to a pre-session cookie), and
// http.CrossOriginProtection around everything; CSP default-src 'self' with
// no inline script or style; embedded templates parsed at start-up.
package policeui

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tlssuite"
	"github.com/tes-traffic/tes/internal/webui"
)

// Session lifetimes, as on the officer dashboard.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
)

// The suite TES/1 uses, as the status panel names it.
const (
	EncryptionLabel = outbox.TES1Encryption
	SignatureLabel  = outbox.TES1Signature
)

// Config is what the police client needs. Outbox and Pins are required.
type Config struct {
	Outbox        *outbox.Outbox
	Pins          *pins.File
	DefaultServer string       // the sign-in form's server address (--server)
	Log           *slog.Logger // nil discards
	Secure        bool         // served over TLS behind a proxy: cookies get Secure (direct TLS is detected)
	Now           func() time.Time
	Location      *time.Location // time zone for display and for observed times without one; nil means time.Local

	// Timeout bounds connecting and each request to the officer server;
	// default 15 s.
	Timeout time.Duration
	// Sender tunes every session's sender (backoff, poll interval); the
	// zero value takes outbox's defaults. Outbox, Server, User, Password,
	// Pins, Dial, Conn and Log are set per session.
	Sender outbox.SenderConfig

	// Device is this client's TLS-suite enrolment (tes police --join), or
	// nil. Sign-ins to a server on the device's host go over the TLS
	// suite: the device certificate authorises the reports and LOGIN
	// checks the person's password; TES/1 is not used for that host
	// unless AllowLegacy.
	Device *tlssuite.Device
	// TLSAddr overrides the TLS suite's address recorded at enrolment.
	TLSAddr string
	// AllowLegacy lets a client enrolled for a host fall back to TES/1,
	// with a warning on the page and in the log, when the TLS suite does
	// not answer.
	AllowLegacy bool
}

// UI is the police web client. Build it with New, serve Handler, and call
// Close at shutdown to close every protocol session.
type UI struct {
	cfg      Config
	ob       *outbox.Outbox
	log      *slog.Logger
	now      func() time.Time
	loc      *time.Location
	pages    *webui.Pages
	sessions *sessionStore
	handler  http.Handler
	stop     context.CancelFunc
	swept    chan struct{}
}

// New checks cfg, parses the embedded templates (a broken template fails
// here, not on a request) and starts the session sweeper.
func New(cfg Config) (*UI, error) {
	if cfg.Outbox == nil || cfg.Pins == nil {
		return nil, errors.New("policeui: Config needs Outbox and Pins")
	}
	ui := &UI{cfg: cfg, ob: cfg.Outbox, log: cfg.Log, now: cfg.Now, loc: cfg.Location}
	if ui.log == nil {
		ui.log = slog.New(slog.DiscardHandler)
	}
	if ui.now == nil {
		ui.now = time.Now
	}
	if ui.loc == nil {
		ui.loc = time.Local
	}
	if ui.cfg.Timeout <= 0 {
		ui.cfg.Timeout = 15 * time.Second
	}
	pages, err := parseTemplates(ui.funcs())
	if err != nil {
		return nil, err
	}
	ui.pages = pages
	ui.sessions = newSessionStore(ui.now)
	ui.sessions.secure = cfg.Secure
	ui.handler = ui.routes()
	ctx, cancel := context.WithCancel(context.Background())
	ui.stop, ui.swept = cancel, make(chan struct{})
	go ui.sweep(ctx)
	return ui, nil
}

// Handler returns the client's pages, static files and JSON endpoint.
func (ui *UI) Handler() http.Handler { return ui.handler }

// Close signs every session out: each sender stops and its protocol
// session is closed. Queued reports stay in the outbox.
func (ui *UI) Close() error {
	ui.stop()
	<-ui.swept
	ui.sessions.closeAll()
	return nil
}

func (ui *UI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", webui.StaticHandler(staticFS, http.HandlerFunc(ui.notFound)))
	mux.HandleFunc("GET /{$}", ui.home)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})

	// Sign-in (login.go).
	mux.HandleFunc("GET /login", ui.loginPage)
	mux.HandleFunc("POST /login", ui.loginSubmit)
	mux.HandleFunc("POST /logout", ui.signedIn(ui.logout))

	// Reporting (report.go) and history (history.go).
	mux.HandleFunc("GET /report", ui.signedIn(ui.reportPage))
	mux.HandleFunc("POST /report", ui.signedIn(ui.reportSubmit))
	mux.HandleFunc("GET /history", ui.signedIn(ui.historyPage))
	mux.HandleFunc("POST /retry", ui.signedIn(ui.retry))

	// The status panel and history refresh from here (api.go).
	mux.HandleFunc("GET /api/state", ui.apiState)

	mux.HandleFunc("/", ui.notFound)

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ui.log.Warn("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		ui.renderError(w, r, http.StatusForbidden, "This request came from another site, so it was refused and nothing was sent.")
	}))
	return ui.securityHeaders(cop.Handler(mux))
}

// home sends a signed-in browser to the form and anyone else to sign in.
func (ui *UI) home(w http.ResponseWriter, r *http.Request) {
	if s := ui.sessions.get(r, false); s != nil {
		http.Redirect(w, r, "/report", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (ui *UI) notFound(w http.ResponseWriter, r *http.Request) {
	ui.renderError(w, r, http.StatusNotFound, "There is no page at this address.")
}
