package tlssuite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/conntrack"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/tes1"
)

// Ingester commits an item durably and sets its outcome (internal/ingest).
type Ingester interface {
	Submit(ctx context.Context, item *tes.IngestItem) error
}

// Config configures a Server. Zero limits take the defaults below.
type Config struct {
	CA         *ca.CA          // issues device certificates; its certificate verifies clients
	ServerCert tls.Certificate // chain: leaf, CA
	Devices    tes.DeviceStore
	Users      tes.UserStore
	Ingest     Ingester
	Log        *slog.Logger
	// OnRefuse is told about every refused report and every device refused
	// at the handshake (tes1.RefusalFunc: user, remote address, reason).
	OnRefuse tes1.RefusalFunc
	// Audit receives events other than refusals (refused enrolments); it
	// must not block.
	Audit func(*tes.Event)
	// Statuses answers STATUS; nil disables it.
	Statuses tes.ReportStatusStore
	// Auth checks LOGIN's password (login.go); nil disables LOGIN.
	Auth Authenticator
	// Observe, if set, receives latencies: Session the report handshake's
	// (accept to a device accepted), Report a report's arrival to its OK.
	Observe tes1.Observer

	HandshakeTimeout time.Duration // accept to the end of the TLS handshake; default 10 s
	IdleTimeout      time.Duration // between requests; default 5 min
	WriteTimeout     time.Duration // per reply; default 10 s
	MaxConns         int           // default 20,000
	MaxConnsPerIP    int           // default 2,000
	// RecheckAfter: a connection looks its device up again before a report
	// when the last look-up is older than this, so a revocation also ends
	// open connections; default 30 s.
	RecheckAfter time.Duration
	Now          func() time.Time
}

// Stats counts what the server did, in TES/1's counters so that /metrics
// and the status page read both suites alike: Sessions are report
// handshakes that ended with a device accepted, SessionsFailed the TLS
// handshakes that failed or were refused, Logins the sign-ins made over a
// device's connection; refusals are counted by their reply text.
type Stats struct {
	tes1.Stats
	Enrolled atomic.Int64 // devices enrolled
}

// Server is the TLS suite's officer server.
type Server struct {
	cfg       Config
	enrollSvc *enroll.Service
	enrollCfg *tls.Config
	reportCfg *tls.Config    // cloned per connection with its VerifyConnection
	pipe      tes1.Pipeliner // nil: one DATA at a time
	Stats     Stats
	tables    atomic.Int64 // connections holding an evidence.Verifier

	conns conntrack.Tracker
}

// NewServer checks cfg and builds the TLS configurations.
func NewServer(cfg Config) (*Server, error) {
	if cfg.CA == nil || len(cfg.ServerCert.Certificate) == 0 || cfg.Devices == nil || cfg.Users == nil || cfg.Ingest == nil {
		return nil, errors.New("tlssuite: server needs a CA, a server certificate, device and user stores and an ingester")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&cfg.HandshakeTimeout, 10*time.Second)
	defd(&cfg.IdleTimeout, 5*time.Minute)
	defd(&cfg.WriteTimeout, 10*time.Second)
	defd(&cfg.RecheckAfter, 30*time.Second)
	def(&cfg.MaxConns, 20000)
	def(&cfg.MaxConnsPerIP, 2000)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg}
	s.conns = conntrack.Tracker{MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP, Log: cfg.Log,
		Counters: conntrack.Counters{Open: &s.Stats.Conns, Total: &s.Stats.ConnsTotal, Refused: &s.Stats.ConnsRefused}}
	s.enrollSvc = &enroll.Service{Devices: cfg.Devices, Users: cfg.Users, CA: cfg.CA, Now: cfg.Now}
	base := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cfg.ServerCert},
		SessionTicketsDisabled: true, // every connection is a full handshake with a fresh device check
		Time:                   cfg.Now,
	}
	s.enrollCfg = base.Clone()
	s.enrollCfg.NextProtos = []string{ALPNEnroll}
	s.enrollCfg.ClientAuth = tls.NoClientCert
	s.reportCfg = base.Clone()
	s.reportCfg.NextProtos = []string{ALPNReport}
	s.reportCfg.ClientAuth = tls.RequireAndVerifyClientCert
	s.reportCfg.ClientCAs = cfg.CA.Pool()
	s.pipe, _ = cfg.Ingest.(tes1.Pipeliner)
	return s, nil
}

// CAHash is the hash clients pin (internal/ca).
func (s *Server) CAHash() string { return s.cfg.CA.Hash() }

// Serve accepts connections on ln until Shutdown; it returns nil after a
// Shutdown and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	return s.conns.Serve(ln,
		func(nc net.Conn) { nc.Close() }, // over a limit: no TLS alert is worth the CPU
		func(tc *conntrack.Conn) { s.serveConn(&conn{Conn: tc, remote: tc.RemoteAddr().String()}) })
}

// Shutdown stops accepting, lets every connection finish the request it is
// handling, closes them, and waits until they are gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.conns.Shutdown(ctx) }

// connState is the typed per-connection protocol state. Transitions:
// handshaking -ALPN tes-enroll/1-> enrolling -ENROLL-> closed;
// handshaking -ALPN tes-tls/1, device accepted-> reporting (-DATA|STATUS|LOGIN-> reporting).
type connState int

const (
	handshaking connState = iota
	enrolling
	reporting
	closed
)

// conn is one client connection and its protocol state.
type conn struct {
	*conntrack.Conn // the TCP connection under TLS
	tls             *tls.Conn
	remote          string

	state     connState
	device    *tes.Device
	devicePub ed25519.PublicKey
	verifier  *evidence.Verifier // devicePub's table, from the second report on (verifySignature)
	verified  int                // reports whose signature was checked
	noTable   bool               // devicePub cannot have one
	refusal   string             // why VerifyConnection refused the device
	checkedAt time.Time
	out       []byte
	replies   tes1.ReplyQueue // owed to a pipelining client
}

func (c *conn) user() string {
	if c.device != nil {
		return c.device.User
	}
	return ""
}

// Errors VerifyConnection returns; their text reaches only the log (the
// client sees a bad_certificate alert).
var (
	errUnknownDevice = errors.New("tlssuite: certificate is not a registered device's")
	errRevoked       = errors.New("tlssuite: device revoked")
	errUserRefused   = errors.New("tlssuite: the device's user may not report")
)

// configFor returns the TLS configuration for one connection: enrolment
// when the client asks for it by ALPN, else mutual authentication with a
// device check that records its outcome on c.
func (s *Server) configFor(c *conn) *tls.Config {
	cfg := s.reportCfg.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return s.verifyDevice(c, cs) }
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			for _, p := range hello.SupportedProtos {
				if p == ALPNEnroll {
					return s.enrollCfg, nil
				}
			}
			return cfg, nil
		},
	}
}

// verifyDevice runs after crypto/tls verified the client's chain to the CA:
// the certificate must be the one registered for its device, the device
// not revoked, its user enabled and allowed to report.
func (s *Server) verifyDevice(c *conn, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		c.refusal = "No Client Certificate"
		return errUnknownDevice
	}
	leaf := cs.PeerCertificates[0]
	id, user, err := ca.DeviceIdentity(leaf)
	if err != nil {
		c.refusal = "Not A Device Certificate"
		return errUnknownDevice
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, pub, reason, err := s.checkDevice(ctx, id, leaf)
	if err != nil {
		c.refusal = reason + " (device " + id + ", user " + user + ")"
		return err
	}
	c.device, c.devicePub, c.checkedAt = d, pub, s.cfg.Now()
	return nil
}

// checkDevice looks device id up and checks it may report; with cert (at
// the handshake) also that cert is the one registered for it, and returns
// its key.
func (s *Server) checkDevice(ctx context.Context, id string, cert *x509.Certificate) (*tes.Device, ed25519.PublicKey, string, error) {
	d, err := s.cfg.Devices.Device(ctx, id)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		return nil, nil, "Unknown Device", errUnknownDevice
	} else if err != nil {
		s.cfg.Log.Error("device look-up failed", "device", id, "err", err)
		return nil, nil, tes1.ReplyUnavailable, err
	}
	if d.Revoked() {
		return nil, nil, "Device Revoked", errRevoked
	}
	var pub ed25519.PublicKey
	if cert != nil {
		var ok bool
		if pub, ok = cert.PublicKey.(ed25519.PublicKey); !ok || !bytes.Equal(d.Cert, cert.Raw) {
			return nil, nil, "Certificate Not Registered", errUnknownDevice
		}
	}
	u, err := s.cfg.Users.User(ctx, d.User)
	if err != nil || u.Disabled || !u.Role.CanReport() {
		return nil, nil, ReplyUserNotAllowed, errUserRefused
	}
	return d, pub, "", nil
}

func (s *Server) serveConn(c *conn) {
	log := s.cfg.Log.With("remote", c.remote)
	start := time.Now()
	c.tls = tls.Server(c.Conn, s.configFor(c))
	c.Conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	err := c.tls.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.Stats.SessionsFailed.Add(1)
		if c.refusal != "" {
			s.refuse(c, log, c.refusal)
		} else {
			log.Debug("TLS handshake failed", "err", err)
		}
		return
	}
	cs := c.tls.ConnectionState()
	c.Conn.SetDeadline(time.Time{})
	switch cs.NegotiatedProtocol {
	case ALPNEnroll:
		c.state = enrolling
		s.serveEnroll(c, log, cs)
	case ALPNReport:
		if c.device == nil { // unreachable: VerifyConnection ran and accepted
			return
		}
		c.state = reporting
		s.Stats.Sessions.Add(1)
		if s.cfg.Observe != nil {
			s.cfg.Observe.Session(time.Since(start))
		}
		s.serveReports(c, log.With("device", c.device.ID, "user", c.device.User), cs)
	default:
		s.Stats.SessionsFailed.Add(1)
		log.Debug("no application protocol negotiated")
	}
}

func (s *Server) serveReports(c *conn, log *slog.Logger, cs tls.ConnectionState) {
	hello, _ := json.Marshal(handshakePayload{Suite: ALPNReport, Device: c.device.ID, User: c.device.User})
	if err := s.write(c, tes1.AppendMessage(nil, tes1.TypeHandshake, string(hello), "")); err != nil {
		return
	}
	defer s.flush(c, log) // reports already queued are answered however the loop ends
	defer func() {
		if c.verifier != nil {
			c.verifier = nil
			s.tables.Add(-1)
		}
	}()
	fr := tes1.NewFrameReader(c.tls, MaxMessage)
	for !s.conns.Closing() {
		c.Conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if s.conns.Closing() { // Shutdown's wake-up may have come just before the line above
			return
		}
		frame, err := fr.Next()
		if err != nil {
			s.readFailed(c, log, err)
			return
		}
		c.SetBusy(true)
		m, err := tes1.ParseMessage(frame)
		if err != nil {
			s.refuse(c, log, tes1.ReplyMalformed)
			c.replies.Reply(tes1.StatusError, tes1.ReplyMalformed)
			return
		}
		if m.Type == tes1.TypeData && c.state == reporting && s.pipe != nil {
			// Pipelined: checked now, committed with whatever else is queued,
			// answered in order (tes1.ReplyQueue).
			if s.queueData(c, log, m) {
				return
			}
		} else {
			if s.flush(c, log) != nil {
				return
			}
			status, text, closeAfter := s.handleReport(c, log, m)
			if s.reply(c, status, text) != nil || closeAfter {
				return
			}
		}
		if c.replies.Due(fr) {
			if s.flush(c, log) != nil {
				return
			}
		}
		// Busy while replies are owed: a shutdown then lets this loop
		// answer them before it closes the connection.
		c.SetBusy(c.replies.Len() > 0)
	}
}

// queueData checks a DATA request and queues it for commit without waiting;
// it returns true when the connection must close after the replies owed.
func (s *Server) queueData(c *conn, log *slog.Logger, m *tes1.Message) (closeAfter bool) {
	start := time.Now()
	item, status, text, closeAfter := s.prepareData(c, log, m)
	if item == nil {
		c.replies.Reply(status, text)
		return closeAfter
	}
	t, err := s.pipe.Enqueue(context.Background(), item)
	if err != nil {
		c.replies.Reply(s.dataOutcome(c, log, item, err, start))
		return false
	}
	c.replies.Report(t, item, start)
	return false
}

// flush sends the replies owed, waiting for their reports' commits.
func (s *Server) flush(c *conn, log *slog.Logger) error {
	if c.replies.Len() == 0 {
		return nil
	}
	return c.replies.Flush(func(item *tes.IngestItem, err error, start time.Time) (string, string) {
		return s.dataOutcome(c, log, item, err, start)
	}, func(b []byte) error { return s.write(c, b) })
}

// readFailed answers a framing error the way TES/1 does and logs the rest.
func (s *Server) readFailed(c *conn, log *slog.Logger, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
	case errors.Is(err, tes1.ErrTooLarge):
		s.refuse(c, log, tes1.ReplyTooLarge)
		c.replies.Reply(tes1.StatusError, tes1.ReplyTooLarge)
	case errors.Is(err, tes1.ErrMalformed):
		s.refuse(c, log, tes1.ReplyMalformed)
		c.replies.Reply(tes1.StatusError, tes1.ReplyMalformed)
	case errors.As(err, &ne) && ne.Timeout():
		if !s.conns.Closing() {
			log.Info("closing connection: deadline passed")
		}
	default:
		log.Debug("read failed", "err", err)
	}
}

func (s *Server) handleReport(c *conn, log *slog.Logger, m *tes1.Message) (status, text string, closeAfter bool) {
	if c.state != reporting {
		s.refuse(c, log, tes1.ReplyUnauthorized)
		return tes1.StatusError, tes1.ReplyUnauthorized, true
	}
	switch m.Type {
	case tes1.TypeData:
		return s.handleData(c, log, m)
	case tes1.TypeStatus:
		return s.handleStatus(c, log, m)
	case tes1.TypeLogin:
		return s.handleLogin(c, log, m)
	}
	s.refuse(c, log, tes1.ReplyUnknownType)
	return tes1.StatusError, tes1.ReplyUnknownType, false
}

func (s *Server) handleData(c *conn, log *slog.Logger, m *tes1.Message) (string, string, bool) {
	start := time.Now()
	item, status, text, closeAfter := s.prepareData(c, log, m)
	if item == nil {
		return status, text, closeAfter
	}
	status, text = s.dataOutcome(c, log, item, s.cfg.Ingest.Submit(context.Background(), item), start)
	return status, text, false
}

// prepareData checks a DATA request and returns the item to commit, or nil
// and the refusal to send (and whether to close after it).
func (s *Server) prepareData(c *conn, log *slog.Logger, m *tes1.Message) (item *tes.IngestItem, status, text string, closeAfter bool) {
	r, sig, err := ParseData(m)
	if err != nil {
		text := ReplyText(err)
		s.refuse(c, log, text)
		return nil, tes1.StatusError, text, false
	}
	// A revocation also ends connections that are already open.
	if now := s.cfg.Now(); now.Sub(c.checkedAt) >= s.cfg.RecheckAfter {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, reason, err := s.checkDevice(ctx, c.device.ID, nil)
		cancel()
		if err != nil {
			if reason == tes1.ReplyUnavailable {
				return nil, tes1.StatusError, tes1.ReplyUnavailable, false
			}
			s.refuse(c, log, reason)
			return nil, tes1.StatusError, tes1.ReplyUnauthorized, true
		}
		c.checkedAt = now
	}
	r.User = c.device.User
	r.Suite = tes.SuiteTLS
	fields := evidence.FromReport(r, c.device.ID)
	signed, err := evidence.Encode(fields)
	if err != nil {
		var fe *evidence.FieldError
		text := tes1.ReplyProcessing
		if errors.As(err, &fe) {
			text = "Invalid " + fe.Field + ": " + fe.Why + "."
		}
		s.refuse(c, log, text)
		return nil, tes1.StatusError, text, false
	}
	if s.verifySignature(c, signed, sig) != nil {
		s.refuse(c, log, tes1.ReplySigInvalid)
		return nil, tes1.StatusError, tes1.ReplySigInvalid, false
	}
	r.ObservedAt = fields.ObservedAt // what was signed: whole seconds
	r.Evidence = tes.Evidence{Signed: signed, Signature: sig, KeyFingerprint: c.device.KeyFingerprint,
		PublicKey: c.device.Cert, DeviceID: c.device.ID}
	// No replay-guard digest: inside TLS nobody can replay a record, and a
	// resend after a lost acknowledgement must be answered OK (a duplicate
	// by report_id). The store then writes no seen_digests row, a random
	// B-tree insert per report saved.
	return &tes.IngestItem{Report: r, ReceivedAt: s.cfg.Now()}, "", "", false
}

// maxVerifierTables bounds the memory the connections' Ed25519 tables take
// (40 KiB each): 1,024 connections hold one at most, 40 MiB.
const maxVerifierTables = 1024

// verifySignature checks a report's device signature. From a connection's
// second report on, it uses the connection's own evidence.Verifier, which
// costs about one and a half verifications to build and then takes 0.6x
// of one; a connection that sends a single report does not pay for it.
// Past maxVerifierTables connections holding one, a connection verifies
// with evidence.VerifySignature alone. Both decide alike (the Wycheproof
// vectors and FuzzVerifier in internal/evidence).
func (s *Server) verifySignature(c *conn, signed, sig []byte) error {
	if c.verifier == nil && c.verified > 0 && !c.noTable {
		if s.tables.Add(1) <= maxVerifierTables {
			v, err := evidence.NewVerifier(c.devicePub)
			if err != nil {
				s.tables.Add(-1)
				c.noTable = true // VerifySignature refuses its signatures as well
			}
			c.verifier = v
		} else {
			s.tables.Add(-1)
		}
	}
	c.verified++
	if c.verifier != nil {
		return c.verifier.Verify(signed, sig)
	}
	return evidence.VerifySignature(c.devicePub, signed, sig)
}

// dataOutcome turns the result of committing item into the reply.
func (s *Server) dataOutcome(c *conn, log *slog.Logger, item *tes.IngestItem, err error, start time.Time) (string, string) {
	if err != nil {
		log.Error("report not committed", "err", err)
		s.Stats.CountRefused(tes1.ReplyUnavailable)
		return tes1.StatusError, tes1.ReplyUnavailable
	}
	switch item.Outcome {
	case tes.OutcomeStored, tes.OutcomeDuplicate:
		if item.Outcome == tes.OutcomeDuplicate {
			s.Stats.Duplicates.Add(1)
		}
		s.Stats.CountAccepted(item.ReceivedAt)
		if s.cfg.Observe != nil {
			s.cfg.Observe.Report(time.Since(start))
		}
		return tes1.StatusOK, tes1.ReplyQueued
	case tes.OutcomeReplay:
		s.refuse(c, log, tes1.ReplyReplay)
		return tes1.StatusError, tes1.ReplyReplay
	}
	log.Error("ingest returned no outcome", "outcome", item.Outcome)
	return tes1.StatusError, tes1.ReplyUnavailable
}

func (s *Server) handleStatus(c *conn, log *slog.Logger, m *tes1.Message) (string, string, bool) {
	if s.cfg.Statuses == nil {
		s.refuse(c, log, tes1.ReplyUnknownType)
		return tes1.StatusError, tes1.ReplyUnknownType, false
	}
	str, ok := m.PayloadString()
	var req statusRequest
	if !ok || json.Unmarshal([]byte(str), &req) != nil || len(req.ReportIDs) > tes1.MaxStatusIDs {
		s.refuse(c, log, tes1.ReplyProcessing)
		return tes1.StatusError, tes1.ReplyProcessing, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.cfg.Statuses.ReportStatuses(ctx, c.device.User, req.ReportIDs)
	if err != nil {
		log.Error("report statuses", "err", err)
		return tes1.StatusError, tes1.ReplyUnavailable, false
	}
	b, _ := json.Marshal(statusReply{Reports: list})
	return tes1.StatusOK, string(b), false
}

func (s *Server) reply(c *conn, status, text string) error {
	c.out = tes1.AppendMessage(c.out[:0], status, text, "")
	return s.write(c, c.out)
}

func (s *Server) write(c *conn, b []byte) error {
	c.Conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err := c.tls.Write(b)
	return err
}

func (s *Server) refuse(c *conn, log *slog.Logger, reason string) {
	s.Stats.CountRefused(reasonLabel(reason))
	log.Warn("request refused", "reason", reason, "user", c.user())
	if s.cfg.OnRefuse != nil {
		s.cfg.OnRefuse(c.user(), c.remote, reason)
	}
}

// reasonLabel is reason without the detail a refusal may carry in
// parentheses (a device ID, a user name): the reply text alone, one of a
// bounded set, for the refusal counter that /metrics labels by it.
func reasonLabel(reason string) string {
	label, _, _ := strings.Cut(reason, " (")
	return label
}

// String describes the server for logs.
func (s *Server) String() string { return fmt.Sprintf("TLS suite (CA %s)", s.CAHash()) }
