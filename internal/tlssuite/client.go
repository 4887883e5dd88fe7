package tlssuite

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/tes1"
)

// ErrCAMismatch is returned (wrapped) by Enroll when the server's
// certificate chain does not lead to the CA the join token names. The
// handshake was aborted before the client sent anything but its hello.
var ErrCAMismatch = errors.New("tlssuite: the server's CA does not match the join token's CA hash")

// ErrDeviceRefused is returned (wrapped) by Dial when the server refused
// the device certificate: revoked, unknown to this server, or its user may
// not report.
var ErrDeviceRefused = errors.New("tlssuite: the server refused this device (revoked, not enrolled here, or its user may not report)")

// Options are the optional settings of Enroll and Dial. The zero value is
// what a real client uses.
type Options struct {
	// Addr overrides the address: the join token's for EnrollWith, the
	// device's for DialWith.
	Addr string
	// DialContext opens the TCP connection; nil uses a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds the connect, the handshake and each request; default 30 s.
	Timeout time.Duration
	Rand    io.Reader        // nil: crypto/rand
	Now     func() time.Time // nil: time.Now
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DialContext == nil {
		d := &net.Dialer{Timeout: o.Timeout}
		o.DialContext = d.DialContext
	}
}

// Enroll redeems a join token: it makes the device key in dir (0600; reused
// if an earlier attempt left one), connects to the address in the token,
// checks the server against the token's CA hash before sending anything,
// proves the token's secret, and stores the certificate the server issues
// in dir. dir must not hold an enrolment yet.
//
// Errors: a malformed or locally expired token; ErrCAMismatch (nothing was
// sent); a *tes1.ReplyError with ReplyInvalidToken, ReplyTokenExpired,
// ReplyTokenUsed or ReplyUserNotAllowed; connection errors.
func Enroll(ctx context.Context, token, dir string) (*Device, error) {
	return EnrollWith(ctx, token, dir, Options{})
}

// EnrollWith is Enroll with options.
func EnrollWith(ctx context.Context, token, dir string, opt Options) (*Device, error) {
	opt.defaults()
	tok, err := enroll.Parse(token)
	if err != nil {
		return nil, err
	}
	addr := opt.Addr
	if addr == "" {
		addr = tok.Addr
	}
	if addr == "" {
		return nil, errors.New("tlssuite: the join token names no server address: give one")
	}
	if !opt.Now().Before(tok.Expires) {
		return nil, fmt.Errorf("tlssuite: the join token expired at %s: ask for a new one (tes device add)", tok.Expires.Format(time.RFC3339))
	}
	if _, err := os.Stat(filepath.Join(dir, DeviceFile)); err == nil {
		return nil, fmt.Errorf("tlssuite: %s already holds an enrolment: use another directory for another device", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(dir, func() (ed25519.PrivateKey, error) {
		_, k, err := ed25519.GenerateKey(opt.Rand)
		return k, err
	})
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(opt.Rand, &x509.CertificateRequest{Subject: pkix.Name{CommonName: tok.ID}}, key)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	nc, err := opt.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	var serverCA *x509.Certificate
	tc := tls.Client(nc, &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPNEnroll},
		ServerName: ca.ServerName,
		Time:       opt.Now,
		// The chain is checked against the CA hash below instead of a
		// root store: that hash is the only trust the token carries.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			c, err := verifyByHash(cs, tok.CAHash, opt.Now())
			serverCA = c
			return err
		},
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		if errors.Is(err, ErrCAMismatch) {
			return nil, err
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != ALPNEnroll {
		return nil, fmt.Errorf("tlssuite: %s does not offer enrolment (ALPN %q)", addr, cs.NegotiatedProtocol)
	}
	exporter, err := cs.ExportKeyingMaterial(enroll.ExporterLabel, nil, enroll.ExporterLen)
	if err != nil {
		return nil, err
	}
	req, _ := json.Marshal(enrollRequest{TokenID: tok.ID, CSR: csr, Proof: tok.Prove(exporter, csr)})
	if _, err := tc.Write(tes1.AppendMessage(nil, TypeEnroll, string(req), "")); err != nil {
		return nil, err
	}
	m, err := readMessage(tes1.NewFrameReader(tc, MaxMessage))
	if err != nil {
		return nil, err
	}
	text, _ := m.PayloadString()
	if m.Type == tes1.StatusError {
		return nil, &tes1.ReplyError{Text: text}
	} else if m.Type != tes1.StatusOK {
		return nil, fmt.Errorf("tlssuite: unexpected reply %q to ENROLL", m.Type)
	}
	var rep enrollReply
	if err := json.Unmarshal([]byte(text), &rep); err != nil {
		return nil, fmt.Errorf("tlssuite: bad ENROLL reply: %w", err)
	}
	cert, err := x509.ParseCertificate(rep.Certificate)
	if err != nil {
		return nil, fmt.Errorf("tlssuite: issued certificate: %w", err)
	}
	d := &Device{Dir: dir, ID: rep.DeviceID, User: rep.User, Addr: addr, CAHash: tok.CAHash,
		EnrolledAt: opt.Now().UTC().Truncate(time.Second), Key: key, Cert: cert, CA: serverCA}
	if d.ID != tok.ID {
		return nil, fmt.Errorf("tlssuite: the server issued a certificate for device %s, not %s", d.ID, tok.ID)
	}
	if err := d.check(opt.Now()); err != nil {
		return nil, fmt.Errorf("tlssuite: issued certificate: %w", err)
	}
	if err := d.save(); err != nil {
		return nil, err
	}
	return d, nil
}

// verifyByHash finds the CA certificate in the server's chain whose key has
// caHash, checks it is a self-signed CA and that the leaf chains to it for
// ServerName, and returns it.
func verifyByHash(cs tls.ConnectionState, caHash string, now time.Time) (*x509.Certificate, error) {
	var root *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if ca.Hash(c) == caHash {
			root = c
		}
	}
	if root == nil || !root.IsCA || root.CheckSignatureFrom(root) != nil || len(cs.PeerCertificates) < 2 {
		return nil, fmt.Errorf("%w (%s): nothing was sent", ErrCAMismatch, caHash)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: ca.ServerName, CurrentTime: now}); err != nil {
		return nil, fmt.Errorf("%w: %v: nothing was sent", ErrCAMismatch, err)
	}
	return root, nil
}

// Client is a TLS-suite connection of one enrolled device: strictly one
// request in flight. It is not safe for concurrent use.
type Client struct {
	dev     *Device
	conn    net.Conn
	tls     *tls.Conn
	fr      *tes1.FrameReader
	timeout time.Duration
	out     []byte
	plain   []byte
}

// Dial connects to addr ("" means the device's server), authenticates with
// the device certificate, verifies the server against the device's CA, and
// waits for the server to accept the device. A refused device gives an
// error wrapping ErrDeviceRefused.
func Dial(ctx context.Context, addr string, dev *Device) (*Client, error) {
	return DialWith(ctx, dev, Options{Addr: addr})
}

// DialWith is Dial with options.
func DialWith(ctx context.Context, dev *Device, opt Options) (*Client, error) {
	opt.defaults()
	addr := opt.Addr
	if addr == "" {
		addr = dev.Addr
	}
	pool := x509.NewCertPool()
	pool.AddCert(dev.CA)
	dctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	nc, err := opt.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	tc := tls.Client(nc, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPNReport},
		ServerName:   ca.ServerName,
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{dev.Cert.Raw}, PrivateKey: dev.Key, Leaf: dev.Cert}},
		Time:         opt.Now,
	})
	c := &Client{dev: dev, conn: nc, tls: tc, fr: tes1.NewFrameReader(tc, MaxMessage), timeout: opt.Timeout}
	if dl, ok := dctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if err := tc.HandshakeContext(dctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	// In TLS 1.3 the server checks the client certificate after the
	// client's handshake is over: its verdict is the first message.
	m, err := readMessage(c.fr)
	if err != nil {
		nc.Close()
		var ae tls.AlertError
		if errors.As(err, &ae) || isRemoteAlert(err) {
			return nil, fmt.Errorf("%w: %v", ErrDeviceRefused, err)
		}
		return nil, fmt.Errorf("read HANDSHAKE from %s: %w", addr, err)
	}
	var hp handshakePayload
	text, _ := m.PayloadString()
	if m.Type != tes1.TypeHandshake || json.Unmarshal([]byte(text), &hp) != nil || hp.Suite != ALPNReport {
		nc.Close()
		return nil, fmt.Errorf("tlssuite: expected HANDSHAKE from %s, got %q", addr, m.Type)
	}
	if hp.Device != dev.ID {
		nc.Close()
		return nil, fmt.Errorf("tlssuite: the server took this connection for device %s, not %s", hp.Device, dev.ID)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// isRemoteAlert reports whether err is a TLS alert the peer sent; crypto/tls
// does not export that type, only its text.
func isRemoteAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// Device returns the device the client reports as.
func (c *Client) Device() *Device { return c.dev }

// Send signs r with the device key and sends it; nil means the server
// acknowledged it (it is durably stored, or was already). r is validated
// and normalised first; when r.ReportID is empty a new one is set on r, so
// that resending r after a lost acknowledgement stores it once. r.User is
// ignored: the report is the device's user's. An ERROR reply is a
// *tes1.ReplyError.
func (c *Client) Send(ctx context.Context, r *tes.Report) error {
	if r.ReportID == "" {
		r.ReportID = tes.NewReportID()
	}
	rr := *r
	rr.User = c.dev.User
	if err := rr.Validate(); err != nil {
		return err
	}
	payload, sig, err := c.seal(&rr)
	if err != nil {
		return err
	}
	return c.roundTrip(ctx, tes1.TypeData, payload, sig)
}

// SealReport validates r and returns its DATA payload and device signature
// without sending them: the load generator prepares messages this way and
// sends them with Request.
func (c *Client) SealReport(r *tes.Report) (payload, signature string, err error) {
	if r.ReportID == "" {
		r.ReportID = tes.NewReportID()
	}
	rr := *r
	rr.User = c.dev.User
	if err := rr.Validate(); err != nil {
		return "", "", err
	}
	return c.seal(&rr)
}

// seal returns the DATA payload and signature for a validated report.
func (c *Client) seal(r *tes.Report) (payload, signature string, err error) {
	_, sig, err := evidence.Sign(c.dev.Key, evidence.FromReport(r, c.dev.ID))
	if err != nil {
		return "", "", err
	}
	c.plain = tes1.AppendReport(c.plain[:0], r)
	return string(c.plain), base64.StdEncoding.EncodeToString(sig), nil
}

// Statuses asks what became of the device user's reports.
func (c *Client) Statuses(ctx context.Context, reportIDs []string) ([]tes.ReportStatus, error) {
	b, err := json.Marshal(statusRequest{ReportIDs: reportIDs})
	if err != nil {
		return nil, err
	}
	status, text, err := c.Request(ctx, tes1.TypeStatus, string(b), "")
	if err != nil {
		return nil, err
	}
	if status != tes1.StatusOK {
		return nil, &tes1.ReplyError{Text: text}
	}
	var rep statusReply
	if err := json.Unmarshal([]byte(text), &rep); err != nil {
		return nil, fmt.Errorf("tlssuite: bad STATUS reply: %w", err)
	}
	return rep.Reports, nil
}

// Request sends one raw message and returns the reply: for tests and tools
// that must send what Send would not.
func (c *Client) Request(ctx context.Context, typ, payload, signature string) (status, text string, err error) {
	c.conn.SetDeadline(c.deadline(ctx))
	c.out = tes1.AppendMessage(c.out[:0], typ, payload, signature)
	if _, err := c.tls.Write(c.out); err != nil {
		return "", "", err
	}
	m, err := readMessage(c.fr)
	if err != nil {
		return "", "", err
	}
	text, _ = m.PayloadString()
	return m.Type, text, nil
}

// Pipeline sends prepared messages keeping up to window unanswered and
// fills in each reply, in order (tes1.Pipeline).
func (c *Client) Pipeline(ctx context.Context, xs []tes1.Exchange, window int) (int, error) {
	return tes1.Pipeline(c.tls, c.fr, xs, window, func() time.Time { return c.deadline(ctx) })
}

func (c *Client) roundTrip(ctx context.Context, typ, payload, signature string) error {
	status, text, err := c.Request(ctx, typ, payload, signature)
	if err != nil {
		return err
	}
	switch status {
	case tes1.StatusOK:
		return nil
	case tes1.StatusError:
		return &tes1.ReplyError{Text: text}
	}
	return fmt.Errorf("tlssuite: unexpected reply type %q", status)
}

func (c *Client) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(c.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		return dl
	}
	return d
}

// Close closes the connection.
func (c *Client) Close() error { return c.tls.Close() }

func readMessage(fr *tes1.FrameReader) (*tes1.Message, error) {
	frame, err := fr.Next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("server closed the connection: %w", err)
		}
		return nil, err
	}
	return tes1.ParseMessage(frame)
}
