// Package conntrack is what the protocol servers (TES/1 and the TLS suite)
// share around their connections: the accept loop with back-off, the limits
// on open connections in all and per IP address, and a graceful shutdown
// that lets each connection finish the request it is handling.
package conntrack

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is a tracked connection.
type Conn struct {
	net.Conn
	IP   string // the remote IP, the key of the per-IP limit
	busy atomic.Bool
}

// SetBusy marks the connection as handling a request (Shutdown lets it
// finish) or as waiting for the next one (Shutdown interrupts the wait).
func (c *Conn) SetBusy(b bool) { c.busy.Store(b) }

// wake interrupts a read that is waiting for the next request.
func (c *Conn) wake() {
	if !c.busy.Load() {
		c.SetReadDeadline(time.Now())
	}
}

// Counters point at the server's own figures (which it exports as
// metrics); the tracker keeps them up to date.
type Counters struct {
	Open    *atomic.Int64 // open now
	Total   *atomic.Int64 // accepted
	Refused *atomic.Int64 // refused at a limit
}

// Tracker accepts and tracks connections. Set the limits before Serve.
type Tracker struct {
	MaxConns      int
	MaxConnsPerIP int
	Log           *slog.Logger
	Counters      Counters // all three required

	mu      sync.Mutex
	ln      []net.Listener
	conns   map[*Conn]struct{}
	perIP   map[string]int
	closing atomic.Bool
	wg      sync.WaitGroup
}

// Closing reports whether Shutdown has begun: a connection's loop checks it
// after each request and after arming each read deadline.
func (t *Tracker) Closing() bool { return t.closing.Load() }

// Serve accepts connections on ln until Shutdown and runs serve for each in
// its own goroutine; a connection over a limit is passed to refuse instead
// (which must close it). Temporary accept errors (out of file descriptors)
// back off instead of spinning. It returns nil after Shutdown and the
// accept error otherwise.
func (t *Tracker) Serve(ln net.Listener, refuse func(net.Conn), serve func(*Conn)) error {
	t.mu.Lock()
	if t.closing.Load() {
		t.mu.Unlock()
		return nil
	}
	t.ln = append(t.ln, ln)
	t.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if t.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				if t.Log != nil {
					t.Log.Warn("accept failed; backing off", "err", err, "delay", delay)
				}
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c, ok := t.track(nc)
		if !ok {
			t.Counters.Refused.Add(1)
			refuse(nc)
			continue
		}
		go func() {
			defer t.untrack(c)
			defer c.Close()
			serve(c)
		}()
	}
}

func (t *Tracker) track(nc net.Conn) (*Conn, bool) {
	ip := RemoteIP(nc)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns, t.perIP = map[*Conn]struct{}{}, map[string]int{}
	}
	if t.closing.Load() || len(t.conns) >= t.MaxConns || t.perIP[ip] >= t.MaxConnsPerIP {
		return nil, false
	}
	c := &Conn{Conn: nc, IP: ip}
	t.conns[c] = struct{}{}
	t.perIP[ip]++
	t.wg.Add(1)
	t.Counters.Open.Add(1)
	t.Counters.Total.Add(1)
	return c, true
}

func (t *Tracker) untrack(c *Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	if t.perIP[c.IP]--; t.perIP[c.IP] <= 0 {
		delete(t.perIP, c.IP)
	}
	t.mu.Unlock()
	t.Counters.Open.Add(-1)
	t.wg.Done()
}

// Shutdown stops accepting, lets every connection finish the request it is
// handling (so nothing acknowledged is lost and nothing committed goes
// unacknowledged), wakes those waiting for a request so they close, and
// waits until all are gone or ctx ends, when it closes the rest.
func (t *Tracker) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.closing.Store(true)
	for _, ln := range t.ln {
		ln.Close()
	}
	for c := range t.conns {
		c.wake()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		return ctx.Err()
	}
}

// RemoteIP is the IP address of c's peer.
func RemoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
