package browsertest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tes-traffic/tes/internal/browsertest"
)

func TestExecPathFromEnv(t *testing.T) {
	t.Setenv("TES_CHROMIUM", filepath.Join(t.TempDir(), "no-such-browser"))
	if _, err := browsertest.ExecPath(); err == nil {
		t.Fatal("ExecPath accepted a TES_CHROMIUM that does not exist")
	}
}

// TestBrowser starts Chromium, loads a page and takes a screenshot.
func TestBrowser(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>hello</title><h1 id="h">Hello, TES</h1>`)
	}))
	defer srv.Close()
	ctx := browsertest.New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("h")))
	if err != nil || text != "Hello, TES" {
		t.Fatalf("heading %q, %v", text, err)
	}
	path := filepath.Join(t.TempDir(), "shots", "hello.png")
	browsertest.Screenshot(t, ctx, path)
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}

	// SaveScreenshot writes only when TES_SCREENSHOTS names a directory.
	dir := t.TempDir()
	t.Setenv("TES_SCREENSHOTS", "")
	browsertest.SaveScreenshot(t, ctx, "none.png")
	t.Setenv("TES_SCREENSHOTS", dir)
	browsertest.SaveScreenshot(t, ctx, "some.png")
	if _, err := os.Stat(filepath.Join(dir, "some.png")); err != nil {
		t.Errorf("SaveScreenshot with TES_SCREENSHOTS set: %v", err)
	}
	if _, err := os.Stat("none.png"); err == nil {
		t.Error("SaveScreenshot wrote without TES_SCREENSHOTS")
	}
}
