package faults_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/postgres/pgtest"
	"github.com/tes-traffic/tes/internal/tes1"
)

// pgProxy forwards TCP to PostgreSQL and can cut every connection and
// refuse new ones, which is what the officer sees when the database goes
// down, without stopping the server the other tests share.
type pgProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *pgProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *pgProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]struct{}{}
	}
}

// TestPostgresGoesDown: while the database is unreachable reports get
// ERROR, never OK; when it is back the server recovers by itself and the
// client's resend is stored once.
func TestPostgresGoesDown(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: t.TempDir(), DB: u.String()},
		Listen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := srv.Auth.CreateUser(ctx, "t", "police1", tes.RolePolice, "police-password", false); err != nil {
		t.Fatal(err)
	}
	c, err := tes1.Dial(ctx, srv.TES1Addr().String(), tes1.ClientConfig{Fingerprint: srv.TES1.Fingerprint(), Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "police1", "police-password"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, &tes.Report{ReportID: tes.NewReportID(), Plate: "UP1", Speed: 80}); err != nil {
		t.Fatal(err)
	}

	proxy.setDown(true)
	r := &tes.Report{ReportID: tes.NewReportID(), Plate: "DOWN1", Speed: 80}
	for i := 0; i < 2; i++ {
		if err := c.Send(ctx, r); !tes1.IsReply(err, tes1.ReplyUnavailable) {
			t.Fatalf("report while PostgreSQL is down: %v, want ERROR %q", err, tes1.ReplyUnavailable)
		}
	}
	proxy.setDown(false)
	var sendErr error
	for i := 0; i < 20; i++ { // the pool reconnects on its own
		if sendErr = c.Send(ctx, r); sendErr == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if sendErr != nil {
		t.Fatalf("after PostgreSQL came back: %v", sendErr)
	}
	if err := c.Send(ctx, r); err != nil { // a resend: acknowledged, not stored again
		t.Fatal(err)
	}
	counts, err := srv.Store.CountByStatus(ctx)
	if err != nil || counts[tes.StatusPending] != 2 {
		t.Fatalf("stored %v (%v), want 2 pending", counts, err)
	}
}
