package outbox_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tes1"
)

// TestLostAcknowledgementResendStoresOnce: the server stores a report but
// the connection dies before its OK reaches the client. The sender resends
// the same report_id on a new session; the server answers OK without
// storing anything new, so there is exactly one violation.
func TestLostAcknowledgementResendStoresOnce(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	for _, mode := range []string{"drain", "background"} {
		t.Run(mode, func(t *testing.T) {
			proxy := mustProxy(t, srv.addr, 4) // drop the first DATA's OK
			ob := mustOpen(t, t.TempDir())
			e := mustEnqueue(t, ob, proxy.addr(), "34ABC"+strings.ToUpper(mode[:1]), 120)
			s := fastSender(t, ob, proxy.addr(), filepath.Join(t.TempDir(), "known_servers"))
			if mode == "drain" {
				if err := s.Drain(context.Background()); err != nil {
					t.Fatalf("Drain: %v", err)
				}
				s.Close()
			} else {
				runSender(t, s)
				waitFor(t, "the report to be acknowledged", func() bool {
					return mustGet(t, ob, e.ReportID).State == outbox.StateAcknowledged
				})
			}
			if !proxy.dropped.Load() || proxy.conns.Load() < 2 {
				t.Fatalf("the proxy dropped=%v after %d connections: the lost acknowledgement did not happen", proxy.dropped.Load(), proxy.conns.Load())
			}
			got := mustGet(t, ob, e.ReportID)
			if got.State != outbox.StateAcknowledged || got.Attempts != 2 {
				t.Fatalf("outbox: %s after %d attempts, want acknowledged after 2", got.State, got.Attempts)
			}
			if n := countReport(srv.violations(t), e.ReportID); n != 1 {
				t.Fatalf("the officer store holds %d violations with report_id %s, want exactly 1", n, e.ReportID)
			}
		})
	}
}

// TestStoreAndForward: the server goes away, reports are queued and keep
// their reason; the server comes back on the same address and every report
// arrives exactly once; then the officer's decisions come back.
func TestStoreAndForward(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := mustStartOfficer(t, dir, "127.0.0.1:0")
	addr := srv.addr
	ob := mustOpen(t, t.TempDir())
	s := fastSender(t, ob, addr, filepath.Join(t.TempDir(), "known_servers"))
	runSender(t, s)
	waitFor(t, "online", func() bool { return s.Status().State == outbox.ConnOnline })

	srv.stop()
	var queued []*outbox.Entry
	for i, plate := range []string{"06XYZ99", "AB123", "TR06"} {
		queued = append(queued, mustEnqueue(t, ob, addr, plate, 90+i))
		s.Kick()
	}
	waitFor(t, "the sender to notice the server is gone", func() bool {
		st := s.Status()
		return st.State == outbox.ConnOffline && st.LastError != ""
	})
	waitFor(t, "the reason on every queued report", func() bool {
		for _, e := range queued {
			got := mustGet(t, ob, e.ReportID)
			if !got.State.Pending() || got.LastError == "" {
				return false
			}
		}
		return true
	})

	srv = mustStartOfficer(t, dir, addr)
	waitFor(t, "all three reports to be acknowledged", func() bool {
		for _, e := range queued {
			if mustGet(t, ob, e.ReportID).State != outbox.StateAcknowledged {
				return false
			}
		}
		return true
	})
	list := srv.violations(t)
	for _, e := range queued {
		if n := countReport(list, e.ReportID); n != 1 {
			t.Fatalf("report %s is stored %d times, want exactly once", e.ReportID, n)
		}
	}
	if len(list) != 3 {
		t.Fatalf("the store holds %d violations, want 3", len(list))
	}

	// Decisions come back over STATUS.
	byReport := map[string]int64{}
	for _, v := range list {
		byReport[v.ReportID] = v.ID
	}
	officer := &tes.User{Name: "officer1", Role: tes.RoleOfficer}
	if _, err := srv.srv.Review.Approve(ctx, officer, byReport[queued[0].ReportID]); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.srv.Review.Reject(ctx, officer, byReport[queued[1].ReportID], tes.ReasonPlateUnreadable, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the decisions", func() bool {
		return mustGet(t, ob, queued[0].ReportID).State == outbox.StateApproved &&
			mustGet(t, ob, queued[1].ReportID).State == outbox.StateRejected
	})
	if got := mustGet(t, ob, queued[1].ReportID); got.DecidedReason != tes.ReasonPlateUnreadable {
		t.Fatalf("reject reason %q", got.DecidedReason)
	}
	if got := mustGet(t, ob, queued[0].ReportID); got.DecidedPoints != 20 {
		t.Fatalf("approved with %d points, want 20 for 90 km/h", got.DecidedPoints)
	}
	if got := mustGet(t, ob, queued[2].ReportID); got.State != outbox.StateAcknowledged {
		t.Fatalf("the undecided report is %s", got.State)
	}
	if s.Status().Decisions != outbox.SupportYes {
		t.Fatalf("decisions support = %q", s.Status().Decisions)
	}
}

// TestChangedKeyBlocksSending: another server (another key) answers on the
// pinned address. The sender sends nothing to it, keeps the reports queued
// and reports both fingerprints; when the real server is back, they arrive
// there exactly once.
func TestChangedKeyBlocksSending(t *testing.T) {
	realDir := t.TempDir()
	real := mustStartOfficer(t, realDir, "127.0.0.1:0")
	addr := real.addr
	realFP := real.srv.TES1.Fingerprint()
	ob := mustOpen(t, t.TempDir())
	pinsPath := filepath.Join(t.TempDir(), "known_servers")
	s := fastSender(t, ob, addr, pinsPath)
	runSender(t, s)
	first := mustEnqueue(t, ob, addr, "FIRST1", 70)
	s.Kick()
	waitFor(t, "the first report", func() bool { return mustGet(t, ob, first.ReportID).State == outbox.StateAcknowledged })
	if st := s.Status(); st.Fingerprint != realFP || !st.FirstUse {
		t.Fatalf("status %+v: want the real key, pinned on first use", st)
	}

	real.stop()
	// Until the sender notices its session is gone, a report could be
	// written to the dead connection (an attempt, though nothing arrives).
	waitFor(t, "the sender to notice the server stopped", func() bool { return s.Status().State != outbox.ConnOnline })
	impostor := mustStartOfficer(t, t.TempDir(), addr)
	fakeFP := impostor.srv.TES1.Fingerprint()
	a := mustEnqueue(t, ob, addr, "QUEUED1", 80)
	b := mustEnqueue(t, ob, addr, "QUEUED2", 81)
	s.Kick()
	waitFor(t, "the key-changed state", func() bool { return s.Status().State == outbox.ConnKeyChanged })
	st := s.Status()
	if st.Changed == nil || st.Changed.Pinned != realFP || st.Changed.Seen != fakeFP || st.Changed.File != pinsPath {
		t.Fatalf("changed = %+v: want pinned %s, seen %s, file %s", st.Changed, realFP, fakeFP, pinsPath)
	}
	if !strings.Contains(st.LastError, "CHANGED") {
		t.Fatalf("last error %q does not say the key changed", st.LastError)
	}
	waitFor(t, "the reason on the queued reports", func() bool {
		return strings.Contains(mustGet(t, ob, a.ReportID).LastError, "CHANGED")
	})
	if n := len(impostor.violations(t)); n != 0 {
		t.Fatalf("the other server received %d reports", n)
	}
	for _, e := range []*outbox.Entry{a, b} {
		if got := mustGet(t, ob, e.ReportID); got.State != outbox.StateQueued || got.Attempts != 0 {
			t.Fatalf("report %s is %s after %d attempts: want queued, never written", got.Plate, got.State, got.Attempts)
		}
	}

	impostor.stop()
	real = mustStartOfficer(t, realDir, addr)
	waitFor(t, "the queued reports at the real server", func() bool {
		return mustGet(t, ob, a.ReportID).State == outbox.StateAcknowledged && mustGet(t, ob, b.ReportID).State == outbox.StateAcknowledged
	})
	list := real.violations(t)
	if countReport(list, a.ReportID) != 1 || countReport(list, b.ReportID) != 1 || len(list) != 3 {
		t.Fatalf("the real server holds %d violations; each queued report must be there once", len(list))
	}
}

// TestDrainRecordsRefusals: a report the server refuses (here: the account
// may not report) is marked refused with the server's reason and never
// resent; Drain still succeeds.
func TestDrainRecordsRefusals(t *testing.T) {
	ctx := context.Background()
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	if _, err := srv.srv.Auth.CreateUser(ctx, "test", "officer1", tes.RoleOfficer, "pw-officer-1", false); err != nil {
		t.Fatal(err)
	}
	ob := mustOpen(t, t.TempDir())
	e, err := ob.Enqueue(ctx, "officer1", srv.addr, &tes.Report{Plate: "AB123", Speed: 99})
	if err != nil {
		t.Fatal(err)
	}
	s, err := outbox.NewSender(outbox.SenderConfig{Outbox: ob, Server: srv.addr, User: "officer1", Password: "pw-officer-1",
		Pins: pins.Open(filepath.Join(t.TempDir(), "known_servers"))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	got := mustGet(t, ob, e.ReportID)
	if got.State != outbox.StateRefused || got.LastError != tes1.ReplyUnauthorized {
		t.Fatalf("got %s (%q), want refused with %q", got.State, got.LastError, tes1.ReplyUnauthorized)
	}
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
	if got := mustGet(t, ob, e.ReportID); got.Attempts != 1 {
		t.Fatalf("a refused report was sent %d times", got.Attempts)
	}
}

// TestDrainUnreachable: with nothing listening, Drain says the server is
// unreachable and the report stays queued with that reason.
func TestDrainUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ob := mustOpen(t, t.TempDir())
	e := mustEnqueue(t, ob, addr, "AB123", 120)
	s := fastSender(t, ob, addr, filepath.Join(t.TempDir(), "known_servers"))
	defer s.Close()
	err = s.Drain(context.Background())
	if err == nil {
		t.Fatal("Drain succeeded with no server")
	}
	if msg := outbox.Describe(err); !strings.Contains(msg, "unreachable") {
		t.Fatalf("Describe = %q, want it to say unreachable", msg)
	}
	got := mustGet(t, ob, e.ReportID)
	if got.State != outbox.StateQueued || !strings.Contains(got.LastError, "unreachable") || got.Attempts != 0 {
		t.Fatalf("after a failed drain: %+v", got)
	}
}

// TestBadPasswordStopsSender: a refused sign-in stops the sender (retrying
// would lock the account) and keeps the reports queued.
func TestBadPasswordStopsSender(t *testing.T) {
	srv := mustStartOfficer(t, t.TempDir(), "127.0.0.1:0")
	ob := mustOpen(t, t.TempDir())
	e := mustEnqueue(t, ob, srv.addr, "AB123", 120)
	s, err := outbox.NewSender(outbox.SenderConfig{Outbox: ob, Server: srv.addr, User: policeUser, Password: "wrong-password",
		Pins: pins.Open(filepath.Join(t.TempDir(), "known_servers")), MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runSender(t, s)
	waitFor(t, "login-failed", func() bool { return s.Status().State == outbox.ConnLoginFailed })
	if !strings.Contains(s.Status().LastError, "wrong user name or password") {
		t.Fatalf("last error %q", s.Status().LastError)
	}
	if got := mustGet(t, ob, e.ReportID); got.State != outbox.StateQueued {
		t.Fatalf("report is %s", got.State)
	}
	if n := srv.srv.TES1.Stats.LoginsFailed.Load(); n != 1 {
		t.Fatalf("%d failed sign-ins, want exactly 1", n)
	}
}

// TestServerWithoutStatus runs against a TES/1 server that does not know
// STATUS, as the original does not: reports are delivered and stay
// "acknowledged", and the sender stops asking.
func TestServerWithoutStatus(t *testing.T) {
	ctx := context.Background()
	master := make([]byte, 32)
	rand.Read(master)
	keys, err := atrest.New(master)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	as := auth.New(store, log)
	if _, err := as.CreateUser(ctx, "test", policeUser, tes.RolePolice, policePass, false); err != nil {
		t.Fatal(err)
	}
	key, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := ingest.New(store, log, 0, nil)
	srv, err := tes1.NewServer(tes1.Config{Key: key, Auth: as, Ingest: b, Log: log}) // no Statuses
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		b.Close()
		store.Close()
	})

	ob := mustOpen(t, t.TempDir())
	addr := ln.Addr().String()
	s := fastSender(t, ob, addr, filepath.Join(t.TempDir(), "known_servers"))
	runSender(t, s)
	e := mustEnqueue(t, ob, addr, "AB123", 120)
	s.Kick()
	waitFor(t, "acknowledged and no STATUS support", func() bool {
		return mustGet(t, ob, e.ReportID).State == outbox.StateAcknowledged && s.Status().Decisions == outbox.SupportNo
	})
	e2 := mustEnqueue(t, ob, addr, "XY999", 130)
	s.Kick()
	waitFor(t, "a report after the probe", func() bool { return mustGet(t, ob, e2.ReportID).State == outbox.StateAcknowledged })
	list, _, err := store.Violations(ctx, tes.ViolationFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("%d violations, %v: want 2", len(list), err)
	}
}
