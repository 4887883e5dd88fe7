package main_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/browsertest"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
)

const (
	policeUser = "police1"
	policePass = "pw-police-1"
)

// inProcessOfficer is a real officer server (TES/1 over TCP, SQLite)
// running in the test process, so that it can be stopped and started again
// on the same data directory and port.
type inProcessOfficer struct {
	t      testing.TB
	addr   string
	srv    *officer.Server
	cancel context.CancelFunc
	done   chan error
}

func mustStartInProcessOfficer(t testing.TB, dir, addr string) *inProcessOfficer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var srv *officer.Server
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		srv, err = officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: dir}, Listen: addr, HTTP: "",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("start officer server: %v", err)
	}
	for _, u := range []struct {
		name, pw string
		role     tes.Role
	}{{policeUser, policePass, tes.RolePolice}, {"officer1", "pw-officer-1", tes.RoleOfficer}} {
		if _, err := srv.Auth.CreateUser(ctx, "test", u.name, u.role, u.pw, false); err != nil && tes.ErrorCode(err) != tes.ECONFLICT {
			t.Fatal(err)
		}
	}
	o := &inProcessOfficer{t: t, addr: srv.TES1Addr().String(), srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { o.done <- srv.Run(ctx) }()
	t.Cleanup(o.stop)
	return o
}

func (o *inProcessOfficer) stop() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.cancel = nil
	if err := <-o.done; err != nil {
		o.t.Errorf("officer server: %v", err)
	}
}

func (o *inProcessOfficer) violations(t testing.TB) []*tes.Violation {
	t.Helper()
	list, _, err := o.srv.Store.Violations(context.Background(), tes.ViolationFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func countReportID(list []*tes.Violation, id string) int {
	n := 0
	for _, v := range list {
		if v.ReportID == id {
			n++
		}
	}
	return n
}

// policeProcess is `tes police` running as a child process.
type policeProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

var rePoliceURL = regexp.MustCompile(`Police client on (http://\S+/)`)

// startPoliceProcess runs the real binary's `tes police` on a free port,
// with args added, and waits until it serves.
func startPoliceProcess(t *testing.T, server, data string, args ...string) *policeProcess {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), append([]string{"police", "--server", server, "--http", "127.0.0.1:0", "--data", data, "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), "TES_POLICE_DATA=", "TES_POLICE_HTTP=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &policeProcess{cmd: cmd, done: make(chan error, 1)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tes police logged:\n%s", logs.String())
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := rePoliceURL.FindStringSubmatch(sc.Text()); m != nil {
				found <- strings.TrimSuffix(m[1], "/")
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.url = <-found:
	case err := <-p.done:
		t.Fatalf("tes police exited before serving: %v", err)
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatal("tes police did not serve within 60 s")
	}
	return p
}

// kill sends SIGKILL: no shutdown code runs, as in a crash or a pulled
// power cord.
func (p *policeProcess) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// TestPoliceSurvivesKill9 runs `tes police` as a real process: reports are
// queued while the officer server is down, the police client is killed
// with SIGKILL, started again, and once the officer signs in again (the
// password was in memory only) every report arrives exactly once.
func TestPoliceSurvivesKill9(t *testing.T) {
	srvDir, data := t.TempDir(), t.TempDir()
	srv := mustStartInProcessOfficer(t, srvDir, "127.0.0.1:0")
	addr := srv.addr
	p := startPoliceProcess(t, addr, data)
	b := browsertest.New(t)
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(b, steps...); err != nil {
			t.Fatal(err)
		}
	}
	submit := func(sel string) {
		t.Helper()
		if _, err := chromedp.Run(b, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	login := func(base string) {
		t.Helper()
		run(chromedp.Navigate(base+"/login"),
			chromedp.SetValue(chromedp.CSS("#username"), policeUser),
			chromedp.SetValue(chromedp.CSS("#password"), policePass))
		submit("form.form-panel button[type=submit]")
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(b, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}

	login(p.url)
	if !strings.Contains(location(), "/report") {
		t.Fatalf("sign-in went to %s", location())
	}
	srv.stop()
	var ids []string
	for _, plate := range []string{"KILL1", "KILL2"} {
		run(chromedp.Navigate(p.url+"/report"),
			chromedp.SetValue(chromedp.CSS("#plate"), plate),
			chromedp.SetValue(chromedp.CSS("#speed"), "111"))
		submit("#report-form button[type=submit]")
		m := regexp.MustCompile(`saved=([0-9a-f-]{36})`).FindStringSubmatch(location())
		if m == nil {
			t.Fatalf("submitting %s went to %s", plate, location())
		}
		ids = append(ids, m[1])
	}

	p.kill()
	ob, err := outbox.Open(context.Background(), filepath.Join(data, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		e, err := ob.Get(context.Background(), id)
		if err != nil || !e.State.Pending() {
			t.Fatalf("after kill -9, report %s: %v %v", id, e, err)
		}
	}
	ob.Close()

	srv = mustStartInProcessOfficer(t, srvDir, addr)
	p = startPoliceProcess(t, addr, data)
	run(chromedp.Navigate(p.url + "/login"))
	text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "2 reports are waiting on this device") {
		t.Fatalf("the sign-in page does not say 2 reports are waiting:\n%s", text)
	}
	if n := len(srv.violations(t)); n != 0 {
		t.Fatalf("%d reports arrived before the officer signed in again", n)
	}
	login(p.url)
	for _, id := range ids {
		if _, err := chromedp.Run(b, chromedp.Poll[bool](`(document.querySelector('tr[data-report="`+id+`"]') || {dataset: {}}).dataset.state === "acknowledged"`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))); err != nil {
			t.Fatalf("report %s was not shown acknowledged: %v", id, err)
		}
	}
	list := srv.violations(t)
	for _, id := range ids {
		if n := countReportID(list, id); n != 1 {
			t.Fatalf("report %s is stored %d times, want exactly once", id, n)
		}
	}
	if len(list) != 2 {
		t.Fatalf("the officer store holds %d violations, want 2", len(list))
	}
}

// TestReportOutbox: `tes report --outbox` queues first; with the server
// down it exits 75 and says a later run will deliver; the next run
// delivers both reports exactly once; a refused report exits 1.
func TestReportOutbox(t *testing.T) {
	srvDir, box := t.TempDir(), t.TempDir()
	srv := mustStartInProcessOfficer(t, srvDir, "127.0.0.1:0")
	addr := srv.addr
	env := []string{"TES_PASSWORD=" + policePass, "TES_PINS=" + filepath.Join(t.TempDir(), "known_servers"), "TES_OUTBOX="}
	srv.stop()

	out, errOut, code := e2e.Run(t, "", env, "report", "--outbox", box, "--server", addr, "--user", policeUser,
		"--plate", "34abc123", "--speed", "120")
	if code != 75 || !strings.Contains(errOut, "QUEUED 34ABC123") || !strings.Contains(errOut, "remain queued in "+box) ||
		!strings.Contains(errOut, "a later run") || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("with the server down: exit %d\n%s\n%s", code, out, errOut)
	}
	ob, err := outbox.Open(context.Background(), filepath.Join(box, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	queued, err := ob.Due(context.Background(), policeUser, addr, time.Now().Add(time.Hour), 10)
	ob.Close()
	if err != nil || len(queued) != 1 {
		t.Fatalf("the outbox holds %d queued reports (%v), want 1", len(queued), err)
	}

	srv = mustStartInProcessOfficer(t, srvDir, addr)
	out, errOut, code = e2e.Run(t, "", env, "report", "--outbox", box, "--server", addr, "--user", policeUser,
		"--plate", "XY999", "--speed", "99")
	if code != 0 || !strings.Contains(out, "ok XY999 99 km/h") || !strings.Contains(out, "also delivered 1 report(s) queued by an earlier run") {
		t.Fatalf("with the server back: exit %d\n%s\n%s", code, out, errOut)
	}
	list := srv.violations(t)
	if len(list) != 2 || countReportID(list, queued[0].ReportID) != 1 {
		t.Fatalf("the officer store holds %d violations; the queued report must be there once", len(list))
	}

	// A report the server refuses (an officer account may not report)
	// exits 1 with the server's reason and is not kept for a later run.
	out, errOut, code = e2e.Run(t, "", append(env, "TES_PASSWORD=pw-officer-1"), "report", "--outbox", box, "--server", addr,
		"--user", "officer1", "--plate", "NOPE1", "--speed", "99")
	if code != 1 || !strings.Contains(errOut, "FAILED NOPE1 99 km/h: refused by the server: Unauthorized") {
		t.Fatalf("officer1's report: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(srv.violations(t)); n != 2 {
		t.Fatalf("the store holds %d violations after a refused report, want 2", n)
	}
}

// TestPolicePinsCommand lists and forgets the police client's pins.
func TestPolicePinsCommand(t *testing.T) {
	data := t.TempDir()
	const fp = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, err := pins.Open(filepath.Join(data, "known_servers")).Check("10.0.0.5:9999", fp); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := e2e.Run(t, "", nil, "police", "pins", "list", "--data", data)
	if code != 0 || !strings.Contains(out, "10.0.0.5:9999") || !strings.Contains(out, fp) {
		t.Fatalf("pins list: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = e2e.Run(t, "", nil, "police", "pins", "forget", "10.0.0.5:9999", "--data", data)
	if code != 0 || !strings.Contains(out, "Forgot the key of 10.0.0.5:9999") {
		t.Fatalf("pins forget: exit %d\n%s%s", code, out, errOut)
	}
	list, err := pins.Open(filepath.Join(data, "known_servers")).List()
	if err != nil || len(list) != 0 {
		t.Fatalf("after forget: %v %v", list, err)
	}
	if _, _, code := e2e.Run(t, "", nil, "police", "pins", "forget", "10.0.0.5:9999", "--data", data); code == 0 {
		t.Fatal("forgetting a pin that is not there succeeded")
	}
	if _, errOut, code := e2e.Run(t, "", nil, "police", "pins", "drop"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Fatalf("a wrong subcommand: exit %d %s", code, errOut)
	}
	if _, errOut, code := e2e.Run(t, "", nil, "police", "--http", "", "--data", data); code != 2 || !strings.Contains(errOut, "--http") {
		t.Fatalf("--http empty: exit %d %s", code, errOut)
	}
}
