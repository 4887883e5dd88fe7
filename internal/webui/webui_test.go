package webui

import (
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// set returns a valid template set with extra files added or replaced.
func set(extra fstest.MapFS) fstest.MapFS {
	m := fstest.MapFS{
		"templates/layout.html":   {Data: []byte(`{{define "layout"}}<title>{{template "title" .}}</title>{{template "content" .}}{{end}}`)},
		"templates/partials.html": {Data: []byte(`{{define "css"}}<link href="{{asset "style.css"}}">{{end}}`)},
		"templates/error.html":    {Data: []byte(`{{define "title"}}E{{end}}{{define "content"}}{{.}}{{end}}`)},
		"templates/home.html":     {Data: []byte(`{{define "title"}}Home{{end}}{{define "content"}}{{template "css"}}{{shout .}}{{end}}`)},
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

var (
	static = fstest.MapFS{"static/style.css": {Data: []byte("body{}")}}
	funcs  = template.FuncMap{"shout": strings.ToUpper}
)

func TestParsePagesRejectsBrokenSets(t *testing.T) {
	if _, err := ParsePages(set(nil), static, funcs, "error", "home"); err != nil {
		t.Fatalf("valid set: %v", err)
	}
	for name, page := range map[string]string{
		"unclosed action":  `{{define "title"}}x{{end}}{{define "content"}}{{if .}}{{end}}`,
		"unknown function": `{{define "title"}}x{{end}}{{define "content"}}{{nosuchfunc .}}{{end}}`,
		"no content":       `{{define "title"}}x{{end}}`,
		"no title":         `{{define "content"}}x{{end}}`,
	} {
		if _, err := ParsePages(set(fstest.MapFS{"templates/page.html": {Data: []byte(page)}}), static, funcs); err == nil {
			t.Errorf("%s: ParsePages succeeded", name)
		}
	}
	_, err := ParsePages(set(nil), static, funcs, "error", "login")
	if err == nil || !strings.Contains(err.Error(), "login.html is missing") {
		t.Errorf("missing required page: err = %v", err)
	}
	if _, ok := funcs["asset"]; ok {
		t.Error("ParsePages added to the caller's FuncMap")
	}
}

func TestAssetURLsCarryAHash(t *testing.T) {
	p, err := ParsePages(set(nil), static, funcs)
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.Asset("style.css")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^/static/style\.css\?v=[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("asset URL %q has no content hash", u)
	}
	other, err := ParsePages(set(nil), fstest.MapFS{"static/style.css": {Data: []byte("body{color:red}")}}, funcs)
	if err != nil {
		t.Fatal(err)
	}
	if u2, _ := other.Asset("style.css"); u2 == u {
		t.Errorf("different contents, same URL %q", u)
	}
	if _, err := p.Asset("nosuch.css"); err == nil {
		t.Error("Asset of a missing file succeeded")
	}

	rec := httptest.NewRecorder()
	if err := p.Render(rec, http.StatusOK, "home", "hi"); err != nil {
		t.Fatal(err)
	}
	if body := rec.Body.String(); !strings.Contains(body, `href="`+u+`"`) || !strings.Contains(body, "HI") {
		t.Errorf("page = %q", body)
	}
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" ||
		rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("status %d, headers %v", rec.Code, rec.Header())
	}
}

func TestRenderFailureIsAClean500(t *testing.T) {
	bad := `{{define "title"}}Bad{{end}}{{define "content"}}<p>half a page</p>{{fail}}{{end}}`
	fn := template.FuncMap{"shout": strings.ToUpper, "fail": func() (string, error) { return "", errors.New("boom") }}
	p, err := ParsePages(set(fstest.MapFS{"templates/bad.html": {Data: []byte(bad)}}), static, fn)
	if err != nil {
		t.Fatal(err)
	}
	p.FailureText = "It broke."
	for _, page := range []string{"bad", "nosuchpage"} {
		rec := httptest.NewRecorder()
		if err := p.Render(rec, http.StatusOK, page, nil); err == nil {
			t.Errorf("%s: Render returned no error", page)
		}
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500", page, rec.Code)
		}
		if body := rec.Body.String(); body != "It broke.\n" {
			t.Errorf("%s: body %q", page, body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", page, ct)
		}
	}
}

func TestStaticHandlerCaching(t *testing.T) {
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusTeapot) })
	h := StaticHandler(static, notFound)
	for target, want := range map[string]string{
		"/static/style.css?v=abc": "public, max-age=31536000, immutable",
		"/static/style.css":       "public, max-age=3600",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "body{}" || rec.Header().Get("Cache-Control") != want {
			t.Errorf("%s: %d %q Cache-Control %q", target, rec.Code, rec.Body.String(), rec.Header().Get("Cache-Control"))
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/static/", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("directory: status %d, want notFound's", rec.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	var n int64
	h := SecurityHeaders(SecurityOptions{
		CSP: "default-src 'self'", PermissionsPolicy: "camera=()", MaxBody: 4,
		HSTS: func(r *http.Request) bool { return r.TLS != nil },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 10)
		n = 0
		for {
			k, err := r.Body.Read(b)
			n += int64(k)
			if err != nil {
				break
			}
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader("0123456789")))
	for k, v := range map[string]string{
		"Content-Security-Policy": "default-src 'self'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Permissions-Policy":      "camera=()",
	} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if rec.Header().Get("Strict-Transport-Security") != "" {
		t.Error("HSTS on a plain request")
	}
	if n > 4 {
		t.Errorf("read %d bytes past a 4-byte limit", n)
	}
	req := httptest.NewRequest("GET", "https://example.test/", nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS on a TLS request")
	}
}
