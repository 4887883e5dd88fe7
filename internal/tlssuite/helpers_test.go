package tlssuite_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// env is a TLS-suite server on a real loopback socket with a real SQLite
// store and the real group-commit ingest path.
type env struct {
	t       testing.TB
	dir     string
	store   *sqlite.DB
	ca      *ca.CA
	srv     *tlssuite.Server
	addr    string
	clock   *clock
	mu      sync.Mutex
	refused []string // OnRefuse reasons
	events  []*tes.Event
}

// clock is an adjustable time source for the server.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func newEnv(t testing.TB, edit ...func(*tlssuite.Config)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dir: t.TempDir(), clock: &clock{}}
	keys, err := atrest.New(bytes.Repeat([]byte{3}, atrest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if e.store, err = sqlite.Open(ctx, filepath.Join(e.dir, "tes.db"), keys); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*tes.User{
		{Name: "police1", Role: tes.RolePolice, PasswordHash: "-"},
		{Name: "officer1", Role: tes.RoleOfficer, PasswordHash: "-"},
	} {
		if err := e.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if e.ca, _, err = ca.LoadOrCreate(e.dir); err != nil {
		t.Fatal(err)
	}
	cert, _, err := e.ca.LoadOrIssueServer(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	batcher := ingest.New(e.store, slog.New(slog.NewTextHandler(io.Discard, nil)), 0, nil)
	cfg := tlssuite.Config{CA: e.ca, ServerCert: cert, Devices: e.store, Users: e.store, Ingest: batcher,
		Statuses: e.store, Now: e.clock.Now,
		OnRefuse: func(user, remote, reason string) {
			e.mu.Lock()
			e.refused = append(e.refused, reason)
			e.mu.Unlock()
		},
		Audit: func(ev *tes.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	}
	for _, f := range edit {
		f(&cfg)
	}
	if e.srv, err = tlssuite.NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		batcher.Close()
		e.store.Close()
	})
	return e
}

// mustToken creates a join token for user naming the server's address.
func (e *env) mustToken(user string, ttl time.Duration) *enroll.Token {
	e.t.Helper()
	svc := &enroll.Service{Devices: e.store, Users: e.store, CA: e.ca, Now: e.clock.Now}
	tok, err := svc.Create(context.Background(), user, "admin", ttl, e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// mustEnroll enrols a new device of police1.
func (e *env) mustEnroll() *tlssuite.Device {
	e.t.Helper()
	dev, err := tlssuite.Enroll(context.Background(), e.mustToken("police1", time.Hour).String(), e.t.TempDir())
	if err != nil {
		e.t.Fatalf("Enroll: %v", err)
	}
	return dev
}

func (e *env) mustDial(dev *tlssuite.Device) *tlssuite.Client {
	e.t.Helper()
	c, err := tlssuite.Dial(context.Background(), "", dev)
	if err != nil {
		e.t.Fatalf("Dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func (e *env) refusals() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.refused...)
}

// waitRefusal waits until the server has reported a refusal starting with
// prefix: the server records it after the client has already seen the alert.
func (e *env) waitRefusal(prefix string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, r := range e.refusals() {
			if strings.HasPrefix(r, prefix) {
				return true
			}
		}
	}
	return false
}

func (e *env) count() int {
	e.t.Helper()
	n, err := e.store.CountByStatus(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n[tes.StatusPending] + n[tes.StatusApproved] + n[tes.StatusRejected]
}

func newReport(plate string, speed int) *tes.Report {
	return &tes.Report{Plate: plate, Speed: speed, SpeedLimit: 90, Location: "E5 km 12",
		ObservedAt: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}
}
