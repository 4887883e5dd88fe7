package policeui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// maxBody bounds every request body: the forms are small. A 10 KB plate
// fits (and is refused with a message); a megabyte does not.
const maxBody = 64 << 10

// csp allows only the client's own files: no inline script or style, no
// plug-ins, no framing; forms post only here.
const csp = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// securityHeaders sets the headers every response carries and bounds the
// request body.
func (ui *UI) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// The form may ask for the device's position; nothing else.
		h.Set("Permissions-Policy", "geolocation=(self), camera=(), microphone=()")
		if ui.cfg.Secure || r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// templates holds one parsed set per page: the layout, the partials and
// the page.
type templates struct {
	pages  map[string]*template.Template
	assets map[string]string // file name -> "/static/name?v=hash"
}

func parseTemplates(funcs template.FuncMap) (*templates, error) {
	t := &templates{pages: map[string]*template.Template{}, assets: map[string]string{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		t.assets[name] = "/static/" + name + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policeui: static files: %w", err)
	}
	funcs["asset"] = func(name string) (string, error) {
		if u, ok := t.assets[name]; ok {
			return u, nil
		}
		return "", fmt.Errorf("no static file %q", name)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "partials.html" {
			continue
		}
		p, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("policeui: template %s: %w", base, err)
		}
		if p.Lookup("content") == nil || p.Lookup("title") == nil {
			return nil, fmt.Errorf("policeui: template %s defines no \"title\" or \"content\"", base)
		}
		t.pages[strings.TrimSuffix(base, ".html")] = p
	}
	for _, need := range []string{"error", "login", "report", "history"} {
		if t.pages[need] == nil {
			return nil, fmt.Errorf("policeui: template %s.html is missing", need)
		}
	}
	return t, nil
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

// render executes page into a buffer and then writes it, so that a
// template failure gives a clean error instead of half a page.
func (ui *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t := ui.tmpl.pages[page]
	if t == nil {
		ui.log.Error("no such template", "page", page)
		t, status, v = ui.tmpl.pages["error"], http.StatusInternalServerError, &view{D: errorData{Title: "Server error", Message: "Something went wrong."}}
	}
	if s := currentSession(r); s != nil {
		v.User, v.Server, v.CSRF = s.user, s.server, s.csrf
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		ui.log.Error("render template", "page", page, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintln(w, "Something went wrong in the police client. The error has been logged.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
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

// staticHandler serves the embedded files; URLs made by "asset" carry a
// content hash and may be cached for a long time.
func (ui *UI) staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			ui.notFound(w, r)
			return
		}
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		fsrv.ServeHTTP(w, r)
	})
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
