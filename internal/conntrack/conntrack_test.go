package conntrack_test

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tes-traffic/tes/internal/conntrack"
)

func TestLimitsAndShutdown(t *testing.T) {
	var open, total, refused atomic.Int64
	tr := &conntrack.Tracker{MaxConns: 3, MaxConnsPerIP: 2,
		Counters: conntrack.Counters{Open: &open, Total: &total, Refused: &refused}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan string, 10)
	served := make(chan struct{}, 10)
	inFlight := make(chan struct{}, 10)
	go tr.Serve(ln, func(c net.Conn) { c.Write([]byte("busy\n")); c.Close() }, func(c *conntrack.Conn) {
		served <- struct{}{}
		r := bufio.NewReader(c)
		for !tr.Closing() {
			c.SetReadDeadline(time.Now().Add(time.Minute))
			if tr.Closing() {
				break
			}
			line, err := r.ReadString('\n')
			if err != nil {
				finished <- "woken"
				return
			}
			c.SetBusy(true)
			inFlight <- struct{}{}
			time.Sleep(200 * time.Millisecond) // a request in flight when Shutdown starts
			c.Write([]byte("done " + line))
			c.SetBusy(false)
		}
		finished <- "closing"
	})
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	<-served
	<-served
	// The third connection from the same IP is over the per-IP limit.
	conns[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(conns[2]).ReadString('\n'); line != "busy\n" {
		t.Fatalf("third connection from one IP: %q, want busy", line)
	}
	if open.Load() != 2 || total.Load() != 2 || refused.Load() != 1 {
		t.Fatalf("counters open %d total %d refused %d", open.Load(), total.Load(), refused.Load())
	}
	// A request in flight finishes during Shutdown; the idle connection is woken.
	conns[0].Write([]byte("req\n"))
	<-inFlight
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(conns[0]).ReadString('\n'); line != "done req\n" {
		t.Fatalf("in-flight request: %q, want it finished", line)
	}
	if open.Load() != 0 {
		t.Fatalf("%d connections still open after Shutdown", open.Load())
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}
