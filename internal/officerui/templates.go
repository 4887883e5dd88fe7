package officerui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// templates holds one parsed template set per page: the layout, the shared
// partials and the page itself.
type templates struct {
	pages  map[string]*template.Template
	assets map[string]string // file name -> "/static/name?v=hash"
}

// parseTemplates parses every page under templates/ in tfs with the layout
// and the partials, and fingerprints the assets under static/ in sfs. Any
// parse error, or a page without a "title" or "content" block, is returned.
func parseTemplates(tfs, sfs fs.FS, funcs template.FuncMap) (*templates, error) {
	t := &templates{pages: map[string]*template.Template{}, assets: map[string]string{}}
	if err := fs.WalkDir(sfs, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sfs, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		t.assets[name] = "/static/" + name + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	}); err != nil {
		return nil, fmt.Errorf("officerui: static assets: %w", err)
	}
	funcs["asset"] = func(name string) (string, error) {
		if u, ok := t.assets[name]; ok {
			return u, nil
		}
		return "", fmt.Errorf("no static asset %q", name)
	}
	names, err := fs.Glob(tfs, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "partials.html" {
			continue
		}
		p, err := template.New(base).Funcs(funcs).ParseFS(tfs, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("officerui: template %s: %w", base, err)
		}
		if p.Lookup("content") == nil || p.Lookup("title") == nil {
			return nil, fmt.Errorf("officerui: template %s defines no \"title\" or \"content\"", base)
		}
		t.pages[strings.TrimSuffix(base, ".html")] = p
	}
	for _, need := range []string{"error", "login"} {
		if t.pages[need] == nil {
			return nil, fmt.Errorf("officerui: template %s.html is missing", need)
		}
	}
	return t, nil
}

// view is what every page template receives.
type view struct {
	Nav       string // active navigation entry
	User      *tes.User
	CSRF      string
	Flash     string // a success message
	Error     string // an error message for the whole page
	Status    int
	Threshold int
	D         any // the page's own data
}

// render executes page into a buffer and writes it with status, so that a
// template failure gives a clean error page instead of half a page.
func (ui *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t := ui.tmpl.pages[page]
	if t == nil {
		ui.log.Error("no such template", "page", page)
		page, t = "error", ui.tmpl.pages["error"]
		status, v = http.StatusInternalServerError, &view{Error: "Something went wrong on the server."}
	}
	if p := current(r); p != nil {
		v.User = p.User
		if p.Session != nil {
			v.CSRF = p.Session.CSRFToken
		}
	}
	v.Status = status
	v.Threshold = ui.threshold
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		ui.log.Error("render template", "page", page, "err", err)
		buf.Reset()
		status = http.StatusInternalServerError
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		fmt.Fprintln(w, "Something went wrong on the server. The error has been logged.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorData is the error page's data.
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
		title = "Server error"
	}
	ui.render(w, r, status, "error", &view{D: errorData{Title: title, Message: msg}})
}

// staticHandler serves the embedded assets. URLs made by the "asset"
// function carry a content hash, so they may be cached for a long time.
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

// funcs are the template helpers.
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
		"ago":  func(t time.Time) string { return ago(ui.now().Sub(t)) },
		"num":  func(n any) string { return thousands(n) },
		"plateURL": func(p string) string {
			return "/records/" + url.PathEscape(p)
		},
		"status": func(s tes.Status) string { return strings.ToLower(string(s)) },
		// subjectURL links an audit subject "violation:42" to its page.
		"subjectURL": func(subject string) string {
			if id, ok := strings.CutPrefix(subject, "violation:"); ok {
				if _, err := strconv.ParseInt(id, 10, 64); err == nil {
					return "/process/" + id
				}
			}
			return ""
		},
		"reason": func(r tes.RejectReason) string { return r.Label() },
		"reasons": func() []tes.RejectReason {
			return tes.RejectReasons
		},
		"roles": func() []tes.Role { return []tes.Role{tes.RolePolice, tes.RoleOfficer, tes.RoleAdmin} },
		"add":   func(a, b int) int { return a + b },
		"sub":   func(a, b int) int { return a - b },
		"f":     func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) },
		"fadd":  func(a, b float64) float64 { return a + b },
		"over":  func(points int) bool { return points >= ui.threshold },
	}
}

// ago renders a duration as "3 h 12 min", "45 s".
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// thousands formats an integer with comma separators: 1,000,000.
func thousands(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	default:
		return fmt.Sprint(n)
	}
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(",")
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
