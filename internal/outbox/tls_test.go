package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// mustStartTLSOfficer is mustStartOfficer with the TLS suite on tlsAddr
// as well.
func mustStartTLSOfficer(t testing.TB, dir, addr, tlsAddr string) *officerServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var srv *officer.Server
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		srv, err = officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: dir}, Listen: addr, ListenTLS: tlsAddr,
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

// mustEnrollDevice enrols a new device of police1 with the officer.
func mustEnrollDevice(t testing.TB, o *officerServer) *tlssuite.Device {
	t.Helper()
	root, err := ca.Load(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := &enroll.Service{Devices: o.srv.Store.(tes.DeviceStore), Users: o.srv.Store, CA: root}
	tok, err := svc.Create(context.Background(), policeUser, "test", time.Hour, o.srv.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tlssuite.Enroll(context.Background(), tok.String(), filepath.Join(t.TempDir(), "device"))
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	return dev
}

// tlsSender is fastSender choosing its suite by DialConfig: the password
// is given only with allowLegacy (TES/1 would need it). tlsAddr, when not
// empty, overrides the device's TLS address.
func tlsSender(t testing.TB, ob *outbox.Outbox, server string, dev *tlssuite.Device, allowLegacy bool, tlsAddr ...string) *outbox.Sender {
	t.Helper()
	p := pins.Open(filepath.Join(t.TempDir(), "known_servers"))
	cfg := outbox.SenderConfig{Outbox: ob, Server: server, User: policeUser, Pins: p,
		Dial: outbox.NewDialer(outbox.DialConfig{Server: server, Pins: p, Device: dev, AllowLegacy: allowLegacy, TLSAddr: strings.Join(tlsAddr, ""),
			Timeout: 10 * time.Second, StatusWait: 3 * time.Second}),
		Timeout: 10 * time.Second, MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond, PollInterval: 100 * time.Millisecond, StatusWait: 3 * time.Second}
	if allowLegacy {
		cfg.Password = policePass
	}
	s, err := outbox.NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustViolation(t testing.TB, o *officerServer, reportID string) *tes.Violation {
	t.Helper()
	for _, v := range o.violations(t) {
		if v.ReportID == reportID {
			return v
		}
	}
	t.Fatalf("report %s is not stored", reportID)
	return nil
}

// TestSenderOverTLS: an enrolled client's sender reports over the TLS
// suite with no password at all; the report is stored once with the
// device's evidence, and the officer's decision comes back over STATUS.
func TestSenderOverTLS(t *testing.T) {
	ctx := context.Background()
	srv := mustStartTLSOfficer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	dev := mustEnrollDevice(t, srv)
	ob := mustOpen(t, t.TempDir())
	s := tlsSender(t, ob, srv.addr, dev, false)
	runSender(t, s)
	e := mustEnqueue(t, ob, srv.addr, "TLS1", 120)
	s.Kick()
	waitFor(t, "the report to be acknowledged", func() bool { return mustGet(t, ob, e.ReportID).State == outbox.StateAcknowledged })

	v := mustViolation(t, srv, e.ReportID)
	if v.Suite != tes.SuiteTLS || v.Evidence.DeviceID != dev.ID || !v.SigVerified || v.ReportedBy != policeUser {
		t.Fatalf("stored %+v: want suite tls, device %s, signature verified, reported by %s", v, dev.ID, policeUser)
	}
	st := s.Status()
	want := outbox.ConnInfo{Suite: tes.SuiteTLS, Encryption: "TLS 1.3, device " + dev.ID + ", Ed25519", Signature: outbox.TLSSignature,
		CAHash: dev.CAHash, Device: dev.ID}
	got := st.Suite
	if got.Fingerprint == "" || !strings.HasPrefix(got.Fingerprint, "SHA256:") {
		t.Fatalf("server certificate fingerprint %q", got.Fingerprint)
	}
	got.Fingerprint = ""
	if got != want {
		t.Fatalf("suite = %+v, want %+v", got, want)
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections: an enrolled client must not use TES/1", n)
	}

	if _, err := srv.srv.Review.Approve(ctx, &tes.User{Name: "officer1", Role: tes.RoleOfficer}, v.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the approval over STATUS", func() bool { return mustGet(t, ob, e.ReportID).State == outbox.StateApproved })
	if st := s.Status(); st.Decisions != outbox.SupportYes {
		t.Fatalf("decisions support = %q", st.Decisions)
	}
}

// TestSenderNoDowngrade: the TLS port goes dark while TES/1 stays up. The
// enrolled sender keeps the reports queued and says why, sending nothing
// over TES/1; with --allow-legacy they go over TES/1 with a warning, and
// once the TLS suite is back the sender returns to it.
func TestSenderNoDowngrade(t *testing.T) {
	dir := t.TempDir()
	srv := mustStartTLSOfficer(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	addr := srv.addr
	dev := mustEnrollDevice(t, srv)
	ob := mustOpen(t, t.TempDir())
	s := tlsSender(t, ob, addr, dev, false)
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })
	waitFor(t, "online over TLS", func() bool { return s.Status().State == outbox.ConnOnline })

	// The TLS suite moves to another port: the device's is closed.
	srv.stop()
	srv = mustStartTLSOfficer(t, dir, addr, "127.0.0.1:0")
	var queued []*outbox.Entry
	for _, plate := range []string{"DARK1", "DARK2"} {
		queued = append(queued, mustEnqueue(t, ob, addr, plate, 99))
		s.Kick()
	}
	waitFor(t, "the no-downgrade state", func() bool { return s.Status().State == outbox.ConnNoDowngrade })
	if msg := s.Status().LastError; !strings.Contains(msg, "TLS suite unreachable") || !strings.Contains(msg, "not falling back to TES/1 (the legacy suite)") ||
		!strings.Contains(msg, "--allow-legacy") {
		t.Fatalf("last error %q does not say the TLS suite is unreachable and TES/1 is not used", msg)
	}
	waitFor(t, "the reason on the queued reports", func() bool {
		return strings.Contains(mustGet(t, ob, queued[1].ReportID).LastError, "not falling back to TES/1")
	})
	for _, e := range queued {
		if got := mustGet(t, ob, e.ReportID); got.State != outbox.StateQueued {
			t.Fatalf("report %s is %s, want queued", got.Plate, got.State)
		}
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections while the TLS suite was down: that is a downgrade", n)
	}
	if n := len(srv.violations(t)); n != 0 {
		t.Fatalf("%d reports arrived", n)
	}

	// The operator allows the legacy suite: the same outbox drains over
	// TES/1, with a warning. (One sender per user and server at a time.)
	stop()
	<-stopped
	legacy := tlsSender(t, ob, addr, dev, true)
	if err := legacy.Drain(context.Background()); err != nil {
		t.Fatalf("Drain with --allow-legacy: %v", err)
	}
	st := legacy.Status()
	legacy.Close()
	if st.Suite.Suite != tes.SuiteTES1 || !strings.Contains(st.Suite.Warning, "--allow-legacy") || st.Suite.Encryption != outbox.TES1Encryption {
		t.Fatalf("suite after the fallback: %+v", st.Suite)
	}
	for _, e := range queued {
		if got := mustGet(t, ob, e.ReportID); got.State != outbox.StateAcknowledged {
			t.Fatalf("report %s is %s after the fallback, want acknowledged", got.Plate, got.State)
		}
		if v := mustViolation(t, srv, e.ReportID); v.Suite != tes.SuiteTES1 {
			t.Fatalf("report %s came over %q, want tes1", e.Plate, v.Suite)
		}
	}

	// A running sender that fell back goes back to the TLS suite when it
	// answers again, though its TES/1 session never broke: the TLS port
	// is reached through a switch that refuses connections until turned on.
	sw := mustSwitch(t, srv.srv.TLSAddr().String())
	back := tlsSender(t, ob, addr, dev, true, sw.addr())
	runSender(t, back)
	waitFor(t, "online over TES/1", func() bool {
		st := back.Status()
		return st.State == outbox.ConnOnline && st.Suite.Suite == tes.SuiteTES1
	})
	tes1Conns := srv.srv.TES1.Stats.ConnsTotal.Load()
	sw.on.Store(true)
	waitFor(t, "online over TLS again", func() bool {
		st := back.Status()
		return st.State == outbox.ConnOnline && st.Suite.Suite == tes.SuiteTLS && st.Suite.Warning == ""
	})
	e := mustEnqueue(t, ob, addr, "BACK1", 101)
	back.Kick()
	waitFor(t, "the report over TLS", func() bool { return mustGet(t, ob, e.ReportID).State == outbox.StateAcknowledged })
	if v := mustViolation(t, srv, e.ReportID); v.Suite != tes.SuiteTLS || v.Evidence.DeviceID != dev.ID {
		t.Fatalf("report after the TLS suite came back: suite %q, device %q", v.Suite, v.Evidence.DeviceID)
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != tes1Conns {
		t.Fatalf("%d more TES/1 connections once the TLS suite answered", n-tes1Conns)
	}
}

// tcpSwitch forwards connections to target while on; while off it closes
// them at once, as a middlebox blocking the port would.
type tcpSwitch struct {
	ln     net.Listener
	target string
	on     atomic.Bool
	wg     sync.WaitGroup
}

func mustSwitch(t testing.TB, target string) *tcpSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpSwitch{ln: ln, target: target}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !s.on.Load() {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			s.wg.Add(2)
			go func() { defer s.wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer s.wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *tcpSwitch) addr() string { return s.ln.Addr().String() }

// TestSenderDeviceRevoked: a revoked device is refused at the handshake;
// the sender stops with a clear state and every report stays queued.
func TestSenderDeviceRevoked(t *testing.T) {
	dir := t.TempDir()
	srv := mustStartTLSOfficer(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	addr, tlsAddr := srv.addr, srv.srv.TLSAddr().String()
	dev := mustEnrollDevice(t, srv)
	ob := mustOpen(t, t.TempDir())
	s := tlsSender(t, ob, addr, dev, false)
	runSender(t, s)
	first := mustEnqueue(t, ob, addr, "REV1", 90)
	s.Kick()
	waitFor(t, "the first report", func() bool { return mustGet(t, ob, first.ReportID).State == outbox.StateAcknowledged })

	if err := srv.srv.Store.(tes.DeviceStore).RevokeDevice(context.Background(), dev.ID, "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	srv.stop() // the open connection ends; the next handshake is refused
	srv = mustStartTLSOfficer(t, dir, addr, tlsAddr)
	kept := mustEnqueue(t, ob, addr, "REV2", 91)
	s.Kick()
	waitFor(t, "the device-revoked state", func() bool { return s.Status().State == outbox.ConnDeviceRevoked })
	if msg := s.Status().LastError; !strings.Contains(strings.ToLower(msg), "device revoked: ask an admin to enrol this client again") {
		t.Fatalf("last error %q", msg)
	}
	waitFor(t, "the reason on the queued report", func() bool {
		return strings.Contains(mustGet(t, ob, kept.ReportID).LastError, "Device revoked")
	})
	if got := mustGet(t, ob, kept.ReportID); got.State != outbox.StateQueued {
		t.Fatalf("report after revocation is %s, want queued", got.State)
	}
	s.Kick() // a kick does not restart a stopped sender
	if n := countReport(srv.violations(t), kept.ReportID); n != 0 {
		t.Fatalf("the report queued after revocation is stored %d times", n)
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections by a revoked device", n)
	}
	if st := s.Status(); st.State != outbox.ConnDeviceRevoked {
		t.Fatalf("state after a kick: %s", st.State)
	}

	// --allow-legacy is for a TLS suite that does not answer, not for one
	// that refuses the device.
	legacy := tlsSender(t, ob, addr, dev, true)
	err := legacy.Drain(context.Background())
	st := legacy.Status()
	legacy.Close()
	if !errors.Is(err, tlssuite.ErrDeviceRefused) || st.State != outbox.ConnDeviceRevoked {
		t.Fatalf("Drain with --allow-legacy: %v (state %s), want the device refused", err, st.State)
	}
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections by a revoked device with --allow-legacy", n)
	}
	if got := mustGet(t, ob, kept.ReportID); got.State != outbox.StateQueued {
		t.Fatalf("report after revocation is %s, want queued", got.State)
	}
}

// TestSenderRevokedOnOpenConnection: the device is revoked while its
// connection is open; the server answers the next report "Unauthorized".
// That is about the device, not the report: it stays queued instead of
// being marked refused.
func TestSenderRevokedOnOpenConnection(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := atrest.New(bytes.Repeat([]byte{7}, atrest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateUser(ctx, &tes.User{Name: policeUser, Role: tes.RolePolice, PasswordHash: "-"}); err != nil {
		t.Fatal(err)
	}
	root, _, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := root.LoadOrIssueServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	batcher := ingest.New(store, slog.New(slog.DiscardHandler), 0, nil)
	defer batcher.Close()
	srv, err := tlssuite.NewServer(tlssuite.Config{CA: root, ServerCert: cert, Devices: store, Users: store, Ingest: batcher,
		Statuses: store, RecheckAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	tok, err := (&enroll.Service{Devices: store, Users: store, CA: root}).Create(ctx, policeUser, "test", time.Hour, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tlssuite.Enroll(ctx, tok.String(), filepath.Join(t.TempDir(), "device"))
	if err != nil {
		t.Fatal(err)
	}

	// The TES/1 address is on the device's host and nothing listens there.
	server := "127.0.0.1:1"
	ob := mustOpen(t, t.TempDir())
	s := tlsSender(t, ob, server, dev, false)
	first := mustEnqueue(t, ob, server, "OPEN1", 90)
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if got := mustGet(t, ob, first.ReportID); got.State != outbox.StateAcknowledged {
		t.Fatalf("first report: %s", got.State)
	}
	if err := store.RevokeDevice(ctx, dev.ID, "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	kept := mustEnqueue(t, ob, server, "OPEN2", 91)
	err = s.Drain(ctx)
	st := s.Status()
	s.Close()
	if !errors.Is(err, tlssuite.ErrDeviceRefused) || st.State != outbox.ConnDeviceRevoked {
		t.Fatalf("Drain after revocation: %v (state %s), want the device refused", err, st.State)
	}
	if got := mustGet(t, ob, kept.ReportID); got.State != outbox.StateQueued || !strings.Contains(got.LastError, "Device revoked") {
		t.Fatalf("report after revocation: %s (%q), want queued with the reason", got.State, got.LastError)
	}
	if n, _ := store.CountByStatus(ctx); n[tes.StatusPending] != 1 {
		t.Fatalf("%d reports stored, want only the first", n[tes.StatusPending])
	}
}
