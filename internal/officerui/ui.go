// Package officerui is the officers' web dashboard: sign-in, the review
// queue, the process page with Approve and Reject and the report's evidence
// (checked again on every view, with a download of its sealed evidence
// file), bulk decisions, driver records, server status, charts, user
// administration, CSV export and a JSON API for integrations.
//
// It is server-rendered html/template with embedded templates and assets and
// no third-party code in the page, so it works on closed police networks and
// under a strict Content-Security-Policy (default-src 'self', no inline
// script or style). Every decision goes through review.Service, whose store
// transaction is guarded on PENDING, so a double click, a second officer or a
// replayed POST changes nothing. Points always come from the server's rules;
// a "points" field in a request is ignored.
//
// Security model, in short:
//   - Sessions: a 32-byte random id in the tes_session cookie (HttpOnly,
//     SameSite=Lax, Secure over TLS); the store keeps only its SHA-256. A new
//     id is issued at sign-in and after a password change; idle (30 min) and
//     absolute (12 h) timeouts are checked on every request.
//   - CSRF: every unsafe request of a signed-in user must carry the session's
//     token (form field "csrf" or header X-CSRF-Token), compared in constant
//     time. The sign-in form carries a token bound to a pre-session cookie
//     (double submit). The whole handler is wrapped in
//     http.CrossOriginProtection, which refuses cross-origin browser POSTs.
//   - Roles: officers and admins review; police get 403; the Users page is
//     for admins only.
//   - API: a session (with X-CSRF-Token on POST) or an admin-issued bearer
//     token, of which the store keeps only the SHA-256.
package officerui

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/review"
	"github.com/tes-traffic/tes/internal/webui"
)

// Session lifetimes (OWASP session management: idle and absolute timeouts)
// and how often LastSeen is written, so that a busy officer does not cost a
// database write per request.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	touchInterval   = time.Minute
)

// DefaultThreshold is the driver points total at or over which the records
// page highlights a driver when Config.Threshold is zero.
const DefaultThreshold = 100

// Config is what the dashboard needs. Store, Review and Auth are required.
type Config struct {
	Store     tes.Store               // violations, drivers, users, sessions, API tokens, audit events
	Review    *review.Service         // every decision and queue read goes through it
	Auth      *auth.Service           // sign-in, throttling, account changes (audited)
	Status    func() tes.ServerStatus // the officer server's facts; nil shows "not available"
	Log       *slog.Logger            // nil discards
	Secure    bool                    // served over TLS: cookies get the Secure attribute
	Threshold int                     // driver points at or over which a record is highlighted; 0 means DefaultThreshold
	Now       func() time.Time        // clock for sessions and display; nil means time.Now
	Location  *time.Location          // time zone for display and date filters; nil means time.Local
	// Evidence exports sealed evidence files for the process page's
	// download link and GET /api/violations/{id}/evidence; nil hides the
	// link and both routes answer 404.
	Evidence EvidenceExporter
}

// UI is the officer dashboard. Build it with New; it is safe for concurrent
// use.
type UI struct {
	cfg       Config
	store     tes.Store
	review    *review.Service
	auth      *auth.Service
	log       *slog.Logger
	now       func() time.Time
	loc       *time.Location
	threshold int
	pages     *webui.Pages
	handler   http.Handler
}

// New checks cfg, parses the embedded templates and builds the routes. A
// template that does not parse makes New fail, so a broken build fails at
// start-up rather than on a request.
func New(cfg Config) (*UI, error) {
	if cfg.Store == nil || cfg.Review == nil || cfg.Auth == nil {
		return nil, errors.New("officerui: Config needs Store, Review and Auth")
	}
	ui := &UI{cfg: cfg, store: cfg.Store, review: cfg.Review, auth: cfg.Auth,
		log: cfg.Log, now: cfg.Now, loc: cfg.Location, threshold: cfg.Threshold}
	if ui.log == nil {
		ui.log = slog.New(slog.DiscardHandler)
	}
	if ui.now == nil {
		ui.now = time.Now
	}
	if ui.loc == nil {
		ui.loc = time.Local
	}
	if ui.threshold <= 0 {
		ui.threshold = DefaultThreshold
	}
	pages, err := parseTemplates(templateFS, staticFS, ui.funcs())
	if err != nil {
		return nil, err
	}
	ui.pages = pages
	ui.handler = ui.routes()
	return ui, nil
}

// Handler returns the dashboard's handler: pages, static assets and /api/.
// It does not serve /healthz or /metrics; the officer server mounts those.
func (ui *UI) Handler() http.Handler { return ui.handler }

func (ui *UI) routes() http.Handler {
	mux := http.NewServeMux()

	mux.Handle("GET /static/", webui.StaticHandler(staticFS, http.HandlerFunc(ui.notFound)))
	mux.HandleFunc("GET /{$}", ui.reviewer(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	}))

	// Sign-in (login.go).
	mux.HandleFunc("GET /login", ui.loginPage)
	mux.HandleFunc("POST /login", ui.loginSubmit)
	mux.HandleFunc("POST /logout", ui.signedIn(ui.logout))
	mux.HandleFunc("GET /password", ui.signedIn(ui.passwordPage))
	mux.HandleFunc("POST /password", ui.signedIn(ui.passwordSubmit))

	// Review (queue.go, process.go, evidence.go, bulk.go).
	mux.HandleFunc("GET /dashboard", ui.reviewer(ui.queuePage))
	mux.HandleFunc("GET /process/{id}", ui.reviewer(ui.processPage))
	mux.HandleFunc("POST /process/{id}/approve", ui.reviewer(ui.processApprove))
	mux.HandleFunc("POST /process/{id}/reject", ui.reviewer(ui.processReject))
	mux.HandleFunc("GET /process/{id}/evidence", ui.reviewer(ui.evidenceDownload))
	mux.HandleFunc("POST /bulk", ui.reviewer(ui.bulkSubmit))

	// Records, status, charts (records.go, status.go, charts.go).
	mux.HandleFunc("GET /records", ui.reviewer(ui.recordsPage))
	mux.HandleFunc("GET /records/{plate}", ui.reviewer(ui.driverPage))
	mux.HandleFunc("GET /status", ui.reviewer(ui.statusPage))
	mux.HandleFunc("GET /charts", ui.reviewer(ui.chartsPage))

	// CSV export (export.go).
	mux.HandleFunc("GET /export/violations.csv", ui.reviewer(ui.exportViolations))
	mux.HandleFunc("GET /export/records.csv", ui.reviewer(ui.exportRecords))

	// Administration (users.go).
	mux.HandleFunc("GET /users", ui.admin(ui.usersPage))
	mux.HandleFunc("POST /users", ui.admin(ui.userAdd))
	mux.HandleFunc("POST /users/{name}/role", ui.admin(ui.userRole))
	mux.HandleFunc("POST /users/{name}/disable", ui.admin(ui.userDisable))
	mux.HandleFunc("POST /users/{name}/enable", ui.admin(ui.userEnable))
	mux.HandleFunc("POST /users/{name}/reset", ui.admin(ui.userReset))
	mux.HandleFunc("POST /tokens", ui.admin(ui.tokenCreate))
	mux.HandleFunc("POST /tokens/{id}/revoke", ui.admin(ui.tokenRevoke))

	// JSON API (api.go).
	mux.HandleFunc("GET /api/violations", ui.api(ui.apiList))
	mux.HandleFunc("GET /api/violations/{id}", ui.api(ui.apiGet))
	mux.HandleFunc("GET /api/violations/{id}/evidence", ui.api(ui.apiEvidence))
	mux.HandleFunc("POST /api/violations/{id}/approve", ui.api(ui.apiApprove))
	mux.HandleFunc("POST /api/violations/{id}/reject", ui.api(ui.apiReject))
	mux.HandleFunc("POST /api/action", ui.api(ui.apiAction))
	mux.HandleFunc("/api/", ui.apiNotFound)

	mux.HandleFunc("/", ui.notFound)

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(ui.crossOriginDenied))
	return ui.securityHeaders(cop.Handler(mux))
}
