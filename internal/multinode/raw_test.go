package multinode_test

import (
	"net"
	"testing"
	"time"

	"github.com/tes-traffic/tes/internal/tes1"
)

// rawConn is a TES/1 connection driven message by message, to send what
// the Go client would not (a SESSION message that was already used).
type rawConn struct {
	c  net.Conn
	fr *tes1.FrameReader
}

func (r *rawConn) close() { r.c.Close() }

// rawHandshake connects and returns the connection and the server key PEM
// from the HANDSHAKE the server sends first.
func rawHandshake(t *testing.T, addr string) (*rawConn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawConn{c: c, fr: tes1.NewFrameReader(c, 0)}
	m := r.read(t)
	pem, ok := m.PayloadString()
	if m.Type != tes1.TypeHandshake || !ok {
		t.Fatalf("first message %q, want HANDSHAKE", m.Type)
	}
	return r, pem
}

func (r *rawConn) read(t *testing.T) *tes1.Message {
	t.Helper()
	frame, err := r.fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	m, err := tes1.ParseMessage(frame)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rawRequest writes msg and returns the reply's type and text.
func rawRequest(t *testing.T, r *rawConn, msg []byte) (status, text string) {
	t.Helper()
	if _, err := r.c.Write(msg); err != nil {
		t.Fatal(err)
	}
	m := r.read(t)
	text, _ = m.PayloadString()
	return m.Type, text
}
