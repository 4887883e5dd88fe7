package tes1

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/pins"
)

// ClientConfig configures Dial.
type ClientConfig struct {
	// Pins is the known-servers file. The server's key is checked against it
	// before anything is sent; a changed key fails Dial with a
	// *pins.ChangedError. Required unless Fingerprint is set.
	Pins *pins.File
	// Fingerprint, if set, is the only server key accepted (no pins file).
	Fingerprint string
	// ServerName is the pin's name; default the dialled address.
	ServerName string
	// ClientKey signs reports; a fresh RSA-2048 key is generated when nil
	// (and Session does not name one).
	ClientKey *rsa.PrivateKey
	// Timeout bounds each request and the connect; default 30 s.
	Timeout time.Duration
	// LocalAddr, if set, is the source address to connect from (the load
	// generator spreads connections over several loopback addresses).
	LocalAddr *net.TCPAddr
	// Session, if set, is the SESSION request to send, made ahead by
	// PrepareSession for the server key this Dial expects: the load
	// generator pays for the RSA-OAEP encryption before its clock starts.
	// Dial fails if the server shows another key. Use each one once: the
	// server refuses a SESSION it has seen.
	Session *PreparedSession
	Rand    io.Reader
}

// PreparedSession is a SESSION request made before Dial (see
// ClientConfig.Session): a fresh DES key encrypted to one server key.
type PreparedSession struct {
	serverPEM   string
	fingerprint string
	clientKey   *rsa.PrivateKey
	cipher      *legacy.SessionCipher
	payload     string
}

// PrepareSession makes a SESSION request for the server whose HANDSHAKE
// carried serverPEM (see Client.ServerKeyPEM), from a fresh DES key drawn
// from rnd, presenting clientKey's public key.
func PrepareSession(rnd io.Reader, serverPEM string, clientKey *rsa.PrivateKey) (*PreparedSession, error) {
	serverKey, der, err := legacy.ParsePublicKeyPEM(serverPEM)
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	ps := &PreparedSession{serverPEM: serverPEM, fingerprint: legacy.Fingerprint(der), clientKey: clientKey}
	if ps.cipher, ps.payload, err = sessionRequest(rnd, serverKey, legacy.MarshalPublicKeyPEM(&clientKey.PublicKey)); err != nil {
		return nil, err
	}
	return ps, nil
}

// sessionRequest draws a DES session key and returns its cipher and the
// SESSION payload that carries it, encrypted to serverKey.
func sessionRequest(rnd io.Reader, serverKey *rsa.PublicKey, clientPEM string) (*legacy.SessionCipher, string, error) {
	desKey := make([]byte, legacy.DESKeySize)
	defer clear(desKey)
	if _, err := io.ReadFull(rnd, desKey); err != nil {
		return nil, "", err
	}
	ciph, err := legacy.NewSessionCipher(desKey)
	if err != nil {
		return nil, "", err
	}
	ek, err := legacy.EncryptKey(rnd, serverKey, desKey)
	if err != nil {
		return nil, "", err
	}
	inner := append([]byte(`{"encrypted_key": `), AppendPyString(nil, hex.EncodeToString(ek))...)
	inner = append(inner, `, "client_public_key": `...)
	inner = AppendPyString(inner, clientPEM)
	inner = append(inner, '}')
	return ciph, string(inner), nil
}

// Client is a TES/1 client connection: one session, strictly one request
// in flight, one JSON object per write (so the original server parses it).
type Client struct {
	conn        net.Conn
	fr          *FrameReader
	cfg         ClientConfig
	cipher      *legacy.SessionCipher
	key         *rsa.PrivateKey
	Fingerprint string // the server's key fingerprint
	FirstUse    bool   // the key was pinned by this Dial
	serverPEM   string // the HANDSHAKE's key, as sent
	out, plain  []byte
}

// ReplyError is an ERROR reply from the server; Text is its payload.
type ReplyError struct{ Text string }

func (e *ReplyError) Error() string { return "server refused: " + e.Text }

// IsReply reports whether err is an ERROR reply with the given text.
func IsReply(err error, text string) bool {
	var r *ReplyError
	return errors.As(err, &r) && r.Text == text
}

// Dial connects, checks the server's key against the pin and establishes a
// session (HANDSHAKE, SESSION). No credential is sent before the key check.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if cfg.Pins == nil && cfg.Fingerprint == "" {
		return nil, errors.New("tes1: a pins file or an expected fingerprint is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.ServerName == "" {
		cfg.ServerName = addr
	}
	key := cfg.ClientKey
	if ps := cfg.Session; ps != nil {
		if key != nil && !key.PublicKey.Equal(&ps.clientKey.PublicKey) {
			return nil, errors.New("tes1: the prepared session presents another client key")
		}
		key = ps.clientKey
	}
	if key == nil {
		var err error
		if key, err = legacy.GenerateRSAKey(cfg.Rand); err != nil {
			return nil, err
		}
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	if cfg.LocalAddr != nil {
		d.LocalAddr = cfg.LocalAddr
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	c := &Client{conn: nc, fr: NewFrameReader(nc, DefaultMaxMessage), cfg: cfg, key: key}
	if err := c.handshake(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) handshake(ctx context.Context) error {
	m, err := c.read(ctx)
	if err != nil {
		return fmt.Errorf("read HANDSHAKE: %w", err)
	}
	pemText, ok := m.PayloadString()
	if m.Type == StatusError && ok { // e.g. "Server Busy, Retry Later" over a connection limit
		return &ReplyError{Text: pemText}
	}
	if m.Type != TypeHandshake || !ok {
		return fmt.Errorf("expected HANDSHAKE, got %q", m.Type)
	}
	c.serverPEM = pemText
	var serverKey *rsa.PublicKey
	if ps := c.cfg.Session; ps != nil {
		// The same PEM text is the same key: no need to parse it again.
		if ps.serverPEM != pemText {
			seen := "(unparsable)"
			if _, der, err := legacy.ParsePublicKeyPEM(pemText); err == nil {
				seen = legacy.Fingerprint(der)
			}
			return &pins.ChangedError{Server: c.cfg.ServerName, Pinned: ps.fingerprint, Seen: seen, File: "(prepared session)"}
		}
		c.Fingerprint = ps.fingerprint
	} else {
		var der []byte
		if serverKey, der, err = legacy.ParsePublicKeyPEM(pemText); err != nil {
			return fmt.Errorf("server key: %w", err)
		}
		c.Fingerprint = legacy.Fingerprint(der)
	}
	if c.cfg.Fingerprint != "" {
		if c.cfg.Fingerprint != c.Fingerprint {
			return &pins.ChangedError{Server: c.cfg.ServerName, Pinned: c.cfg.Fingerprint, Seen: c.Fingerprint, File: "(expected fingerprint)"}
		}
	} else if c.FirstUse, err = c.cfg.Pins.Check(c.cfg.ServerName, c.Fingerprint); err != nil {
		return err
	}
	payload := ""
	if ps := c.cfg.Session; ps != nil {
		c.cipher, payload = ps.cipher, ps.payload
	} else if c.cipher, payload, err = sessionRequest(c.cfg.Rand, serverKey, legacy.MarshalPublicKeyPEM(&c.key.PublicKey)); err != nil {
		return err
	}
	return c.roundTrip(ctx, TypeSession, payload, "")
}

// ServerKeyPEM is the server's public key as its HANDSHAKE sent it (for
// PrepareSession).
func (c *Client) ServerKeyPEM() string { return c.serverPEM }

// Login authenticates the session.
func (c *Client) Login(ctx context.Context, user, password string) error {
	c.plain = AppendLogin(c.plain[:0], user, password)
	wire, err := c.cipher.Seal(c.cfg.Rand, c.plain)
	clear(c.plain)
	if err != nil {
		return err
	}
	return c.roundTrip(ctx, TypeLogin, hex.EncodeToString(wire), "")
}

// Send sends one report and returns nil once the server acknowledged it
// (OK: it is durably stored). An ERROR reply is a *ReplyError.
func (c *Client) Send(ctx context.Context, r *tes.Report) error {
	payload, sig, err := c.SealReport(r)
	if err != nil {
		return err
	}
	return c.roundTrip(ctx, TypeData, payload, sig)
}

// SealReport encrypts and signs r as a DATA payload and signature (hex),
// without sending it: the load generator prepares messages this way.
func (c *Client) SealReport(r *tes.Report) (payload, signature string, err error) {
	c.plain = AppendReport(c.plain[:0], r)
	wire, err := c.cipher.Seal(c.cfg.Rand, c.plain)
	if err != nil {
		return "", "", err
	}
	sig, err := legacy.Sign(c.key, wire)
	if err != nil {
		return "", "", err
	}
	return hex.EncodeToString(wire), hex.EncodeToString(sig), nil
}

// Request sends one raw message and returns the reply: for tests and tools
// that need to send what a normal client would not.
func (c *Client) Request(ctx context.Context, typ, payload, signature string) (status, text string, err error) {
	if err := c.send(ctx, typ, payload, signature); err != nil {
		return "", "", err
	}
	m, err := c.read(ctx)
	if err != nil {
		return "", "", err
	}
	text, _ = m.PayloadString()
	return m.Type, text, nil
}

func (c *Client) roundTrip(ctx context.Context, typ, payload, signature string) error {
	status, text, err := c.Request(ctx, typ, payload, signature)
	if err != nil {
		return err
	}
	switch status {
	case StatusOK:
		return nil
	case StatusError:
		return &ReplyError{Text: text}
	}
	return fmt.Errorf("unexpected reply type %q", status)
}

func (c *Client) send(ctx context.Context, typ, payload, signature string) error {
	c.out = AppendMessage(c.out[:0], typ, payload, signature)
	c.conn.SetWriteDeadline(c.deadline(ctx))
	_, err := c.conn.Write(c.out)
	return err
}

func (c *Client) read(ctx context.Context) (*Message, error) {
	c.conn.SetReadDeadline(c.deadline(ctx))
	frame, err := c.fr.Next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("server closed the connection: %w", err)
		}
		return nil, err
	}
	var m Message
	if err := json.Unmarshal(frame, &m); err != nil {
		return nil, fmt.Errorf("bad reply: %w", err)
	}
	return &m, nil
}

func (c *Client) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(c.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		return dl
	}
	return d
}

// Pipeline sends prepared messages keeping up to window unanswered and
// fills in each reply (see the package function Pipeline). With a window
// over 1 the server commits several of them together, which is what a
// client on a slow link or with a backlog needs; the replies still come in
// order, one per message.
func (c *Client) Pipeline(ctx context.Context, xs []Exchange, window int) (int, error) {
	return Pipeline(c.conn, c.fr, xs, window, func() time.Time { return c.deadline(ctx) })
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn exposes the underlying connection (tests use it to write raw bytes).
func (c *Client) Conn() net.Conn { return c.conn }
