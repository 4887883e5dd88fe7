package officerui

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/webui"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// parseTemplates parses the page templates in tfs with the layout and the
// partials, and fingerprints the assets under static/ in sfs. Any parse
// error, or a page without a "title" or "content" block, is returned.
func parseTemplates(tfs, sfs fs.FS, funcs template.FuncMap) (*webui.Pages, error) {
	p, err := webui.ParsePages(tfs, sfs, funcs, "error", "login")
	if err != nil {
		return nil, fmt.Errorf("officerui: %w", err)
	}
	return p, nil
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

// render fills in the common view fields and renders page with status. A
// missing page or a template failure gives a clean error instead of half a
// page.
func (ui *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	if !ui.pages.Has(page) {
		ui.log.Error("no such template", "page", page)
		page, status, v = "error", http.StatusInternalServerError, &view{Error: "Something went wrong on the server."}
	}
	if p := current(r); p != nil {
		v.User = p.User
		if p.Session != nil {
			v.CSRF = p.Session.CSRFToken
		}
	}
	v.Status = status
	v.Threshold = ui.threshold
	if err := ui.pages.Render(w, status, page, v); err != nil {
		ui.log.Error("render template", "page", page, "err", err)
	}
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
