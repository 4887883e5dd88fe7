package policeui

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/tes-traffic/tes/internal/webui"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// securityHeaders sets the headers every response carries and bounds the
// request body: the forms are small. A 10 KB plate fits (and is refused
// with a message); a megabyte does not. The CSP allows only the client's
// own files: no inline script or style, no plug-ins, no framing; forms
// post only here. The form may ask for the device's position; nothing
// else.
func (ui *UI) securityHeaders(next http.Handler) http.Handler {
	return webui.SecurityHeaders(webui.SecurityOptions{
		CSP:               "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
		PermissionsPolicy: "geolocation=(self), camera=(), microphone=()",
		MaxBody:           64 << 10,
		HSTS:              func(r *http.Request) bool { return ui.cfg.Secure || r.TLS != nil },
	})(next)
}

// parseTemplates parses the embedded page templates, each with the layout
// and the partials, and fingerprints the embedded static files.
func parseTemplates(funcs template.FuncMap) (*webui.Pages, error) {
	p, err := webui.ParsePages(templateFS, staticFS, funcs, "error", "login", "report", "history")
	if err != nil {
		return nil, fmt.Errorf("policeui: %w", err)
	}
	p.FailureText = "Something went wrong in the police client. The error has been logged."
	return p, nil
}

// view is what every page template receives.
type view struct {
	Nav     string // active navigation entry
	User    string
	Server  string
	CSRF    string
	Flash   string
	Error   string
	Refresh bool   // the page refreshes its panel and list from /api/state
	Panel   *panel // the status panel, when signed in
	D       any    // the page's own data
}

// render fills in the session's view fields and renders page with status.
// A missing page or a template failure gives a clean error instead of half
// a page.
func (ui *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	if !ui.pages.Has(page) {
		ui.log.Error("no such template", "page", page)
		page, status, v = "error", http.StatusInternalServerError, &view{D: errorData{Title: "Server error", Message: "Something went wrong."}}
	}
	if s := currentSession(r); s != nil {
		v.User, v.Server, v.CSRF = s.user, s.server, s.csrf
	}
	if err := ui.pages.Render(w, status, page, v); err != nil {
		ui.log.Error("render template", "page", page, "err", err)
	}
}

type errorData struct {
	Title   string
	Message string
}

// renderError shows the error page with a status and a message safe to show.
func (ui *UI) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	title := http.StatusText(status)
	switch status {
	case http.StatusForbidden:
		title = "Not allowed"
	case http.StatusNotFound:
		title = "Page not found"
	case http.StatusInternalServerError:
		title = "Something went wrong"
	}
	ui.render(w, r, status, "error", &view{D: errorData{Title: title, Message: msg}})
}

func (ui *UI) funcs() template.FuncMap {
	return template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(ui.loc).Format("2006-01-02 15:04:05")
		},
		"shorttime": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.In(ui.loc).Format("02 Jan 15:04")
		},
		"isotime": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		},
		"zone": func() string { return ui.now().In(ui.loc).Format("MST") },
		"table": func(rows []row, list, caption string) tableData {
			return tableData{Rows: rows, List: list, Caption: caption}
		},
	}
}

// tableData is what the history-table partial receives.
type tableData struct {
	Rows    []row
	List    string // "recent" or "all": how many rows the refresh asks for
	Caption string
}
