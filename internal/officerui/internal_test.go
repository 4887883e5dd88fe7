package officerui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tes-traffic/tes"
)

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{tes.Errorf(tes.EINVALID, "x"), 400},
		{tes.Errorf(tes.EUNAUTHORIZED, "x"), 401},
		{tes.Errorf(tes.EFORBIDDEN, "x"), 403},
		{tes.Errorf(tes.ENOTFOUND, "x"), 404},
		{tes.Errorf(tes.ECONFLICT, "x"), 409},
		{tes.Errorf(tes.ERATELIMIT, "x"), 429},
		{tes.Errorf(tes.EUNAVAILABLE, "x"), 503},
		{tes.Errorf(tes.EINTERNAL, "x"), 500},
		{errors.New("disk on fire"), 500},
		{fmt.Errorf("wrapped: %w", tes.Errorf(tes.ECONFLICT, "x")), 409},
	} {
		if got := httpStatus(tc.err); got != tc.want {
			t.Errorf("httpStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestBrokenTemplateFailsParse: a template error is found when the UI is
// built, not when a page is requested.
func TestBrokenTemplateFailsParse(t *testing.T) {
	ok := func(extra fstest.MapFS) fstest.MapFS {
		m := fstest.MapFS{
			"templates/layout.html":   {Data: []byte(`{{define "layout"}}{{template "title" .}}{{template "content" .}}{{end}}`)},
			"templates/partials.html": {Data: []byte(`{{define "csrf"}}{{end}}`)},
			"templates/error.html":    {Data: []byte(`{{define "title"}}E{{end}}{{define "content"}}e{{end}}`)},
			"templates/login.html":    {Data: []byte(`{{define "title"}}L{{end}}{{define "content"}}l{{end}}`)},
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	static := fstest.MapFS{"static/style.css": {Data: []byte("body{}")}}
	ui := &UI{}
	if _, err := parseTemplates(ok(nil), static, ui.funcs()); err != nil {
		t.Fatalf("valid set: %v", err)
	}
	for name, page := range map[string]string{
		"unclosed action":  `{{define "title"}}x{{end}}{{define "content"}}{{if .}}{{end}}`,
		"unknown function": `{{define "title"}}x{{end}}{{define "content"}}{{nosuchfunc .}}{{end}}`,
		"no content":       `{{define "title"}}x{{end}}`,
	} {
		_, err := parseTemplates(ok(fstest.MapFS{"templates/page.html": {Data: []byte(page)}}), static, ui.funcs())
		if err == nil {
			t.Errorf("%s: parseTemplates succeeded", name)
		}
	}
	// The embedded set parses.
	if _, err := parseTemplates(templateFS, staticFS, ui.funcs()); err != nil {
		t.Fatalf("embedded templates: %v", err)
	}
}

func TestNewNeedsServices(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Store, Review and Auth") {
		t.Errorf("New(Config{}) = %v", err)
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"":         "",
		"AB 12":    "AB 12",
		"=1+1":     "'=1+1",
		"+1":       "'+1",
		"-1":       "'-1",
		"@SUM(A1)": "'@SUM(A1)",
		"\tx":      "'\tx",
		"\rx":      "'\rx",
		"a=1":      "a=1",
		"'already": "'already",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/records?x=1":       "/records?x=1",
		"":                   "/dashboard",
		"records":            "/dashboard",
		"//evil.example":     "/dashboard",
		"/\\evil.example":    "/dashboard",
		"https://evil/":      "/dashboard",
		"/ok\r\nSet-Cookie:": "/dashboard",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBandAndCursor(t *testing.T) {
	for in, want := range map[string][2]int{"50-69": {50, 69}, "100+": {100, 0}, "0-49": {0, 49}} {
		lo, hi, err := parseBand(in)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("parseBand(%q) = %d, %d, %v", in, lo, hi, err)
		}
	}
	for _, bad := range []string{"", "50", "69-50", "a-b", "-1-5", "600+", "50-600"} {
		if _, _, err := parseBand(bad); tes.ErrorCode(err) != tes.EINVALID {
			t.Errorf("parseBand(%q) = %v, want EINVALID", bad, err)
		}
	}
	c, err := parseCursor("1700000000000000.42")
	if err != nil || c.Key != 1700000000000000 || c.ID != 42 || formatCursor(c) != "1700000000000000.42" {
		t.Errorf("cursor round trip: %+v %v", c, err)
	}
	for _, bad := range []string{"", "1", "a.b", "1.-2", "1.2.3"} {
		if _, err := parseCursor(bad); tes.ErrorCode(err) != tes.EINVALID {
			t.Errorf("parseCursor(%q) = %v", bad, err)
		}
	}
	if formatCursor(nil) != "" {
		t.Error("formatCursor(nil)")
	}
}
