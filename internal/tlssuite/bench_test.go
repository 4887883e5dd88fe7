package tlssuite_test

// Benchmarks of the TLS suite, with crypto/tls's own handshake and Ed25519
// verification as floors, measured in the same run:
//
//	go test -run '^$' -bench . -benchtime 3s ./internal/tlssuite
//
// The servers run in a child process (this test binary, re-executed), so
// that "server-cpu-µs/op" is the server's CPU alone, read from
// /proc/PID/stat; the client load is this process.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

const benchServerEnv = "TLSSUITE_BENCH_SERVER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchServerEnv); mode != "" {
		if err := benchServer(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchHello is what a bench server prints on its first line.
type benchHello struct {
	Addr  string `json:"addr"`
	Token string `json:"token,omitempty"` // suite: a join token for police1
	Dir   string `json:"dir,omitempty"`   // bare: client key, certificate and CA
}

// benchServer runs until its standard input closes. "suite" is the TLS
// suite with a SQLite store; "bare" is crypto/tls alone with the same key
// types and mutual authentication.
func benchServer(mode string) error {
	dir, err := os.MkdirTemp("", "tlssuite-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	root, _, err := ca.LoadOrCreate(dir)
	if err != nil {
		return err
	}
	cert, _, err := root.LoadOrIssueServer(dir)
	if err != nil {
		return err
	}
	hello := benchHello{Addr: ln.Addr().String()}
	switch mode {
	case "suite":
		keys, _ := atrest.New(bytes.Repeat([]byte{3}, atrest.KeySize))
		store, err := sqlite.Open(context.Background(), filepath.Join(dir, "tes.db"), keys)
		if err != nil {
			return err
		}
		defer store.Close()
		if err := store.CreateUser(context.Background(), &tes.User{Name: "police1", Role: tes.RolePolice, PasswordHash: "-"}); err != nil {
			return err
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		b := ingest.New(store, log, 0, nil)
		defer b.Close()
		srv, err := tlssuite.NewServer(tlssuite.Config{CA: root, ServerCert: cert, Devices: store, Users: store, Ingest: b, Log: log})
		if err != nil {
			return err
		}
		tok, err := (&enroll.Service{Devices: store, Users: store, CA: root}).Create(context.Background(), "police1", "bench", time.Hour, hello.Addr)
		if err != nil {
			return err
		}
		hello.Token = tok.String()
		go srv.Serve(ln)
	case "bare":
		_, key, _ := ed25519.GenerateKey(nil)
		client := mustIssueFor(root, key)
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		if err := os.WriteFile(filepath.Join(dir, "client.json"), mustJSON(map[string][]byte{"key": der, "cert": client.Raw, "ca": root.Cert.Raw}), 0o600); err != nil {
			return err
		}
		hello.Dir = dir
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true,
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: root.Pool()}
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer nc.Close()
					tc := tls.Server(nc, cfg)
					if tc.Handshake() == nil {
						tc.Write([]byte{1}) // the client waits for this, as Dial waits for HANDSHAKE
						io.Copy(io.Discard, tc)
					}
				}()
			}
		}()
	default:
		return fmt.Errorf("unknown bench server mode %q", mode)
	}
	os.Stdout.Write(append(mustJSON(hello), '\n'))
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustIssueFor(root *ca.CA, key ed25519.PrivateKey) *x509.Certificate {
	der, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	c, err := root.IssueDevice(csr, "bench", "bench")
	if err != nil {
		panic(err)
	}
	return c
}

// childServer is a running bench server process.
type childServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	hello benchHello
}

var children sync.Map // mode -> *childServer

func startChild(b *testing.B, mode string) *childServer {
	if c, ok := children.Load(mode); ok {
		return c.(*childServer)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		b.Fatalf("bench server %s: %v", mode, err)
	}
	c := &childServer{cmd: cmd, stdin: stdin}
	if err := json.Unmarshal(line, &c.hello); err != nil {
		b.Fatal(err)
	}
	children.Store(mode, c)
	return c
}

// cpu returns the child's user+system CPU time so far.
func (c *childServer) cpu() (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * (time.Second / 100), true // USER_HZ is 100 on Linux
}

// measure runs fn b.N times and reports the rate and the server's CPU per op.
func measure(b *testing.B, c *childServer, unit string, fn func(pb *testing.PB)) {
	cpu0, ok := c.cpu()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(fn)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit+"/s")
	if cpu1, ok2 := c.cpu(); ok && ok2 && b.N > 0 {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "server-cpu-µs/op")
	}
}

var benchDevice struct {
	once sync.Once
	dev  *tlssuite.Device
	err  error
}

func suiteDevice(b *testing.B) (*childServer, *tlssuite.Device) {
	c := startChild(b, "suite")
	benchDevice.once.Do(func() {
		dir, err := os.MkdirTemp("", "tlssuite-bench-device-")
		if err != nil {
			benchDevice.err = err
			return
		}
		benchDevice.dev, benchDevice.err = tlssuite.Enroll(context.Background(), c.hello.Token, dir)
	})
	if benchDevice.err != nil {
		b.Fatal(benchDevice.err)
	}
	return c, benchDevice.dev
}

// BenchmarkHandshake compares full TLS-suite sessions (TCP connect, TLS 1.3
// with mutual Ed25519 authentication, the device look-up in SQLite and the
// server's HANDSHAKE message) with crypto/tls alone doing the same
// handshake with the same key types.
func BenchmarkHandshake(b *testing.B) {
	b.Run("tls-suite", func(b *testing.B) {
		c, dev := suiteDevice(b)
		measure(b, c, "sessions", func(pb *testing.PB) {
			for pb.Next() {
				cl, err := tlssuite.Dial(context.Background(), "", dev)
				if err != nil {
					b.Error(err)
					return
				}
				cl.Close()
			}
		})
	})
	b.Run("crypto-tls", func(b *testing.B) {
		c := startChild(b, "bare")
		var creds map[string][]byte
		raw, err := os.ReadFile(filepath.Join(c.hello.Dir, "client.json"))
		if err != nil || json.Unmarshal(raw, &creds) != nil {
			b.Fatal("client credentials", err)
		}
		key, _ := x509.ParsePKCS8PrivateKey(creds["key"])
		root, _ := x509.ParseCertificate(creds["ca"])
		pool := x509.NewCertPool()
		pool.AddCert(root)
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: ca.ServerName,
			Certificates: []tls.Certificate{{Certificate: [][]byte{creds["cert"]}, PrivateKey: key}}}
		measure(b, c, "sessions", func(pb *testing.PB) {
			one := make([]byte, 1)
			for pb.Next() {
				tc, err := tls.Dial("tcp", c.hello.Addr, cfg)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(tc, one); err != nil {
					b.Error(err)
				}
				tc.Close()
			}
		})
	})
}

// BenchmarkReports measures signed reports over open TLS-suite connections
// (8 per CPU, as from many devices at once), each acknowledged only after
// its group commit to SQLite (synchronous=FULL).
func BenchmarkReports(b *testing.B) {
	c, dev := suiteDevice(b)
	b.SetParallelism(8)
	var plates atomic.Int64
	measure(b, c, "reports", func(pb *testing.PB) {
		cl, err := tlssuite.Dial(context.Background(), "", dev)
		if err != nil {
			b.Error(err)
			return
		}
		defer cl.Close()
		for pb.Next() {
			r := &tes.Report{Plate: fmt.Sprintf("B%d", plates.Add(1)), Speed: 120, SpeedLimit: 90, Location: "E5 km 12"}
			if err := cl.Send(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEd25519Verify is the per-report signature check on its own (the
// floor under the server's verification path).
func BenchmarkEd25519Verify(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	signed, sig, err := evidence.Sign(key, evidence.FromReport(&tes.Report{ReportID: tes.NewReportID(), User: "police1",
		Plate: "34ABC123", Speed: 120, SpeedLimit: 90, Location: "E5 km 12"}, "175afcce80f2d9d1"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if evidence.VerifySignature(pub, signed, sig) != nil {
			b.Fatal("does not verify")
		}
	}
}
