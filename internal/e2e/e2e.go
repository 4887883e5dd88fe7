// Package e2e runs the real `tes` binary for end-to-end tests: it builds it
// once per test process and starts `tes officer` on loopback port 0 with a
// temporary data directory, reading the bound addresses from its output.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/tes once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tes-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tes")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/tes-traffic/tes/cmd/tes")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tes: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Officer is a running `tes officer` process.
type Officer struct {
	t        testing.TB
	Cmd      *exec.Cmd
	DataDir  string
	TES1Addr string // host:port
	HTTPAddr string // host:port
	TLSAddr  string // host:port of the TLS suite
	CAHash   string // the TLS suite's CA hash
	// AdminPassword is set when this start created the admin account.
	AdminPassword string
	Fingerprint   string
	stdout        *syncBuffer
	stderr        *syncBuffer
	done          chan error
}

var (
	reTES1  = regexp.MustCompile(`TES/1 listening on (\S+) \(key (SHA256:\S+)\)`)
	reHTTP  = regexp.MustCompile(`Dashboard on http://(\S+)/`)
	reTLS   = regexp.MustCompile(`TLS suite listening on (\S+) \(CA (sha256:\S+)\)`)
	reAdmin = regexp.MustCompile(`Created user admin with password (\S+)`)
)

// StartOfficer starts `tes officer --data dir --listen 127.0.0.1:0 --http
// 127.0.0.1:0 --listen-tls 127.0.0.1:0 args...` and waits until it listens.
// Extra args may override --listen/--http/--listen-tls (later flags win;
// --legacy=false turns TES/1 off). The process is stopped at test end.
func StartOfficer(t testing.TB, dir string, args ...string) *Officer {
	t.Helper()
	full := append([]string{"officer", "--data", dir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0"}, args...)
	cmd := exec.Command(Binary(t), full...)
	cmd.Env = append(os.Environ(), "TES_PASSWORD=", "TES_DATA=")
	o := &Officer{t: t, Cmd: cmd, DataDir: dir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(o.stdout, pw)
	cmd.Stderr = o.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { o.done <- cmd.Wait(); pw.Close() }()
	wantHTTP, wantTLS, wantTES1 := true, true, true
	for i := 0; i+1 < len(full); i++ {
		switch full[i] {
		case "--http":
			wantHTTP = full[i+1] != ""
		case "--listen-tls":
			wantTLS = full[i+1] != ""
		case "--listen":
			wantTES1 = full[i+1] != ""
		}
	}
	for _, a := range full {
		if a == "--legacy=false" {
			wantTES1 = false
		}
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			if m := reTES1.FindStringSubmatch(line); m != nil {
				o.TES1Addr, o.Fingerprint = m[1], m[2]
			}
			if m := reHTTP.FindStringSubmatch(line); m != nil {
				o.HTTPAddr = m[1]
			}
			if m := reTLS.FindStringSubmatch(line); m != nil {
				o.TLSAddr, o.CAHash = m[1], m[2]
			}
			if m := reAdmin.FindStringSubmatch(line); m != nil {
				o.AdminPassword = m[1]
			}
			if !closed && (o.TES1Addr != "" || !wantTES1) && (o.HTTPAddr != "" || !wantHTTP) && (o.TLSAddr != "" || !wantTLS) {
				close(ready)
				closed = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() { o.Stop() })
	select {
	case <-ready:
	case err := <-o.done:
		t.Fatalf("tes officer exited before listening: %v\nstdout:\n%s\nstderr:\n%s", err, o.stdout, o.stderr)
	case <-time.After(60 * time.Second):
		o.Kill()
		t.Fatalf("tes officer did not listen within 60 s\nstdout:\n%s\nstderr:\n%s", o.stdout, o.stderr)
	}
	return o
}

// Stop sends SIGTERM and waits for a graceful exit; it fails the test if
// the process does not exit cleanly.
func (o *Officer) Stop() {
	if o.Cmd.ProcessState != nil {
		return
	}
	o.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-o.done:
		if err != nil {
			o.t.Errorf("tes officer exited with %v after SIGTERM\nstderr:\n%s", err, o.stderr)
		}
	case <-time.After(30 * time.Second):
		o.Kill()
		o.t.Errorf("tes officer did not stop within 30 s of SIGTERM")
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to go.
func (o *Officer) Kill() {
	if o.Cmd.ProcessState != nil {
		return
	}
	o.Cmd.Process.Kill()
	<-o.done
}

// Stderr returns what the process logged so far.
func (o *Officer) Stderr() string { return o.stderr.String() }

// Run runs the tes binary with args and env additions and returns stdout,
// stderr and the exit code.
func Run(t testing.TB, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = append(append(os.Environ(), "TES_PASSWORD=", "TES_DATA="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run tes %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
