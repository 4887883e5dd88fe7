package tlssuite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// TestEnrollAndReport: a device enrols with a join token, reports over
// mutual TLS, and the report is stored with its device-signed evidence.
func TestEnrollAndReport(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()
	if dev.User != "police1" || dev.CAHash != e.ca.Hash() || dev.Addr != e.addr {
		t.Fatalf("device = %+v", dev)
	}
	if st, err := os.Stat(filepath.Join(dev.Dir, tlssuite.DeviceKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("device key file: %v, %v", err, st)
	}
	if again, err := tlssuite.LoadDevice(dev.Dir); err != nil || again.ID != dev.ID || !again.Key.Equal(dev.Key) {
		t.Fatalf("LoadDevice: %+v, %v", again, err)
	}
	stored, err := e.store.Device(context.Background(), dev.ID)
	if err != nil || stored.User != "police1" || !bytes.Equal(stored.Cert, dev.Cert.Raw) {
		t.Fatalf("stored device: %+v, %v", stored, err)
	}

	c := e.mustDial(dev)
	r := newReport("34abc123", 120)
	if err := c.Send(context.Background(), r); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r.ReportID == "" {
		t.Fatal("Send did not set a report_id")
	}
	vs, _, err := e.store.Violations(context.Background(), tes.ViolationFilter{})
	if err != nil || len(vs) != 1 {
		t.Fatalf("violations: %v, %v", vs, err)
	}
	v := vs[0]
	if v.Suite != tes.SuiteTLS || v.ReportedBy != "police1" || v.Plate != "34ABC123" || !v.SigVerified ||
		v.Evidence.DeviceID != dev.ID || !bytes.Equal(v.Evidence.PublicKey, dev.Cert.Raw) ||
		v.Evidence.KeyFingerprint != ca.Fingerprint(dev.Cert.RawSubjectPublicKeyInfo) {
		t.Fatalf("stored violation = %+v", v)
	}
	f, err := evidence.Decode(v.Evidence.Signed)
	if err != nil || f.Plate != "34ABC123" || f.Speed != 120 || f.DeviceID != dev.ID || f.User != "police1" || f.ReportID != r.ReportID {
		t.Fatalf("stored signed bytes decode to %+v, %v", f, err)
	}
	if !ed25519.Verify(dev.Key.Public().(ed25519.PublicKey), v.Evidence.Signed, v.Evidence.Signature) {
		t.Fatal("stored signature does not verify with the device key")
	}
	if st := evidence.Describe(v); !st.Verified || !st.FieldsMatch {
		t.Fatalf("Describe = %+v", st)
	}

	// A resend after a lost acknowledgement is acknowledged and stored once.
	if err := c.Send(context.Background(), r); err != nil {
		t.Fatalf("resend: %v", err)
	}
	c2 := e.mustDial(dev)
	if err := c2.Send(context.Background(), r); err != nil {
		t.Fatalf("resend on a new connection: %v", err)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d violations after resends, want 1", n)
	}
	sts, err := c.Statuses(context.Background(), []string{r.ReportID})
	if err != nil || len(sts) != 1 || sts[0].Status != tes.StatusPending {
		t.Fatalf("Statuses = %+v, %v", sts, err)
	}
}

// TestNoClientCertificate: a client without a certificate is refused at the
// handshake; nothing reaches the protocol.
func TestNoClientCertificate(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()
	pool := x509.NewCertPool()
	pool.AddCert(dev.CA)
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: ca.ServerName, NextProtos: []string{tlssuite.ALPNReport}})
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Write(tes1.AppendMessage(nil, tes1.TypeData, `{"plate": "AB1", "speed": 99}`, "x"))
		if err == nil {
			_, err = io.ReadAll(conn)
		}
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("no client certificate: %v, want a certificate_required alert", err)
	}
	if n := e.count(); n != 0 {
		t.Fatalf("%d violations stored", n)
	}
}

// TestRevokedDevice: a revoked device is refused at the handshake, and a
// connection that was open when it was revoked is refused at its next report.
func TestRevokedDevice(t *testing.T) {
	e := newEnv(t, func(c *tlssuite.Config) { c.RecheckAfter = time.Nanosecond })
	dev := e.mustEnroll()
	open := e.mustDial(dev)
	if err := open.Send(context.Background(), newReport("AB1", 90)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RevokeDevice(context.Background(), dev.ID, "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err := tlssuite.Dial(context.Background(), "", dev)
	if !errors.Is(err, tlssuite.ErrDeviceRefused) {
		t.Fatalf("Dial with a revoked device = %v, want ErrDeviceRefused", err)
	}
	if err := open.Send(context.Background(), newReport("AB2", 91)); !tes1.IsReply(err, tes1.ReplyUnauthorized) {
		t.Fatalf("report on a connection opened before the revocation = %v, want %q", err, tes1.ReplyUnauthorized)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d violations, want only the one before the revocation", n)
	}
	if !e.waitRefusal("Device Revoked") {
		t.Errorf("refusals %q do not record the revoked device", e.refusals())
	}
}

// TestForeignCertificate: a device certificate from another CA, and a
// second certificate for an enrolled device's ID, are both refused.
func TestForeignCertificate(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()

	other, err := ca.New(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := *dev
	forged.Cert = mustIssue(t, other, dev.Key, dev.ID, dev.User)
	if _, err := tlssuite.Dial(context.Background(), "", &forged); !errors.Is(err, tlssuite.ErrDeviceRefused) {
		t.Errorf("certificate from another CA: %v, want ErrDeviceRefused", err)
	}
	// Same CA, same device ID, another key (as if the CA key leaked into a
	// second issuance): not the registered certificate.
	_, key2, _ := ed25519.GenerateKey(nil)
	forged.Key, forged.Cert = key2, mustIssue(t, e.ca, key2, dev.ID, dev.User)
	if _, err := tlssuite.Dial(context.Background(), "", &forged); !errors.Is(err, tlssuite.ErrDeviceRefused) {
		t.Errorf("second certificate for a device: %v, want ErrDeviceRefused", err)
	}
	if !e.waitRefusal("Certificate Not Registered") {
		t.Errorf("refusals %q do not record the unregistered certificate", e.refusals())
	}
}

func mustIssue(t *testing.T, c *ca.CA, key ed25519.PrivateKey, id, user string) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	cert, err := c.IssueDevice(csr, id, user)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestTLS12Refused: the suite speaks TLS 1.3 only.
func TestTLS12Refused(t *testing.T) {
	e := newEnv(t)
	for _, proto := range []string{tlssuite.ALPNReport, tlssuite.ALPNEnroll} {
		conn, err := tls.Dial("tcp", e.addr, &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err == nil {
			conn.Close()
			t.Fatalf("%s: a TLS 1.2 handshake succeeded", proto)
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("%s: TLS 1.2 refused with %v, want a protocol_version alert", proto, err)
		}
	}
}

// recordingServer is a TLS server with the wrong CA: it records every
// byte it receives on the wire and every byte of application data.
type recordingServer struct {
	addr string
	mu   sync.Mutex
	raw  bytes.Buffer
	app  bytes.Buffer
	hs   []error
	done chan struct{}
}

type teeConn struct {
	net.Conn
	s *recordingServer
}

func (c teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.mu.Lock()
	c.s.raw.Write(p[:n])
	c.s.mu.Unlock()
	return n, err
}

func newRecordingServer(t *testing.T) *recordingServer {
	rogue, err := ca.New(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := rogue.LoadOrIssueServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &recordingServer{addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(teeConn{nc, s}, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			NextProtos: []string{tlssuite.ALPNEnroll}})
		err = tc.Handshake()
		s.mu.Lock()
		s.hs = append(s.hs, err)
		s.mu.Unlock()
		buf := make([]byte, 4096)
		for {
			n, err := tc.Read(buf)
			s.mu.Lock()
			s.app.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

// TestEnrollWrongCAHash: a server whose CA does not match the token's hash
// is refused by the client before the client sends anything: the server
// receives no application data at all, and the token's ID, secret and proof
// appear nowhere in what it received.
func TestEnrollWrongCAHash(t *testing.T) {
	e := newEnv(t)
	tok := e.mustToken("police1", time.Hour)
	rogue := newRecordingServer(t)
	dir := t.TempDir()
	_, err := tlssuite.EnrollWith(context.Background(), tok.String(), dir, tlssuite.Options{Addr: rogue.addr})
	if !errors.Is(err, tlssuite.ErrCAMismatch) {
		t.Fatalf("Enroll against the wrong CA = %v, want ErrCAMismatch", err)
	}
	<-rogue.done
	rogue.mu.Lock()
	defer rogue.mu.Unlock()
	if rogue.app.Len() != 0 {
		t.Fatalf("the rogue server read %d bytes of application data: %q", rogue.app.Len(), rogue.app.Bytes())
	}
	if len(rogue.hs) != 1 || rogue.hs[0] == nil {
		t.Fatalf("the rogue server's handshake completed (%v): the client must abort it", rogue.hs)
	}
	secret := base64.RawURLEncoding.EncodeToString(tok.Secret[:])
	for _, s := range [][]byte{[]byte(tok.ID), []byte(secret), tok.Secret[:], []byte(tok.CAHash[7:])} {
		if bytes.Contains(rogue.raw.Bytes(), s) {
			t.Fatalf("the rogue server received %q", s)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, tlssuite.DeviceFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an enrolment was recorded: %v", err)
	}
	// The token is still unused at the real server.
	if jt, err := e.store.JoinToken(context.Background(), tok.ID); err != nil || !jt.UsedAt.IsZero() {
		t.Errorf("token after the refused attempt: %+v, %v", jt, err)
	}
}

// TestEnrollRefusals: an expired, a reused, a cancelled and a wrong-secret
// token are refused by the server, which enrols nothing.
func TestEnrollRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	expired := e.mustToken("police1", time.Minute)
	e.clock.Advance(2 * time.Minute) // the server's clock; the client's still says it is valid
	if _, err := tlssuite.Enroll(ctx, expired.String(), t.TempDir()); !tes1.IsReply(err, tlssuite.ReplyTokenExpired) {
		t.Errorf("expired token: %v, want %q", err, tlssuite.ReplyTokenExpired)
	}

	used := e.mustToken("police1", time.Hour)
	if _, err := tlssuite.Enroll(ctx, used.String(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := tlssuite.Enroll(ctx, used.String(), t.TempDir()); !tes1.IsReply(err, tlssuite.ReplyTokenUsed) {
		t.Errorf("reused token: %v, want %q", err, tlssuite.ReplyTokenUsed)
	}

	cancelled := e.mustToken("police1", time.Hour)
	if err := e.store.RevokeDevice(ctx, cancelled.ID, "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tlssuite.Enroll(ctx, cancelled.String(), t.TempDir()); !tes1.IsReply(err, tlssuite.ReplyTokenUsed) {
		t.Errorf("cancelled token: %v, want %q", err, tlssuite.ReplyTokenUsed)
	}

	wrong := e.mustToken("police1", time.Hour)
	wrong.Secret[0] ^= 1
	if _, err := tlssuite.Enroll(ctx, wrong.String(), t.TempDir()); !tes1.IsReply(err, tlssuite.ReplyInvalidToken) {
		t.Errorf("wrong secret: %v, want %q", err, tlssuite.ReplyInvalidToken)
	}
	unknown := e.mustToken("police1", time.Hour)
	unknown.ID = "00000000000000ff"
	if _, err := tlssuite.Enroll(ctx, unknown.String(), t.TempDir()); !tes1.IsReply(err, tlssuite.ReplyInvalidToken) {
		t.Errorf("unknown token: %v, want %q", err, tlssuite.ReplyInvalidToken)
	}

	// A token for a user who can no longer report.
	disabled := e.mustToken("police1", time.Hour)
	if err := e.store.UpdateUser(ctx, "police1", func(u *tes.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := tlssuite.Enroll(ctx, disabled.String(), t.TempDir()); !tes1.IsReply(err, tlssuite.ReplyUserNotAllowed) {
		t.Errorf("disabled user: %v, want %q", err, tlssuite.ReplyUserNotAllowed)
	}

	devs, err := e.store.Devices(ctx)
	if err != nil || len(devs) != 1 {
		t.Fatalf("%d devices enrolled, want only the first use of the reused token: %v", len(devs), err)
	}
	e.mu.Lock()
	n := len(e.events)
	e.mu.Unlock()
	if n != 6 {
		t.Errorf("%d device.enroll_refused events, want 6", n)
	}
}

// TestDataRefusals: a DATA message that is unsigned, signed by another key
// or over other fields is refused, and nothing is stored. A first good
// report comes before them, so that they are checked with the
// connection's Ed25519 table (verifySignature), which the connection gives
// back when it closes.
func TestDataRefusals(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()
	c := e.mustDial(dev)
	ctx := context.Background()
	first := newReport("AB0", 90)
	p0, s0, err := c.SealReport(first)
	if err != nil {
		t.Fatal(err)
	}
	if status, text, err := c.Request(ctx, tes1.TypeData, p0, s0); status != tes1.StatusOK || text != tes1.ReplyQueued {
		t.Fatalf("first report: %s %q %v", status, text, err)
	}
	r := newReport("AB1", 99)
	r.ReportID, r.User = tes.NewReportID(), dev.User
	payload := string(tes1.AppendReport(nil, r))
	sign := func(key ed25519.PrivateKey, f *evidence.Fields) string {
		_, sig, err := evidence.Sign(key, f)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
	good := evidence.FromReport(r, dev.ID)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	faster := *good
	faster.Speed = 98
	tests := []struct {
		name, payload, sig, want string
	}{
		{"unsigned", payload, "", tes1.ReplySigMissing},
		{"not base64", payload, strings.Repeat("*", 88), tes1.ReplySigInvalid},
		{"another key", payload, sign(otherKey, good), tes1.ReplySigInvalid},
		{"other fields signed", payload, sign(dev.Key, &faster), tes1.ReplySigInvalid},
		{"no report_id", `{"plate": "AB1", "speed": 99}`, sign(dev.Key, good), "Invalid report_id: a signed report must carry one."},
		{"bad plate", `{"plate": "a*b", "speed": 99, "report_id": "` + r.ReportID + `"}`, sign(dev.Key, good), "Invalid plate: only letters A-Z, digits, space and dash are allowed."},
	}
	for _, tc := range tests {
		status, text, err := c.Request(ctx, tes1.TypeData, tc.payload, tc.sig)
		if err != nil || status != tes1.StatusError || text != tc.want {
			t.Errorf("%s: %s %q, %v; want ERROR %q", tc.name, status, text, err, tc.want)
		}
	}
	if status, text, _ := c.Request(ctx, "SESSION", "{}", ""); status != tes1.StatusError || text != tes1.ReplyUnknownType {
		t.Errorf("SESSION inside TLS: %s %q", status, text)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d violations stored, want 1 (the first report)", n)
	}
	if n := e.srv.VerifierTables(); n != 1 {
		t.Errorf("%d connections hold an Ed25519 table, want 1", n)
	}
	// The good one still goes through on the same connection.
	if status, text, err := c.Request(ctx, tes1.TypeData, payload, sign(dev.Key, good)); status != tes1.StatusOK || text != tes1.ReplyQueued {
		t.Fatalf("good report: %s %q %v", status, text, err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.VerifierTables() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.srv.VerifierTables(); n != 0 {
		t.Errorf("%d tables still held after the connection closed", n)
	}
}

// TestDialVerifiesServer: a device does not talk to a server with another
// CA (its reports go to its own officer only).
func TestDialVerifiesServer(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()
	rogue := newRecordingServer(t)
	if _, err := tlssuite.DialWith(context.Background(), dev, tlssuite.Options{Addr: rogue.addr}); err == nil {
		t.Fatal("Dial to a server of another CA succeeded")
	}
	<-rogue.done
	rogue.mu.Lock()
	defer rogue.mu.Unlock()
	if rogue.app.Len() != 0 {
		t.Fatalf("the rogue server read %q", rogue.app.Bytes())
	}
}

// TestEnrollTokenParse: a malformed token fails before any connection.
func TestEnrollTokenParse(t *testing.T) {
	if _, err := tlssuite.Enroll(context.Background(), "tes-join.nope", t.TempDir()); !errors.Is(err, enroll.ErrMalformed) {
		t.Fatalf("Enroll(malformed) = %v", err)
	}
}

// TestPipelinedReports sends many reports without waiting, with a refusal
// and a resend among them, and checks the replies come one per message, in
// order, and that each report is stored once.
func TestPipelinedReports(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()
	c := e.mustDial(dev)
	var xs []tes1.Exchange
	var want []string
	var firstMsg []byte
	for i := range 120 {
		r := newReport(fmt.Sprintf("PL%d", i), 90+i%50)
		p, s, err := c.SealReport(r)
		if err != nil {
			t.Fatal(err)
		}
		msg := tes1.AppendMessage(nil, tes1.TypeData, p, s)
		w := tes1.StatusOK + " " + tes1.ReplyQueued
		switch i {
		case 0:
			firstMsg = msg
		case 30: // a resend of the first report: acknowledged, stored once
			msg = firstMsg
		case 31:
			msg = tes1.AppendMessage(nil, tes1.TypeData, p, "")
			w = tes1.StatusError + " " + tes1.ReplySigMissing
		}
		xs = append(xs, tes1.Exchange{Msg: msg})
		want = append(want, w)
	}
	n, err := c.Pipeline(context.Background(), xs, 32)
	if err != nil || n != len(xs) {
		t.Fatalf("%d exchanges, %v", n, err)
	}
	for i, x := range xs {
		if got := x.Status + " " + x.Text; got != want[i] {
			t.Fatalf("reply %d = %q, want %q", i, got, want[i])
		}
	}
	if got := e.count(); got != len(xs)-2 {
		t.Fatalf("stored %d, want %d", got, len(xs)-2)
	}
}
