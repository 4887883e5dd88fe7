package tes1_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
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
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tes1"
)

// harness is a real TES/1 server on a loopback port with a real SQLite store.
type harness struct {
	addr  string
	store *sqlite.DB
	srv   *tes1.Server
	key   *rsa.PrivateKey
}

var (
	keyOnce   sync.Once
	sharedKey *rsa.PrivateKey
	clientKey *rsa.PrivateKey
)

// testKeys returns RSA keys generated once per test binary.
func testKeys(t testing.TB) (server, client *rsa.PrivateKey) {
	keyOnce.Do(func() {
		var err error
		if sharedKey, err = legacy.GenerateRSAKey(rand.Reader); err != nil {
			panic(err)
		}
		if clientKey, err = legacy.GenerateRSAKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return sharedKey, clientKey
}

func mustStart(t testing.TB, key *rsa.PrivateKey, tweak func(*tes1.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	if key == nil {
		key, _ = testKeys(t)
	}
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
	for _, u := range []struct {
		name string
		role tes.Role
	}{{"police1", tes.RolePolice}, {"admin", tes.RoleAdmin}, {"officer1", tes.RoleOfficer}} {
		if _, err := as.CreateUser(ctx, "test", u.name, u.role, "password", false); err != nil {
			t.Fatal(err)
		}
	}
	b := ingest.New(store, log, 0, nil)
	cfg := tes1.Config{Key: key, Auth: as, Ingest: b, Log: log, Statuses: store}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := tes1.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		b.Close()
		store.Close()
	})
	return &harness{addr: ln.Addr().String(), store: store, srv: srv, key: key}
}

func (h *harness) count(t testing.TB) int {
	t.Helper()
	n := 0
	f := tes.ViolationFilter{Limit: 1000}
	for {
		page, next, err := h.store.Violations(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if next == nil {
			return n
		}
		f.After = next
	}
}

func (h *harness) dial(t testing.TB) *tes1.Client {
	t.Helper()
	_, ck := testKeys(t)
	c, err := tes1.Dial(context.Background(), h.addr, tes1.ClientConfig{Fingerprint: h.srv.Fingerprint(), ClientKey: ck, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) login(t testing.TB, user string) *tes1.Client {
	t.Helper()
	c := h.dial(t)
	if err := c.Login(context.Background(), user, "password"); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// rawConn is a hand-driven TES/1 connection for hostile-input tests.
type rawConn struct {
	t   testing.TB
	c   net.Conn
	fr  *tes1.FrameReader
	des *legacy.SessionCipher
	ck  *rsa.PrivateKey
	// session is the SESSION message this connection sent.
	session []byte
}

func (h *harness) raw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{t: t, c: c, fr: tes1.NewFrameReader(c, 0)}
	if typ, _ := r.read(); typ != tes1.TypeHandshake {
		t.Fatalf("first message %q, want HANDSHAKE", typ)
	}
	return r
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// read returns the next message's type and payload, or "" at EOF/close.
func (r *rawConn) read() (typ, payload string) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := r.fr.Next()
	if err != nil {
		return "", err.Error()
	}
	m, err := tes1.ParseMessage(f)
	if err != nil {
		r.t.Fatalf("reply is not a message: %q", f)
	}
	p, _ := m.PayloadString()
	return m.Type, p
}

func (r *rawConn) expect(wantType, wantPayload string) {
	r.t.Helper()
	typ, p := r.read()
	if typ != wantType || p != wantPayload {
		r.t.Fatalf("reply = %s %q, want %s %q", typ, p, wantType, wantPayload)
	}
}

// expectClosed checks that the server closes the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1)
	if n, err := r.c.Read(b); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		r.t.Fatalf("expected the server to close; read %d bytes, err %v", n, err)
	}
}

// sessionMsg presents r.ck, or the test client key when r.ck is nil.
func (r *rawConn) sessionMsg(h *harness) []byte {
	ck := r.ck
	if ck == nil {
		_, ck = testKeys(r.t)
		r.ck = ck
	}
	desKey := make([]byte, 8)
	rand.Read(desKey)
	var err error
	if r.des, err = legacy.NewSessionCipher(desKey); err != nil {
		r.t.Fatal(err)
	}
	ek, err := legacy.EncryptKey(rand.Reader, &h.key.PublicKey, desKey)
	if err != nil {
		r.t.Fatal(err)
	}
	inner := `{"encrypted_key": "` + hex.EncodeToString(ek) + `", "client_public_key": ` +
		string(tes1.AppendPyString(nil, legacy.MarshalPublicKeyPEM(&ck.PublicKey))) + `}`
	return tes1.AppendMessage(nil, "SESSION", inner, "")
}

func (r *rawConn) startSession(h *harness) {
	r.t.Helper()
	r.session = r.sessionMsg(h)
	r.write(r.session)
	r.expect("OK", "Session Ready")
}

func (r *rawConn) loginMsg(user, pw string) []byte {
	wire, err := r.des.Seal(rand.Reader, tes1.AppendLogin(nil, user, pw))
	if err != nil {
		r.t.Fatal(err)
	}
	return tes1.AppendMessage(nil, "LOGIN", hex.EncodeToString(wire), "")
}

func (r *rawConn) login(user string) {
	r.t.Helper()
	r.write(r.loginMsg(user, "password"))
	r.expect("OK", "Login Successful")
}

// dataMsg encrypts plain and signs it with signer (nil: unsigned).
func (r *rawConn) dataMsg(plain string, signer *rsa.PrivateKey) []byte {
	wire, err := r.des.Seal(rand.Reader, []byte(plain))
	if err != nil {
		r.t.Fatal(err)
	}
	sig := ""
	if signer != nil {
		s, err := legacy.Sign(signer, wire)
		if err != nil {
			r.t.Fatal(err)
		}
		sig = hex.EncodeToString(s)
	}
	return tes1.AppendMessage(nil, "DATA", hex.EncodeToString(wire), sig)
}

// TestPycryptodomeBytesAccepted drives the server with the exact bytes the
// original Python client sent (testdata/legacy) and checks what is stored.
func TestPycryptodomeBytesAccepted(t *testing.T) {
	v := mustVectors(t)
	der, _ := hex.DecodeString(v.ServerRSA.PrivateDER)
	key, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	h := mustStart(t, key, nil)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &rawConn{t: t, c: c, fr: tes1.NewFrameReader(c, 0)}
	// The HANDSHAKE is byte-identical to the original server's.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	hs, err := r.fr.Next()
	if err != nil || string(hs) != v.Wire["handshake_server_to_client"] {
		t.Fatalf("HANDSHAKE = %q, %v\nwant %q", hs, err, v.Wire["handshake_server_to_client"])
	}
	for _, step := range []struct{ send, reply string }{
		{"session_client_to_server", "session_ok_server_to_client"},
		{"login_client_to_server", "login_ok_server_to_client"},
		{"data_client_to_server", "data_ok_server_to_client"},
	} {
		r.write([]byte(v.Wire[step.send]))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := r.fr.Next()
		if err != nil || string(got) != v.Wire[step.reply] {
			t.Fatalf("after %s: reply %q, %v; want %q", step.send, got, err, v.Wire[step.reply])
		}
	}
	page, _, err := h.store.Violations(context.Background(), tes.ViolationFilter{})
	if err != nil || len(page) != 1 {
		t.Fatalf("stored %d violations (%v), want 1", len(page), err)
	}
	got := page[0]
	_, spki, _ := legacy.ParsePublicKeyPEM(v.ClientRSA.PublicPEM)
	if got.Plate != "34ABC123" || got.Speed != 120 || got.ReportedBy != "admin" || !got.SigVerified ||
		got.Status != tes.StatusPending || got.Evidence.KeyFingerprint != legacy.Fingerprint(spki) || got.Suite != tes.SuiteTES1 {
		t.Fatalf("stored %+v", got)
	}
	// The evidence re-verifies: the signed bytes, the signature, the client key.
	pub, err := x509.ParsePKIXPublicKey(got.Evidence.PublicKey)
	if err != nil {
		t.Fatalf("stored client key: %v", err)
	}
	if err := legacy.Verify(pub.(*rsa.PublicKey), got.Evidence.Signed, got.Evidence.Signature); err != nil {
		t.Fatalf("stored evidence does not verify: %v", err)
	}
	// Sending the recorded DATA again on a new session is a replay.
	r2 := h.raw(t)
	r2.write([]byte(v.Wire["session_client_to_server"]))
	r2.expect("ERROR", tes1.ReplySessionReplay)
	r2.expectClosed()
}

// TestClientMessagesParseLikeTheOriginal reads what the Go client sends the
// way the original server does: one recv(4096) per message, each a whole
// JSON object with keys type, payload[, signature] in that order.
func TestClientMessagesParseLikeTheOriginal(t *testing.T) {
	srvKey, _ := testKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type seen struct {
		raw string
		err error
	}
	got := make(chan seen, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- seen{err: err}
			return
		}
		defer c.Close()
		c.Write(tes1.AppendMessage(nil, "HANDSHAKE", legacy.MarshalPublicKeyPEM(&srvKey.PublicKey), ""))
		replies := []string{"Session Ready", "Login Successful", "Message Queued for Processing", "Message Queued for Processing"}
		for _, reply := range replies {
			buf := make([]byte, 4096)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			got <- seen{raw: string(buf[:n]), err: err}
			if err != nil {
				return
			}
			c.Write(tes1.AppendMessage(nil, "OK", reply, ""))
		}
	}()
	_, ck := testKeys(t)
	pinFile := pins.Open(filepath.Join(t.TempDir(), "known_servers"))
	c, err := tes1.Dial(context.Background(), ln.Addr().String(), tes1.ClientConfig{Pins: pinFile, ClientKey: ck, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(context.Background(), "police1", "password"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), &tes.Report{Plate: "34ABC123", Speed: 120}); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), &tes.Report{ReportID: tes.NewReportID(), Plate: "34ABC123", Speed: 120, SpeedLimit: 90,
		Location: "E5 km 12", ObservedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	wantPrefix := []string{`{"type": "SESSION", "payload": "{\"encrypted_key\": \"`, `{"type": "LOGIN", "payload": "`, `{"type": "DATA", "payload": "`, `{"type": "DATA", "payload": "`}
	for i, prefix := range wantPrefix {
		s := <-got
		if s.err != nil {
			t.Fatalf("message %d: %v", i, s.err)
		}
		if len(s.raw) >= 4096 || !strings.HasPrefix(s.raw, prefix) || !strings.HasSuffix(s.raw, `"}`) {
			t.Fatalf("message %d (%d bytes) is not one whole object under 4096 bytes starting %s: %.120s", i, len(s.raw), prefix, s.raw)
		}
		m, err := tes1.ParseMessage([]byte(s.raw))
		if err != nil {
			t.Fatalf("message %d does not parse alone: %v", i, err)
		}
		hasSig := strings.Contains(s.raw, `", "signature": "`)
		if (m.Type == "DATA") != hasSig {
			t.Fatalf("message %d: signature present = %v for type %s", i, hasSig, m.Type)
		}
	}
}

// TestConcurrentReports: 32 connections x 500 reports give exactly 16,000
// rows, each acknowledged once.
func TestConcurrentReports(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the 16,000-report run")
	}
	h := mustStart(t, nil, nil)
	const conns, per = 32, 500
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := h.login(t, "police1")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				r := &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("C%02dR%04d", i, j), Speed: 50 + j%100}
				if err := c.Send(context.Background(), r); err != nil {
					errs <- fmt.Errorf("conn %d report %d: %w", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := h.count(t); n != conns*per {
		t.Fatalf("stored %d rows, want %d", n, conns*per)
	}
	if got := h.srv.Stats.Accepted.Load(); got != conns*per {
		t.Fatalf("acknowledged %d, want %d", got, conns*per)
	}
	if d := h.srv.Stats.Duplicates.Load(); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

func TestHostileInput(t *testing.T) {
	h := mustStart(t, nil, func(c *tes1.Config) { c.HandshakeTimeout = 2 * time.Second; c.IdleTimeout = 2 * time.Second })
	_, otherKey := testKeys(t)
	otherSigner, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_ = otherKey
	good := `{"plate": "34ABC123", "speed": 120}`

	t.Run("tampered ciphertext", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		wire, _ := r.des.Seal(rand.Reader, []byte(good))
		sig, _ := legacy.Sign(r.ck, wire)
		wire[len(wire)-1] ^= 1
		r.write(tes1.AppendMessage(nil, "DATA", hex.EncodeToString(wire), hex.EncodeToString(sig)))
		r.expect("ERROR", tes1.ReplySigInvalid)
	})
	t.Run("signature by another key", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		r.write(r.dataMsg(good, otherSigner))
		r.expect("ERROR", tes1.ReplySigInvalid)
	})
	t.Run("missing signature", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		r.write(r.dataMsg(good, nil))
		r.expect("ERROR", tes1.ReplySigMissing)
	})
	t.Run("bad report fields", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		r.write(r.dataMsg(`{"plate": "34ABC123", "speed": "fast"}`, r.ck))
		r.expect("ERROR", "Invalid speed: must be a whole number of km/h.")
		r.write(r.dataMsg(`{"plate": "<script>", "speed": 50}`, r.ck))
		r.expect("ERROR", "Invalid plate: only letters A-Z, digits, space and dash are allowed.")
		r.write(r.dataMsg(`not json`, r.ck))
		r.expect("ERROR", "Invalid report: not a JSON object with plate and speed.")
	})
	t.Run("DATA before LOGIN", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.write(r.dataMsg(good, r.ck))
		r.expect("ERROR", tes1.ReplyUnauthorized)
	})
	t.Run("DATA before SESSION", func(t *testing.T) {
		r := h.raw(t)
		r.write(tes1.AppendMessage(nil, "DATA", "00112233445566778899aabbccddeeff", "00"))
		r.expect("ERROR", tes1.ReplyUnauthorized)
	})
	t.Run("DATA by an officer account", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("officer1")
		r.write(r.dataMsg(good, r.ck))
		r.expect("ERROR", tes1.ReplyUnauthorized)
	})
	t.Run("LOGIN before SESSION", func(t *testing.T) {
		r := h.raw(t)
		r.write(tes1.AppendMessage(nil, "LOGIN", "00112233445566778899aabbccddeeff", ""))
		r.expect("ERROR", tes1.ReplySessionRequired)
	})
	t.Run("second SESSION", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.write(r.sessionMsg(h))
		r.expect("ERROR", tes1.ReplySessionExists)
	})
	t.Run("wrong password then lockout of the connection", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		for i := 0; i < 4; i++ {
			r.write(r.loginMsg("police1", "wrong-password"))
			r.expect("ERROR", tes1.ReplyBadLogin)
		}
		r.write(r.loginMsg("police1", "wrong-password"))
		r.expect("ERROR", tes1.ReplyTooManyAttempts)
		r.expectClosed()
		// The account is now throttled (5 failures): even the right password waits.
		r2 := h.raw(t)
		r2.startSession(h)
		r2.write(r2.loginMsg("police1", "password"))
		r2.expect("ERROR", tes1.ReplyTooManyAttempts)
		// Unblock the account for the other subtests.
		if err := h.store.UpdateUser(context.Background(), "police1", func(u *tes.User) error {
			u.FailedLogins, u.LockedUntil = 0, time.Time{}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown type", func(t *testing.T) {
		r := h.raw(t)
		r.write(tes1.AppendMessage(nil, "PING", "", ""))
		r.expect("ERROR", tes1.ReplyUnknownType)
		r.write(tes1.AppendMessage(nil, "HANDSHAKE", "x", ""))
		r.expect("ERROR", tes1.ReplyUnknownType)
	})
	t.Run("malformed JSON", func(t *testing.T) {
		r := h.raw(t)
		r.write([]byte(`{"type": "SESSION", "payload": oops}`))
		r.expect("ERROR", tes1.ReplyMalformed)
		r.expectClosed()
	})
	t.Run("not an object", func(t *testing.T) {
		r := h.raw(t)
		r.write([]byte(`["SESSION"]`))
		r.expect("ERROR", tes1.ReplyMalformed)
		r.expectClosed()
	})
	t.Run("non-UTF-8", func(t *testing.T) {
		r := h.raw(t)
		r.write([]byte("{\"type\": \"DATA\", \"payload\": \"\xff\xfe\"}"))
		r.expect("ERROR", tes1.ReplyMalformed)
		r.expectClosed()
	})
	t.Run("1 MiB message", func(t *testing.T) {
		r := h.raw(t)
		big := `{"type": "DATA", "payload": "` + strings.Repeat("ab", 512<<10) + `"}`
		go r.c.Write([]byte(big)) // the server stops reading at the limit
		r.expect("ERROR", tes1.ReplyTooLarge)
		r.expectClosed()
	})
	t.Run("SESSION garbage", func(t *testing.T) {
		r := h.raw(t)
		r.write(tes1.AppendMessage(nil, "SESSION", `{"encrypted_key": "zz", "client_public_key": "x"}`, ""))
		r.expect("ERROR", tes1.ReplySessionFailed)
		r.write(tes1.AppendMessage(nil, "SESSION", `not json`, ""))
		r.expect("ERROR", tes1.ReplySessionFailed)
		m := r.sessionMsg(h)
		bad := bytes.Replace(m, []byte(`encrypted_key\": \"`), []byte(`encrypted_key\": \"00`), 1)
		r.write(bad[:len(bad)])
		r.expect("ERROR", tes1.ReplySessionFailed)
		r.expectClosed() // three failures close the connection
	})
	if n := h.count(t); n != 0 {
		t.Fatalf("hostile input stored %d rows", n)
	}

	t.Run("one byte at a time and two in one write", func(t *testing.T) {
		r := h.raw(t)
		msg := r.sessionMsg(h)
		for i := range msg {
			r.write(msg[i : i+1])
		}
		r.expect("OK", "Session Ready")
		r.write(append(r.loginMsg("police1", "password"), r.dataMsg(good, r.ck)...))
		r.expect("OK", "Login Successful")
		r.expect("OK", "Message Queued for Processing")
	})
	t.Run("replayed DATA", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		m := r.dataMsg(`{"plate": "REPLAY1", "speed": 90}`, r.ck)
		r.write(m)
		r.expect("OK", "Message Queued for Processing")
		r.write(m)
		r.expect("ERROR", tes1.ReplyReplay)
	})
	t.Run("whole session replayed on a new connection", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		login := r.loginMsg("police1", "password")
		r.write(login)
		r.expect("OK", "Login Successful")
		data := r.dataMsg(`{"plate": "REPLAY2", "speed": 90}`, r.ck)
		r.write(data)
		r.expect("OK", "Message Queued for Processing")
		r2 := h.raw(t)
		r2.write(r.session)
		r2.expect("ERROR", tes1.ReplySessionReplay)
		r2.expectClosed()
		// Without the session, the rest of the recording is refused too.
		r3 := h.raw(t)
		r3.write(login)
		r3.expect("ERROR", tes1.ReplySessionRequired)
		r3.write(data)
		r3.expect("ERROR", tes1.ReplyUnauthorized)
	})
	t.Run("report_id resent is stored once", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		id := tes.NewReportID()
		plain := `{"plate": "DUP1", "speed": 77, "report_id": "` + id + `"}`
		r.write(r.dataMsg(plain, r.ck))
		r.expect("OK", "Message Queued for Processing")
		r.write(r.dataMsg(plain, r.ck)) // fresh IV: a retry, not a replay
		r.expect("OK", "Message Queued for Processing")
	})
	if n := h.count(t); n != 4 {
		t.Fatalf("stored %d rows, want 4 (one per legitimate report)", n)
	}

	t.Run("idle connection past the deadline", func(t *testing.T) {
		r := h.raw(t)
		r.startSession(h)
		r.login("police1")
		r.expectClosed() // IdleTimeout is 2 s here
	})
	t.Run("silent connection past the handshake deadline", func(t *testing.T) {
		r := h.raw(t)
		r.expectClosed()
	})
}

func TestClientRefusesChangedKey(t *testing.T) {
	h1 := mustStart(t, nil, nil)
	other, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h2 := mustStart(t, other, nil)
	pinFile := pins.Open(filepath.Join(t.TempDir(), "known_servers"))
	ctx := context.Background()
	c, err := tes1.Dial(ctx, h1.addr, tes1.ClientConfig{Pins: pinFile, ServerName: "officer.example:9999"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.FirstUse || c.Fingerprint != h1.srv.Fingerprint() {
		t.Fatalf("first dial: FirstUse=%v fp=%s", c.FirstUse, c.Fingerprint)
	}
	c.Close()
	// Same name, different key: refused before anything is sent.
	before := h2.srv.Stats.Sessions.Load()
	_, err = tes1.Dial(ctx, h2.addr, tes1.ClientConfig{Pins: pinFile, ServerName: "officer.example:9999"})
	if !pins.IsChanged(err) || !strings.Contains(err.Error(), h1.srv.Fingerprint()) || !strings.Contains(err.Error(), h2.srv.Fingerprint()) {
		t.Fatalf("dial with changed key: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if h2.srv.Stats.Sessions.Load() != before || h2.srv.Stats.Logins.Load() != 0 {
		t.Fatal("the client sent a SESSION or LOGIN to a server with a changed key")
	}
	// After forgetting the pin, the new key is accepted and pinned.
	if err := pinFile.Forget("officer.example:9999"); err != nil {
		t.Fatal(err)
	}
	c, err = tes1.Dial(ctx, h2.addr, tes1.ClientConfig{Pins: pinFile, ServerName: "officer.example:9999"})
	if err != nil || !c.FirstUse {
		t.Fatalf("after forget: %v", err)
	}
	c.Close()
}

// TestPreparedSession: a SESSION made ahead with PrepareSession opens a
// session that logs in and reports; used twice it is a replay; against a
// server with another key Dial refuses before sending it.
func TestPreparedSession(t *testing.T) {
	h := mustStart(t, nil, nil)
	ctx := context.Background()
	first := h.login(t, "police1")
	serverPEM := first.ServerKeyPEM()
	first.Close()
	_, ck := testKeys(t)
	ps, err := tes1.PrepareSession(rand.Reader, serverPEM, ck)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tes1.ClientConfig{Fingerprint: h.srv.Fingerprint(), Session: ps}
	c, err := tes1.Dial(ctx, h.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, "police1", "password"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, &tes.Report{Plate: "PREP1", Speed: 99}); err != nil {
		t.Fatalf("report over a prepared session: %v", err)
	}
	c.Close()
	if n := h.count(t); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
	// The same prepared session again is a replayed SESSION.
	if _, err := tes1.Dial(ctx, h.addr, cfg); !tes1.IsReply(err, tes1.ReplySessionReplay) {
		t.Fatalf("prepared session used twice: %v, want %q", err, tes1.ReplySessionReplay)
	}
	// A prepared session names another client key than ClientKey: refused.
	other, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tes1.Dial(ctx, h.addr, tes1.ClientConfig{Fingerprint: h.srv.Fingerprint(), Session: ps, ClientKey: other}); err == nil {
		t.Fatal("a prepared session with another client key was sent")
	}
	// A server with another key: refused before the SESSION is sent.
	h2 := mustStart(t, other, nil)
	before := h2.srv.Stats.Sessions.Load()
	if _, err := tes1.Dial(ctx, h2.addr, tes1.ClientConfig{Session: ps, Fingerprint: h.srv.Fingerprint()}); !pins.IsChanged(err) || !strings.Contains(err.Error(), h2.srv.Fingerprint()) {
		t.Fatalf("prepared session against another server key: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if h2.srv.Stats.Sessions.Load() != before || h2.srv.Stats.SessionsFailed.Load() != 0 {
		t.Fatal("the prepared SESSION reached a server with another key")
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	h := mustStart(t, nil, nil)
	c := h.login(t, "police1")
	shutdownWhileSending(t, h, func(acked *atomic.Int64) {
		for i := 0; ; i++ {
			if err := c.Send(context.Background(), &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("SD%d", i), Speed: 90}); err != nil {
				return
			}
			acked.Add(1)
		}
	})
}

// shutdownWhileSending runs send, which counts in acked the reports
// answered OK and returns once the server stops answering. It shuts the
// server down while send is sending, once the first reports have been
// acknowledged (not after a fixed time: signing a round of reports can take
// longer than that on a loaded machine), and checks that every acknowledged
// report is stored.
func shutdownWhileSending(t *testing.T, h *harness, send func(acked *atomic.Int64)) {
	t.Helper()
	var acked atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(&acked)
	}()
	for deadline := time.Now().Add(time.Minute); acked.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no report acknowledged in a minute")
		}
	}
	time.Sleep(50 * time.Millisecond) // into the next reports
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if n, a := h.count(t), int(acked.Load()); n < a {
		t.Fatalf("acknowledged %d, stored %d: every acknowledged report must be stored", a, n)
	}
}

func TestStatusExtension(t *testing.T) {
	h := mustStart(t, nil, nil)
	ctx := context.Background()
	c := h.login(t, "police1")
	ids := []string{tes.NewReportID(), tes.NewReportID()}
	for i, id := range ids {
		if err := c.Send(ctx, &tes.Report{ReportID: id, Plate: fmt.Sprintf("ST%d", i), Speed: 120}); err != nil {
			t.Fatal(err)
		}
	}
	page, _, _ := h.store.Violations(ctx, tes.ViolationFilter{Sort: "time_asc"})
	if _, err := h.store.Decide(ctx, tes.Decision{ViolationID: page[0].ID, Approve: true, By: "officer1"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	got, err := c.Statuses(ctx, append(ids, tes.NewReportID()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]tes.Status{ids[0]: tes.StatusApproved, ids[1]: tes.StatusPending}
	if len(got) != 2 {
		t.Fatalf("got %d statuses, want 2: %+v", len(got), got)
	}
	for _, s := range got {
		if want[s.ReportID] != s.Status {
			t.Errorf("report %s: %s, want %s", s.ReportID, s.Status, want[s.ReportID])
		}
		if s.Status == tes.StatusApproved && s.Points != 50 {
			t.Errorf("approved report shows %d points, want 50", s.Points)
		}
	}
	// Another user learns nothing about police1's reports.
	other := h.login(t, "admin")
	got, err = other.Statuses(ctx, ids, 5*time.Second)
	if err != nil || len(got) != 0 {
		t.Fatalf("admin sees police1's reports: %+v, %v", got, err)
	}
}

// TestPipelinedReports sends many DATA messages in one write, valid ones
// mixed with refusals, and checks that each gets its own reply in request
// order, that only the valid ones are stored, and that a request after them
// sees them committed.
func TestPipelinedReports(t *testing.T) {
	h := mustStart(t, nil, nil)
	r := h.raw(t)
	r.startSession(h)
	r.login("police1")
	stranger, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	type want struct{ typ, payload string }
	var batch []byte
	var wants []want
	var ids []string
	first := []byte(nil)
	for i := range 150 {
		var msg []byte
		w := want{tes1.StatusOK, tes1.ReplyQueued}
		switch {
		case i == 7:
			msg = r.dataMsg(`{"plate": "PL7", "speed": 90}`, stranger)
			w = want{tes1.StatusError, tes1.ReplySigInvalid}
		case i == 40:
			msg = first // the very bytes of the first report again
			w = want{tes1.StatusError, tes1.ReplyReplay}
		case i == 41:
			msg = r.dataMsg(`{"plate": "34ABC123", "speed": "fast"}`, r.ck)
			w = want{tes1.StatusError, ""}
		case i == 90:
			msg = r.dataMsg(`{"plate": "PL90", "speed": 90}`, nil)
			w = want{tes1.StatusError, tes1.ReplySigMissing}
		default:
			id := tes.NewReportID()
			ids = append(ids, id)
			msg = r.dataMsg(fmt.Sprintf(`{"plate": "PP%d", "speed": %d, "report_id": %q}`, i, 60+i%90, id), r.ck)
		}
		if first == nil {
			first = msg
		}
		batch = append(batch, msg...)
		wants = append(wants, w)
	}
	r.write(batch)
	for i, w := range wants {
		typ, p := r.read()
		if typ != w.typ || w.payload != "" && p != w.payload {
			t.Fatalf("reply %d = %s %q, want %s %q", i, typ, p, w.typ, w.payload)
		}
	}
	if n := h.count(t); n != len(ids) {
		t.Fatalf("stored %d reports, want %d", n, len(ids))
	}
	// The connection is in a clean state: a plain request-reply works.
	r.write(r.dataMsg(`{"plate": "AFTER1", "speed": 99}`, r.ck))
	r.expect(tes1.StatusOK, tes1.ReplyQueued)
	if n := h.count(t); n != len(ids)+1 {
		t.Fatalf("stored %d reports, want %d", n, len(ids)+1)
	}
}

// TestClientPipeline sends prepared reports through Client.Pipeline with
// several windows and checks every one is acknowledged and stored once.
func TestClientPipeline(t *testing.T) {
	h := mustStart(t, nil, nil)
	c := h.login(t, "police1")
	total := 0
	for _, window := range []int{1, 8, 64, 1000} {
		xs := make([]tes1.Exchange, 100)
		for i := range xs {
			p, s, err := c.SealReport(&tes.Report{Plate: fmt.Sprintf("W%dN%d", window, i), Speed: 100})
			if err != nil {
				t.Fatal(err)
			}
			xs[i].Msg = tes1.AppendMessage(nil, tes1.TypeData, p, s)
		}
		n, err := c.Pipeline(context.Background(), xs, window)
		if err != nil || n != len(xs) {
			t.Fatalf("window %d: %d exchanges, %v", window, n, err)
		}
		for i, x := range xs {
			if x.Status != tes1.StatusOK || x.Text != tes1.ReplyQueued || x.Latency <= 0 {
				t.Fatalf("window %d, report %d: %s %q after %v", window, i, x.Status, x.Text, x.Latency)
			}
		}
		total += len(xs)
		if got := h.count(t); got != total {
			t.Fatalf("window %d: stored %d, want %d", window, got, total)
		}
	}
}

// TestShutdownPipelined: a shutdown while a client pipelines answers what
// it owes or nothing, and every report answered OK is stored.
func TestShutdownPipelined(t *testing.T) {
	h := mustStart(t, nil, nil)
	c := h.login(t, "police1")
	shutdownWhileSending(t, h, func(acked *atomic.Int64) {
		for round := 0; ; round++ {
			xs := make([]tes1.Exchange, 64)
			for i := range xs {
				p, s, err := c.SealReport(&tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("SP%dN%d", round, i), Speed: 90})
				if err != nil {
					return
				}
				xs[i].Msg = tes1.AppendMessage(nil, tes1.TypeData, p, s)
			}
			n, err := c.Pipeline(context.Background(), xs, 16)
			for _, x := range xs[:n] {
				if x.Status == tes1.StatusOK {
					acked.Add(1)
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// TestSessionsOfSeveralKeys interleaves sessions of two client keys (the
// server keeps each key it has parsed): every report is verified with, and
// stored as evidence under, the key of its own session.
func TestSessionsOfSeveralKeys(t *testing.T) {
	h := mustStart(t, nil, nil)
	_, keyA := testKeys(t)
	keyB, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fp := func(k *rsa.PrivateKey) string {
		_, spki, err := legacy.ParsePublicKeyPEM(legacy.MarshalPublicKeyPEM(&k.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		return legacy.Fingerprint(spki)
	}
	want := map[string]string{} // plate -> fingerprint
	for i, k := range []*rsa.PrivateKey{keyA, keyB, keyA, keyB, keyA} {
		c, err := tes1.Dial(context.Background(), h.addr, tes1.ClientConfig{Fingerprint: h.srv.Fingerprint(), ClientKey: k, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(context.Background(), "police1", "password"); err != nil {
			t.Fatal(err)
		}
		plate := fmt.Sprintf("KEYS%d", i)
		if err := c.Send(context.Background(), &tes.Report{ReportID: tes.NewReportID(), Plate: plate, Speed: 80}); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		c.Close()
		want[plate] = fp(k)
	}
	page, _, err := h.store.Violations(context.Background(), tes.ViolationFilter{})
	if err != nil || len(page) != len(want) {
		t.Fatalf("stored %d violations (%v), want %d", len(page), err, len(want))
	}
	for _, v := range page {
		if v.Evidence.KeyFingerprint != want[v.Plate] {
			t.Errorf("%s stored under key %s, want %s", v.Plate, v.Evidence.KeyFingerprint, want[v.Plate])
		}
		pub, err := x509.ParsePKIXPublicKey(v.Evidence.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := legacy.Verify(pub.(*rsa.PublicKey), v.Evidence.Signed, v.Evidence.Signature); err != nil {
			t.Errorf("%s: stored evidence does not verify: %v", v.Plate, err)
		}
	}

	// A session of key B does not take a DATA signed with key A.
	r := h.raw(t)
	r.ck = keyB
	r.startSession(h)
	r.login("police1")
	r.write(r.dataMsg(`{"plate": "KEYSX", "speed": 90}`, keyA))
	r.expect("ERROR", tes1.ReplySigInvalid)
}
