package outbox_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
)

// originalPython returns a Python 3 with pycryptodome, which the original
// officer server needs; without one the test is skipped, or fails under CI.
func originalPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TES_PYTHON"), "/usr/bin/python3", "python3"} {
		if p != "" && exec.Command(p, "-c", "import Cryptodome").Run() == nil {
			return p
		}
	}
	msg := "python3 with pycryptodome not found (apt-get install python3-pycryptodome, or set TES_PYTHON)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestSenderAgainstOriginalServer runs the sender against the original
// report's Python officer server (testdata/original, Appendix 3): reports
// with the optional fields are delivered and acknowledged, the STATUS probe
// it does not answer makes the sender stop asking (no decisions shown), and
// later reports still go out.
func TestSenderAgainstOriginalServer(t *testing.T) {
	py := originalPython(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	work := t.TempDir()
	script, err := filepath.Abs("../../testdata/original/run_server.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-u", script, fmt.Sprint(port))
	cmd.Dir = work
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var mu sync.Mutex
	var serverLog strings.Builder
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			mu.Lock()
			serverLog.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !once && strings.Contains(sc.Text(), "Listening on") {
				close(ready)
				once = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the original server did not start:\n%s", serverLog.String())
	}

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ob := mustOpen(t, t.TempDir())
	// The original creates admin with the password "password" on first start.
	s, err := outbox.NewSender(outbox.SenderConfig{Outbox: ob, Server: addr, User: "admin", Password: "password",
		Pins: pins.Open(filepath.Join(t.TempDir(), "known_servers")), Timeout: 10 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, PollInterval: 100 * time.Millisecond,
		StatusWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runSender(t, s)
	enqueue := func(plate string, speed int) *outbox.Entry {
		t.Helper()
		e, err := ob.Enqueue(t.Context(), "admin", addr, &tes.Report{Plate: plate, Speed: speed, SpeedLimit: 90,
			Location: "Ring road", ObservedAt: time.Now().UTC().Truncate(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		s.Kick()
		return e
	}
	a := enqueue("34ABC123", 120)
	b := enqueue("AB123", 85)
	waitFor(t, "both acknowledged and the STATUS probe done", func() bool {
		return mustGet(t, ob, a.ReportID).State == outbox.StateAcknowledged &&
			mustGet(t, ob, b.ReportID).State == outbox.StateAcknowledged && s.Status().Decisions == outbox.SupportNo
	})
	c := enqueue("TR06", 102)
	waitFor(t, "a report after the probe", func() bool { return mustGet(t, ob, c.ReportID).State == outbox.StateAcknowledged })

	raw, err := os.ReadFile(filepath.Join(work, "data", "pending.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pending []struct {
		Plate    string `json:"plate"`
		Speed    int    `json:"speed"`
		Verified bool   `json:"signature_verified"`
	}
	if err := json.Unmarshal(raw, &pending); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pending {
		if !p.Verified {
			t.Errorf("the original could not verify the signature of %s", p.Plate)
		}
		got = append(got, fmt.Sprintf("%s/%d", p.Plate, p.Speed))
	}
	if want := "34ABC123/120 AB123/85 TR06/102"; strings.Join(got, " ") != want {
		t.Fatalf("the original queued %v, want %s", got, want)
	}
}
