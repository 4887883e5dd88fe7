// Package browsertest runs tests in a real headless Chromium driven with
// chromedp. The officer dashboard's tests and the police client's tests use
// it, so both start the browser the same way.
//
// The browser is Debian's chromium at /usr/bin/chromium, or the program that
// $TES_CHROMIUM names. When none is found, a test is skipped with a message
// that says how to install one, except under CI (the environment variable CI
// is set), where a missing browser fails the test: CI must not pass by
// skipping its browser tests.
package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds one test's use of the browser. When it runs out the
// browser is stopped, and the action in flight fails with a context error.
const DefaultTimeout = 2 * time.Minute

// Window size of the browser: a laptop screen.
const (
	Width  = 1280
	Height = 900
)

// ExecPath returns the Chromium to run: $TES_CHROMIUM if set, else
// /usr/bin/chromium, else chromium or chromium-browser on $PATH. It returns
// an error saying what to install when none exists.
func ExecPath() (string, error) {
	if p := os.Getenv("TES_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errors.New("TES_CHROMIUM=" + p + " does not exist")
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found: install Debian's chromium package (apt-get install chromium) or set TES_CHROMIUM to a Chromium or Chrome binary")
}

// New starts a fresh headless Chromium for t, with a new empty profile, and
// returns a context whose chromedp actions run in its one tab. The browser
// stops when t ends or after DefaultTimeout, whichever comes first.
//
// Without a browser New skips t, or fails it when the environment variable
// CI is set.
func New(t *testing.T) context.Context {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser test under CI: %v", err)
		}
		t.Skipf("skipping browser test: %v", err)
	}
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider"),
		chromedp.Flag("lang", "en-GB"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(Width, Height),
	)
	// chromedp may log from its own goroutines; once the test is ending,
	// those lines are dropped rather than sent to a finished t.
	var done atomic.Bool
	logf := func(format string, args ...any) {
		if !done.Load() {
			t.Logf("chromedp: "+format, args...)
		}
	}
	timeout, cancelTimeout := context.WithTimeout(context.Background(), DefaultTimeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(timeout, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	// Cleanups run last-in first-out: the browser is stopped (and waited
	// for) before t.TempDir removes its profile.
	t.Cleanup(func() {
		done.Store(true)
		cancelCtx()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// Screenshot writes a full-page PNG of the tab to path, creating its
// directory.
func Screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// SaveScreenshot writes a full-page PNG named name into the directory that
// the environment variable TES_SCREENSHOTS names, and does nothing when it
// is unset. Tests call it at the moments worth showing; a run with
// TES_SCREENSHOTS=docs/screenshots refreshes the documentation's images.
func SaveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("TES_SCREENSHOTS")
	if dir == "" {
		return
	}
	Screenshot(t, ctx, filepath.Join(dir, name))
}
