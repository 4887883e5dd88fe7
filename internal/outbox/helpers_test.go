package outbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tes1"
)

const (
	policeUser = "police1"
	policePass = "pw-police-1"
)

// officerServer is a real officer server (TES/1 over TCP, SQLite store)
// running in this process.
type officerServer struct {
	t      testing.TB
	dir    string
	addr   string
	srv    *officer.Server
	cancel context.CancelFunc
	done   chan error
}

// mustStartOfficer opens an officer server on dir listening on addr
// ("127.0.0.1:0" for a new port) and creates police1 on a fresh store. A
// port that a stopped server just left may take a moment to be free again.
func mustStartOfficer(t testing.TB, dir, addr string) *officerServer {
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
	if _, err := srv.Auth.CreateUser(ctx, "test", policeUser, tes.RolePolice, policePass, false); err != nil && tes.ErrorCode(err) != tes.ECONFLICT {
		t.Fatal(err)
	}
	o := &officerServer{t: t, dir: dir, addr: srv.TES1Addr().String(), srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { o.done <- srv.Run(ctx) }()
	t.Cleanup(o.stop)
	return o
}

// stop shuts the server down gracefully and waits for it.
func (o *officerServer) stop() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.cancel = nil
	if err := <-o.done; err != nil {
		o.t.Errorf("officer server: %v", err)
	}
}

// violations returns every violation in the running server's store.
func (o *officerServer) violations(t testing.TB) []*tes.Violation {
	t.Helper()
	list, _, err := o.srv.Store.Violations(context.Background(), tes.ViolationFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// countReport returns how many stored violations carry reportID.
func countReport(list []*tes.Violation, reportID string) int {
	n := 0
	for _, v := range list {
		if v.ReportID == reportID {
			n++
		}
	}
	return n
}

func mustOpen(t testing.TB, dir string) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(context.Background(), filepath.Join(dir, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

func mustEnqueue(t testing.TB, ob *outbox.Outbox, server string, plate string, speed int) *outbox.Entry {
	t.Helper()
	e, err := ob.Enqueue(context.Background(), policeUser, server, &tes.Report{Plate: plate, Speed: speed, SpeedLimit: 50,
		Location: "Test road", ObservedAt: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustGet(t testing.TB, ob *outbox.Outbox, reportID string) *outbox.Entry {
	t.Helper()
	e, err := ob.Get(context.Background(), reportID)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fastSender is a sender with short timings, so that tests that wait for
// an outcome do not wait long.
func fastSender(t testing.TB, ob *outbox.Outbox, server, pinsPath string) *outbox.Sender {
	t.Helper()
	s, err := outbox.NewSender(outbox.SenderConfig{Outbox: ob, Server: server, User: policeUser, Password: policePass,
		Pins: pins.Open(pinsPath), Timeout: 10 * time.Second, MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond, PollInterval: 100 * time.Millisecond, StatusWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runSender runs s until the test ends.
func runSender(t testing.TB, s *outbox.Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds, failing the test after a minute. It
// asserts an outcome, not a time: the minute only bounds a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lossyProxy forwards TCP connections to target. On the first connection
// it swallows the server's reply number dropAt (1 HANDSHAKE, 2 SESSION OK,
// 3 LOGIN OK, 4 the first DATA's OK) and cuts the connection instead: the
// server has stored the report, the client never hears so.
type lossyProxy struct {
	ln      net.Listener
	target  string
	dropAt  int
	conns   atomic.Int32
	dropped atomic.Bool
	wg      sync.WaitGroup
}

func mustProxy(t testing.TB, target string, dropAt int) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target, dropAt: dropAt}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *lossyProxy) addr() string { return p.ln.Addr().String() }

func (p *lossyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		first := p.conns.Add(1) == 1
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() {
			defer p.wg.Done()
			defer c.Close()
			defer s.Close()
			fr := tes1.NewFrameReader(s, 0)
			for n := 1; ; n++ {
				frame, err := fr.Next()
				if err != nil {
					return
				}
				if first && n == p.dropAt {
					p.dropped.Store(true)
					return
				}
				if _, err := c.Write(frame); err != nil {
					return
				}
			}
		}()
	}
}
