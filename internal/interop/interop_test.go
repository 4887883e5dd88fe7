package interop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tes1"
)

// python returns a Python 3 interpreter that has pycryptodome (as
// Cryptodome). Missing: the test fails in CI and is skipped elsewhere.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TES_PYTHON"), "/usr/bin/python3", "python3"} {
		if p == "" {
			continue
		}
		if exec.Command(p, "-c", "import Cryptodome").Run() == nil {
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

func originalDir(t *testing.T) string {
	d, err := filepath.Abs("../../testdata/original")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOriginalClientAgainstTES: the report's own police client (Appendix 5)
// reports to our officer server, which stores the report.
func TestOriginalClientAgainstTES(t *testing.T) {
	py := python(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: t.TempDir()}, Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := srv.Auth.CreateUser(ctx, "test", "police1", tes.RolePolice, "police-password", false); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.TES1Addr().String())
	cmd := exec.Command(py, filepath.Join(originalDir(t), "run_client.py"), host, port, "police1", "06XYZ99", "87")
	cmd.Env = append(os.Environ(), "TES_PASSWORD=police-password")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("original client: %v\n%s", err, out)
	}
	for _, want := range []string{`{"connect": true}`, `{"login": true}`,
		`{"data": {"type": "OK", "payload": "Message Queued for Processing"}}`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("original client output lacks %s:\n%s", want, out)
		}
	}
	page, _, err := srv.Store.Violations(ctx, tes.ViolationFilter{})
	if err != nil || len(page) != 1 || page[0].Plate != "06XYZ99" || page[0].Speed != 87 || !page[0].SigVerified || page[0].ReportedBy != "police1" {
		t.Fatalf("stored: %+v %v", page, err)
	}
}

// TestTESClientAgainstOriginalServer: our Go client (the one `tes report`
// uses) reports to the report's own officer server (Appendix 3), optional
// fields included, and the original queues it with a verified signature.
func TestTESClientAgainstOriginalServer(t *testing.T) {
	py := python(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	work := t.TempDir()
	cmd := exec.Command(py, "-u", filepath.Join(originalDir(t), "run_server.py"), fmt.Sprint(port))
	cmd.Dir = work
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ready := make(chan struct{})
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "Listening on") {
				close(ready)
				once = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("original server did not start:\n%s", log.String())
	}
	ctx := context.Background()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := tes1.Dial(ctx, addr, tes1.ClientConfig{Pins: pins.Open(filepath.Join(t.TempDir(), "known")), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The original creates admin/"password" on first start.
	if err := c.Login(ctx, "admin", "password"); err != nil {
		t.Fatal(err)
	}
	reports := []*tes.Report{
		{Plate: "34ABC123", Speed: 120},
		{ReportID: tes.NewReportID(), Plate: "AB123", Speed: 85, SpeedLimit: 70, Location: "Ring road", ObservedAt: time.Now()},
	}
	for _, r := range reports {
		if err := c.Send(ctx, r); err != nil {
			t.Fatalf("send %s: %v\nserver log:\n%s", r.Plate, err, log.String())
		}
	}
	// STATUS is unknown to the original: the client says so and does not hang.
	if _, err := c.Statuses(ctx, []string{reports[1].ReportID}, 2*time.Second); err != tes1.ErrStatusUnsupported {
		t.Fatalf("Statuses against the original: %v, want ErrStatusUnsupported", err)
	}
	b, err := os.ReadFile(filepath.Join(work, "data", "pending.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pending []struct {
		Plate    string `json:"plate"`
		Speed    int    `json:"speed"`
		Verified bool   `json:"signature_verified"`
	}
	if err := json.Unmarshal(b, &pending); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].Plate != "34ABC123" || pending[0].Speed != 120 || !pending[0].Verified ||
		pending[1].Plate != "AB123" || pending[1].Speed != 85 || !pending[1].Verified {
		t.Fatalf("original's queue: %+v", pending)
	}
}
