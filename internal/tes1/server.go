package tes1

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/conntrack"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/password"
)

// Authenticator checks credentials (internal/auth.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, name, password string) (*tes.User, error)
}

// Ingester commits an item durably and sets its outcome (internal/ingest).
type Ingester interface {
	Submit(ctx context.Context, item *tes.IngestItem) error
}

// ClaimAnnouncer is an Ingester that groups session claims when told they
// are coming (ingest.Batcher): the server announces each claim when its
// RSA decrypt begins and calls arrived once the claim is queued or given up.
type ClaimAnnouncer interface {
	ClaimComing() (arrived func())
}

// Observer receives latencies for metrics; it must be cheap and safe for
// concurrent use.
type Observer interface {
	Session(d time.Duration) // a SESSION accepted: its processing time
	Report(d time.Duration)  // a report acknowledged: arrival to OK
}

// RefusalFunc is told about every refused report, for the audit log.
type RefusalFunc func(user, remote, reason string)

// Config configures a Server. Zero limits take the defaults below.
type Config struct {
	Key      *rsa.PrivateKey // the server's RSA identity (persisted by the caller)
	Auth     Authenticator
	Ingest   Ingester
	Log      *slog.Logger
	OnRefuse RefusalFunc
	// Observe, if set, receives latencies.
	Observe Observer
	// Statuses answers the STATUS extension; nil disables it.
	Statuses tes.ReportStatusStore

	MaxMessage       int           // bytes per message; default 64 KiB
	HandshakeTimeout time.Duration // accept to successful LOGIN; default 15 s
	IdleTimeout      time.Duration // between requests after LOGIN; default 5 min
	WriteTimeout     time.Duration // per reply; default 10 s
	MaxConns         int           // open connections; default 20,000
	MaxConnsPerIP    int           // default 2,000
	MaxHandshakes    int           // concurrent RSA-OAEP decrypts; default 2 x GOMAXPROCS
	MaxLoginFailures int           // per connection before it is closed; default 5
	Now              func() time.Time
}

// Server is a TES/1 officer server.
type Server struct {
	cfg       Config
	handshake []byte // the HANDSHAKE message, built once
	fp        string
	hsSem     chan struct{}
	pipe      Pipeliner // nil: one DATA at a time
	announce  ClaimAnnouncer
	Stats     Stats

	clientKeys clientKeyCache

	conns conntrack.Tracker
}

// NewServer checks cfg and prepares the HANDSHAKE bytes.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Key == nil || cfg.Auth == nil || cfg.Ingest == nil {
		return nil, errors.New("tes1: server needs a key, an authenticator and an ingester")
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
	def(&cfg.MaxMessage, DefaultMaxMessage)
	defd(&cfg.HandshakeTimeout, 15*time.Second)
	defd(&cfg.IdleTimeout, 5*time.Minute)
	defd(&cfg.WriteTimeout, 10*time.Second)
	def(&cfg.MaxConns, 20000)
	def(&cfg.MaxConnsPerIP, 2000)
	def(&cfg.MaxHandshakes, 2*max(1, runtime.GOMAXPROCS(0)))
	def(&cfg.MaxLoginFailures, 5)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pemText := legacy.MarshalPublicKeyPEM(&cfg.Key.PublicKey)
	_, der, err := legacy.ParsePublicKeyPEM(pemText)
	if err != nil {
		return nil, fmt.Errorf("tes1: server key: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		handshake: AppendMessage(nil, TypeHandshake, pemText, ""),
		fp:        legacy.Fingerprint(der),
		hsSem:     make(chan struct{}, cfg.MaxHandshakes),
	}
	s.clientKeys.max = clientKeyCacheMax
	s.pipe, _ = cfg.Ingest.(Pipeliner)
	s.announce, _ = cfg.Ingest.(ClaimAnnouncer)
	s.conns = conntrack.Tracker{MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP, Log: cfg.Log,
		Counters: conntrack.Counters{Open: &s.Stats.Conns, Total: &s.Stats.ConnsTotal, Refused: &s.Stats.ConnsRefused}}
	return s, nil
}

// Fingerprint is the SHA-256 fingerprint of the server's public key, the
// value clients pin.
func (s *Server) Fingerprint() string { return s.fp }

// Serve accepts connections on ln until Shutdown; it returns nil after a
// Shutdown and the accept error otherwise. A connection over a limit gets
// ERROR "Server Busy, Retry Later" and is closed.
func (s *Server) Serve(ln net.Listener) error {
	return s.conns.Serve(ln, func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(AppendMessage(nil, StatusError, ReplyBusy, ""))
		c.Close()
	}, func(tc *conntrack.Conn) { s.serveConn(&conn{Conn: tc}) })
}

// Shutdown stops accepting, lets every connection finish the request it is
// handling (so nothing acknowledged is lost and nothing committed goes
// unacknowledged), closes them, and waits until they are gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.conns.Shutdown(ctx) }

// conn is one client connection and its protocol state.
type conn struct {
	*conntrack.Conn

	state      connState
	cipher     *legacy.SessionCipher
	clientKey  *clientKey // the SESSION's, shared with other sessions of the key
	user       *tes.User
	loginFails int
	sessFails  int
	out        []byte
	bin        []byte
	replies    ReplyQueue // owed to a pipelining client
}

// connState is the typed per-connection protocol state. Transitions:
// awaitSession -SESSION-> awaitLogin -LOGIN-> loggedIn (-LOGIN-> loggedIn).
type connState int

const (
	awaitSession connState = iota
	awaitLogin
	loggedIn
)

func (s *Server) serveConn(c *conn) {
	log := s.cfg.Log.With("remote", c.RemoteAddr().String())
	start := s.cfg.Now()
	if err := s.write(c, s.handshake); err != nil {
		return
	}
	// Whatever way the loop ends, the reports already queued are answered:
	// nothing committed goes unacknowledged while the connection can write.
	defer s.flush(c, log)
	fr := NewFrameReader(c, s.cfg.MaxMessage)
	handshakeDeadline := start.Add(s.cfg.HandshakeTimeout)
	for !s.conns.Closing() {
		deadline := handshakeDeadline
		if c.state == loggedIn {
			deadline = time.Now().Add(s.cfg.IdleTimeout)
		}
		c.SetReadDeadline(deadline)
		if s.conns.Closing() { // Shutdown may have woken us just before the line above
			return
		}
		frame, err := fr.Next()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF):
			case errors.Is(err, ErrTooLarge):
				s.refuse(c, log, ReplyTooLarge)
				s.queueReply(c, StatusError, ReplyTooLarge)
			case errors.Is(err, ErrMalformed):
				s.refuse(c, log, ReplyMalformed)
				s.queueReply(c, StatusError, ReplyMalformed)
			case errors.As(err, &ne) && ne.Timeout():
				if !s.conns.Closing() {
					log.Info("closing connection: deadline passed", "logged_in", c.state == loggedIn)
				}
			default:
				log.Debug("read failed", "err", err)
			}
			return
		}
		c.SetBusy(true)
		msg, err := ParseMessage(frame)
		if err != nil {
			s.refuse(c, log, ReplyMalformed)
			s.queueReply(c, StatusError, ReplyMalformed)
			return
		}
		if msg.Type == TypeData && s.pipe != nil {
			s.queueData(c, log, msg)
		} else {
			// Any other request sees the effect of the reports before it.
			if s.flush(c, log) != nil {
				return
			}
			status, text, closeAfter := s.handle(c, log, msg)
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

// queueData checks a DATA request and queues it for commit without waiting.
func (s *Server) queueData(c *conn, log *slog.Logger, m *Message) {
	start := time.Now()
	item, status, text := s.prepareData(c, log, m)
	if item == nil {
		c.replies.Reply(status, text)
		return
	}
	t, err := s.pipe.Enqueue(context.Background(), item)
	if err != nil {
		c.replies.Reply(s.dataOutcome(c, log, item, err, start))
		return
	}
	c.replies.Report(t, item, start)
}

// queueReply owes the client a reply decided now, after those already owed.
func (s *Server) queueReply(c *conn, status, text string) { c.replies.Reply(status, text) }

// flush sends the replies owed, waiting for their reports' commits.
func (s *Server) flush(c *conn, log *slog.Logger) error {
	if c.replies.Len() == 0 {
		return nil
	}
	return c.replies.Flush(func(item *tes.IngestItem, err error, start time.Time) (string, string) {
		return s.dataOutcome(c, log, item, err, start)
	}, func(b []byte) error { return s.write(c, b) })
}

func (s *Server) reply(c *conn, status, text string) error {
	c.out = AppendMessage(c.out[:0], status, text, "")
	return s.write(c, c.out)
}

func (s *Server) write(c *conn, b []byte) error {
	c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err := c.Write(b)
	return err
}

func (s *Server) refuse(c *conn, log *slog.Logger, reason string) {
	s.Stats.CountRefused(reason)
	user := ""
	if c.user != nil {
		user = c.user.Name
	}
	log.Warn("request refused", "reason", reason, "user", user)
	if s.cfg.OnRefuse != nil {
		s.cfg.OnRefuse(user, c.RemoteAddr().String(), reason)
	}
}

// handle runs one request and returns the reply and whether to close.
func (s *Server) handle(c *conn, log *slog.Logger, m *Message) (status, text string, closeAfter bool) {
	switch m.Type {
	case TypeSession:
		return s.handleSession(c, log, m)
	case TypeLogin:
		return s.handleLogin(c, log, m)
	case TypeData:
		return s.handleData(c, log, m)
	case TypeStatus:
		return s.handleStatus(c, log, m)
	}
	s.refuse(c, log, ReplyUnknownType)
	return StatusError, ReplyUnknownType, false
}

type sessionPayload struct {
	EncryptedKey    string `json:"encrypted_key"`
	ClientPublicKey string `json:"client_public_key"`
}

// parseSessionPayload decodes SESSION's inner JSON. The shape our client
// and the original write, {"encrypted_key": S, "client_public_key": S}
// with no escape but \n in the PEM (and \" or \\), is cut directly;
// anything else goes to encoding/json (FuzzSessionPayload checks that
// both agree).
func parseSessionPayload(raw []byte) (sessionPayload, error) {
	if rest, ok := bytes.CutPrefix(raw, []byte(`{"encrypted_key": `)); ok {
		if ek, rest, _, ok := cutSimpleString(rest); ok {
			if rest, ok := bytes.CutPrefix(rest, []byte(`, "client_public_key": `)); ok {
				if pk, rest, _, ok := cutSimpleString(rest); ok && string(rest) == "}" {
					ekp, ok1 := plainString(ek)
					pkp, ok2 := plainString(pk)
					if ok1 && ok2 {
						return sessionPayload{EncryptedKey: string(ekp), ClientPublicKey: string(pkp)}, nil
					}
				}
			}
		}
	}
	var p sessionPayload
	err := json.Unmarshal(raw, &p)
	return p, err
}

func (s *Server) handleSession(c *conn, log *slog.Logger, m *Message) (string, string, bool) {
	start := time.Now()
	if c.state != awaitSession {
		s.refuse(c, log, ReplySessionExists)
		return StatusError, ReplySessionExists, false
	}
	fail := func(why string, err error) (string, string, bool) {
		c.sessFails++
		s.Stats.SessionsFailed.Add(1)
		log.Warn("session refused", "why", why, "err", err)
		s.refuse(c, log, ReplySessionFailed)
		return StatusError, ReplySessionFailed, c.sessFails >= 3
	}
	// The original sends the payload as a JSON string holding JSON; the
	// report's text shows an object. Accept both.
	raw := []byte(m.Payload)
	if str, ok := m.PayloadString(); ok {
		raw = []byte(str)
	}
	p, err := parseSessionPayload(raw)
	if err != nil || p.EncryptedKey == "" || p.ClientPublicKey == "" {
		return fail("payload is not {encrypted_key, client_public_key}", err)
	}
	ek, err := hex.DecodeString(p.EncryptedKey)
	if err != nil || len(ek) != s.cfg.Key.Size() {
		return fail("encrypted_key is not hex of the key size", err)
	}
	ck, err := s.clientKeys.get(p.ClientPublicKey)
	if err != nil {
		return fail("client_public_key", err)
	}
	// Bound concurrent RSA work so that a SESSION flood cannot starve reports.
	timer := time.NewTimer(5 * time.Second)
	select {
	case s.hsSem <- struct{}{}:
		timer.Stop()
	case <-timer.C:
		s.refuse(c, log, ReplyBusy)
		return StatusError, ReplyBusy, true
	}
	arrived := func() {}
	if s.announce != nil {
		arrived = s.announce.ClaimComing()
	}
	key, err := legacy.DecryptKey(s.cfg.Key, ek)
	<-s.hsSem
	if err != nil {
		arrived()
		return fail("OAEP decrypt", err)
	}
	ciph, err := legacy.NewSessionCipher(key)
	clear(key)
	if err != nil {
		arrived()
		return fail("DES key", err)
	}
	digest := sha256.Sum256(ek)
	item := &tes.IngestItem{SessionDigest: digest[:], ReceivedAt: s.cfg.Now()}
	if err := s.claim(item, arrived); err != nil {
		log.Error("session claim not committed", "err", err)
		return StatusError, ReplyUnavailable, false
	}
	if item.Outcome == tes.OutcomeReplay {
		s.Stats.SessionsFailed.Add(1)
		s.refuse(c, log, ReplySessionReplay)
		return StatusError, ReplySessionReplay, true
	}
	c.cipher, c.clientKey = ciph, ck
	c.state = awaitLogin
	s.Stats.Sessions.Add(1)
	if s.cfg.Observe != nil {
		s.cfg.Observe.Session(time.Since(start))
	}
	return StatusOK, ReplySessionReady, false
}

// claim commits a session claim, calling arrived once it is queued.
func (s *Server) claim(item *tes.IngestItem, arrived func()) error {
	if s.pipe == nil {
		arrived()
		return s.cfg.Ingest.Submit(context.Background(), item)
	}
	t, err := s.pipe.Enqueue(context.Background(), item)
	arrived()
	if err != nil {
		return err
	}
	return t.Wait(context.Background())
}

type loginPayload struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *Server) handleLogin(c *conn, log *slog.Logger, m *Message) (string, string, bool) {
	if c.state == awaitSession {
		s.refuse(c, log, ReplySessionRequired)
		return StatusError, ReplySessionRequired, false
	}
	// LOGIN is not signed, so its failures must all look alike: a reply
	// that told bad padding from bad JSON from a bad password would be a
	// padding oracle on the credentials.
	var p loginPayload
	plain, err := s.openPayload(c, m)
	if err == nil {
		err = json.Unmarshal(plain, &p)
		clear(plain)
	}
	var u *tes.User
	if err != nil {
		password.Burn("") // same cost as a wrong password
		err = auth.ErrInvalidCredentials
	} else {
		u, err = s.cfg.Auth.Authenticate(context.Background(), p.Username, p.Password)
	}
	if err != nil {
		c.loginFails++
		s.Stats.LoginsFailed.Add(1)
		reply := ReplyBadLogin
		switch tes.ErrorCode(err) {
		case tes.ERATELIMIT:
			reply = ReplyTooManyAttempts
		case tes.EUNAUTHORIZED:
		default:
			log.Error("login check failed", "err", err)
			reply = ReplyUnavailable
		}
		log.Warn("login refused", "user", p.Username, "reply", reply)
		s.Stats.CountRefused(reply)
		if c.loginFails >= s.cfg.MaxLoginFailures {
			return StatusError, ReplyTooManyAttempts, true
		}
		return StatusError, reply, false
	}
	c.user = u
	c.loginFails = 0
	c.state = loggedIn
	s.Stats.Logins.Add(1)
	log.Info("user logged in", "user", u.Name, "role", u.Role, "client_key", c.clientKey.fp)
	return StatusOK, ReplyLoginOK, false
}

// openPayload hex-decodes and DES-decrypts a LOGIN or DATA payload.
func (s *Server) openPayload(c *conn, m *Message) ([]byte, error) {
	str, ok := m.PayloadString()
	if !ok {
		return nil, errors.New("payload is not a string")
	}
	var err error
	if c.bin, err = appendHex(c.bin[:0], str); err != nil {
		return nil, err
	}
	return c.cipher.Open(c.bin)
}

func (s *Server) handleData(c *conn, log *slog.Logger, m *Message) (string, string, bool) {
	start := time.Now()
	item, status, text := s.prepareData(c, log, m)
	if item == nil {
		return status, text, false
	}
	status, text = s.dataOutcome(c, log, item, s.cfg.Ingest.Submit(context.Background(), item), start)
	return status, text, false
}

// prepareData checks a DATA request and returns the item to commit, or nil
// and the refusal to send.
func (s *Server) prepareData(c *conn, log *slog.Logger, m *Message) (item *tes.IngestItem, status, text string) {
	if c.state != loggedIn || !c.user.Role.CanReport() {
		s.refuse(c, log, ReplyUnauthorized)
		return nil, StatusError, ReplyUnauthorized
	}
	if m.Signature == nil || *m.Signature == "" {
		s.refuse(c, log, ReplySigMissing)
		return nil, StatusError, ReplySigMissing
	}
	str, ok := m.PayloadString()
	if !ok {
		s.refuse(c, log, ReplyProcessing)
		return nil, StatusError, ReplyProcessing
	}
	wire, err := hex.DecodeString(str)
	if err != nil || len(wire) < 16 {
		s.refuse(c, log, ReplyProcessing)
		return nil, StatusError, ReplyProcessing
	}
	// ParsePublicKeyPEM let only keys it takes through, so this does not
	// fail; if it did, every DATA of the key's sessions would be refused.
	ver, err := c.clientKey.verifier()
	if err != nil {
		log.Warn("client key refused for verification", "err", err)
		s.refuse(c, log, ReplySigInvalid)
		return nil, StatusError, ReplySigInvalid
	}
	sig, err := hex.DecodeString(*m.Signature)
	if err != nil || ver.Verify(wire, sig) != nil {
		s.refuse(c, log, ReplySigInvalid)
		return nil, StatusError, ReplySigInvalid
	}
	plain, err := c.cipher.Open(wire)
	if err != nil {
		s.refuse(c, log, ReplyProcessing)
		return nil, StatusError, ReplyProcessing
	}
	r, err := ParseReport(plain)
	if err != nil {
		msg := tes.ErrorMessage(err)
		s.refuse(c, log, msg)
		return nil, StatusError, msg
	}
	r.User = c.user.Name
	r.Suite = tes.SuiteTES1
	r.Evidence = tes.Evidence{Signed: wire, Signature: sig, KeyFingerprint: c.clientKey.fp, PublicKey: c.clientKey.spki}
	digest := sha256.Sum256(wire)
	return &tes.IngestItem{MessageDigest: digest[:], Report: r, ReceivedAt: s.cfg.Now()}, "", ""
}

// dataOutcome turns the result of committing item (err from the ingest
// path) into the reply; start is when the request was read.
func (s *Server) dataOutcome(c *conn, log *slog.Logger, item *tes.IngestItem, err error, start time.Time) (string, string) {
	if err != nil {
		log.Error("report not committed", "err", err)
		s.Stats.CountRefused(ReplyUnavailable)
		return StatusError, ReplyUnavailable
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
		return StatusOK, ReplyQueued
	case tes.OutcomeReplay:
		s.refuse(c, log, ReplyReplay)
		return StatusError, ReplyReplay
	}
	log.Error("ingest returned no outcome", "outcome", item.Outcome)
	return StatusError, ReplyUnavailable
}

func appendHex(dst []byte, s string) ([]byte, error) {
	n := hex.DecodedLen(len(s))
	if cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	dst = dst[:n]
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return nil, err
	}
	return dst, nil
}
