package policeui

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
)

// fakeClock is a settable clock for the session store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSessionLifecycle: an idle session stops working for its browser but
// its sender keeps going while reports are queued, and stops once they are
// delivered, or at the absolute timeout; a new sign-in of the same user
// supersedes it.
func TestSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	ob, err := outbox.Open(ctx, filepath.Join(t.TempDir(), outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := ln.Addr().String()
	ln.Close() // nothing listens: the senders stay offline

	clock := &fakeClock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	st := newSessionStore(clock.now)
	start := func(user string) (*session, string) {
		t.Helper()
		snd, err := outbox.NewSender(outbox.SenderConfig{Outbox: ob, Server: server, User: user, Password: "pw",
			Pins: pins.Open(filepath.Join(t.TempDir(), "known_servers")), MinBackoff: time.Hour, MaxBackoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(context.Background())
		s := &session{user: user, server: server, sender: snd, stop: stop, done: make(chan struct{})}
		go func() { defer close(s.done); snd.Run(sctx) }()
		return s, st.add(s)
	}
	request := func(id string) *http.Request {
		r, _ := http.NewRequest("GET", "/report", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
		return r
	}
	stopped := func(s *session) bool {
		select {
		case <-s.done:
			return true
		default:
			return false
		}
	}
	defer st.closeAll()

	s1, id1 := start("police1")
	if st.get(request(id1), true) != s1 {
		t.Fatal("a fresh session is not found by its cookie")
	}
	flipped := []byte(id1)
	flipped[10] ^= 1 // another character of the base64url alphabet
	if st.get(request(string(flipped)), false) != nil || st.get(request(id1+"A"), false) != nil || st.get(request("not-an-id"), false) != nil {
		t.Fatal("a wrong cookie found a session")
	}
	e, err := ob.Enqueue(ctx, "police1", server, &tes.Report{Plate: "Q1", Speed: 90})
	if err != nil {
		t.Fatal(err)
	}

	// Idle past the timeout: the cookie stops working; the sender goes on
	// because a report is queued.
	clock.add(IdleTimeout)
	if st.get(request(id1), false) != nil {
		t.Fatal("an idle session still works")
	}
	st.sweepOnce(ctx, ob)
	if stopped(s1) || len(st.orphans) != 1 {
		t.Fatalf("the sender of an expired session with a queued report stopped (orphans %d)", len(st.orphans))
	}

	// Delivered: the next sweep stops it.
	ob.Claim(ctx, e.ID, time.Now().Add(time.Minute), time.Minute)
	if err := ob.Acknowledge(ctx, e.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.sweepOnce(ctx, ob)
	if !stopped(s1) || len(st.orphans) != 0 {
		t.Fatal("the orphaned sender did not stop once its queue was empty")
	}

	// With a report that never goes out, the absolute timeout stops it.
	if _, err := ob.Enqueue(ctx, "police2", server, &tes.Report{Plate: "Q2", Speed: 90}); err != nil {
		t.Fatal(err)
	}
	s2, id2 := start("police2")
	for range 30 { // used every 25 minutes: never idle, but 12.5 h old
		clock.add(25 * time.Minute)
		if st.get(request(id2), true) == nil {
			break
		}
	}
	st.sweepOnce(ctx, ob)
	if !stopped(s2) {
		t.Fatal("a sender ran past the absolute timeout")
	}

	// A new sign-in of the same user and server supersedes an orphan.
	s3, id3 := start("police2")
	clock.add(IdleTimeout)
	st.get(request(id3), false)
	if len(st.orphans) != 1 {
		t.Fatalf("orphans = %d, want 1", len(st.orphans))
	}
	s4, _ := start("police2")
	select {
	case <-s3.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the superseded orphan did not stop")
	}
	if stopped(s4) {
		t.Fatal("the new session's sender stopped")
	}
}

// TestCookiePrefix: over HTTPS (Config.Secure, or TLS on the request) the
// cookies are named __Host-..., and the session is read under that name
// only, so a cookie of the bare name planted over plain HTTP is no session.
func TestCookiePrefix(t *testing.T) {
	plain := httptest.NewRequest(http.MethodGet, "http://police.example/", nil)
	tlsReq := httptest.NewRequest(http.MethodGet, "https://police.example/", nil)
	for _, tc := range []struct {
		secure bool
		r      *http.Request
		name   string
	}{
		{false, plain, "tes_police_session"},
		{true, plain, "__Host-tes_police_session"},
		{false, tlsReq, "__Host-tes_police_session"},
	} {
		ui := &UI{cfg: Config{Secure: tc.secure}}
		c := ui.cookie(tc.r, sessionCookie, "v", 0)
		if c.Name != tc.name || c.Secure != (tc.name != "tes_police_session") || c.Path != "/" || c.Domain != "" {
			t.Errorf("secure=%v tls=%v: cookie %+v, want name %s", tc.secure, tc.r.TLS != nil, c, tc.name)
		}
	}

	st := newSessionStore(time.Now)
	st.secure = true
	id := st.add(&session{user: "police1", server: "127.0.0.1:9999"})
	for name, want := range map[string]bool{"__Host-tes_police_session": true, "tes_police_session": false} {
		r := httptest.NewRequest(http.MethodGet, "http://police.example/", nil)
		r.AddCookie(&http.Cookie{Name: name, Value: id})
		if got := st.get(r, false) != nil; got != want {
			t.Errorf("session under cookie %s found = %v, want %v", name, got, want)
		}
	}
}
