// Package webui is the mechanism the server-rendered web UIs (the officer
// dashboard in internal/officerui and the police client in
// internal/policeui) share: page templates parsed as sets of layout,
// partials and one page; static files fingerprinted into cache-safe asset
// URLs and served with long-lived caching; pages rendered into a buffer so
// that a template failure gives a clean 500; and the security headers every
// response carries. What the pages show, and how each UI handles sessions
// and errors, stays in the UI's own package.
package webui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"strings"
)

// DefaultFailureText is what a page that fails to render shows unless
// Pages.FailureText says otherwise.
const DefaultFailureText = "Something went wrong on the server. The error has been logged."

// Pages holds one parsed template set per page (layout.html, partials.html
// and the page itself) and the fingerprinted URLs of the static files.
type Pages struct {
	pages  map[string]*template.Template
	assets map[string]string // file name -> "/static/name?v=hash"

	// FailureText is the plain-text body of the 500 response written when
	// a page fails to render. Set it before serving; empty means
	// DefaultFailureText.
	FailureText string
}

// ParsePages parses every templates/*.html in templates, except
// layout.html and partials.html, together with those two as one set per
// page, named after the file without ".html". Each page must define
// "title" and "content", and every page in required must exist. The files
// under static/ in static are fingerprinted, and the templates get an
// "asset" function turning a file name into its "/static/name?v=hash" URL.
// funcs is not modified.
func ParsePages(templates, static fs.FS, funcs template.FuncMap, required ...string) (*Pages, error) {
	p := &Pages{pages: map[string]*template.Template{}, assets: map[string]string{}}
	if err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name = strings.TrimPrefix(name, "static/")
		p.assets[name] = "/static/" + name + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	}); err != nil {
		return nil, fmt.Errorf("static files: %w", err)
	}
	funcs = maps.Clone(funcs)
	if funcs == nil {
		funcs = template.FuncMap{}
	}
	funcs["asset"] = p.Asset
	names, err := fs.Glob(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "partials.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templates, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", base, err)
		}
		if t.Lookup("content") == nil || t.Lookup("title") == nil {
			return nil, fmt.Errorf("template %s defines no \"title\" or \"content\"", base)
		}
		p.pages[strings.TrimSuffix(base, ".html")] = t
	}
	for _, need := range required {
		if p.pages[need] == nil {
			return nil, fmt.Errorf("template %s.html is missing", need)
		}
	}
	return p, nil
}

// Has reports whether page was parsed.
func (p *Pages) Has(page string) bool { return p.pages[page] != nil }

// Asset returns the fingerprinted URL of a static file, as the templates'
// "asset" function does.
func (p *Pages) Asset(name string) (string, error) {
	if u, ok := p.assets[name]; ok {
		return u, nil
	}
	return "", fmt.Errorf("no static file %q", name)
}

// Render executes page's "layout" template with data into a buffer and
// then writes it as HTML with status and Cache-Control: no-store. If page
// does not exist or fails to render, nothing of it is written: the
// response is a plain-text 500 with FailureText, and the error is returned
// for the caller to log.
func (p *Pages) Render(w http.ResponseWriter, status int, page string, data any) error {
	t := p.pages[page]
	if t == nil {
		err := fmt.Errorf("no such page %q", page)
		p.fail(w)
		return err
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		p.fail(w)
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

func (p *Pages) fail(w http.ResponseWriter) {
	msg := p.FailureText
	if msg == "" {
		msg = DefaultFailureText
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintln(w, msg)
}

// StaticHandler serves the files under static/ in static at /static/.
// URLs with a "v" query (those made by "asset") carry a content hash and
// are cached for a year; others for an hour. A directory path goes to
// notFound.
func StaticHandler(static fs.FS, notFound http.Handler) http.Handler {
	sub, _ := fs.Sub(static, "static") // fails only for an invalid name
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			notFound.ServeHTTP(w, r)
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

// SecurityOptions are what differs between the UIs' security headers.
type SecurityOptions struct {
	// CSP is the Content-Security-Policy.
	CSP string
	// PermissionsPolicy is the Permissions-Policy.
	PermissionsPolicy string
	// MaxBody bounds every request body, in bytes.
	MaxBody int64
	// HSTS reports whether a request gets Strict-Transport-Security; nil
	// means never.
	HSTS func(*http.Request) bool
}

// SecurityHeaders returns middleware setting the headers every response
// carries (the CSP, X-Frame-Options DENY, nosniff, Referrer-Policy
// no-referrer, Cross-Origin-Opener-Policy same-origin, the
// Permissions-Policy and, where opts.HSTS says so, HSTS) and bounding the
// request body to opts.MaxBody.
func SecurityHeaders(opts SecurityOptions) func(http.Handler) http.Handler {
	if opts.MaxBody <= 0 {
		panic("webui: SecurityOptions.MaxBody must be positive")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", opts.CSP)
			h.Set("X-Frame-Options", "DENY")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Permissions-Policy", opts.PermissionsPolicy)
			if opts.HSTS != nil && opts.HSTS(r) {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, opts.MaxBody)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CookieName is name with the __Host- prefix when the cookie is Secure.
// A browser then accepts the cookie only if it is Secure, host-only and
// Path=/, so a page on another subdomain or on plain http:// cannot plant
// or overwrite it (RFC 6265bis "cookie prefixes"). Over plain HTTP (a
// laptop demo) the prefix would make browsers drop the cookie, so it is
// used only when the cookie is Secure.
func CookieName(name string, secure bool) string {
	if secure {
		return "__Host-" + name
	}
	return name
}
