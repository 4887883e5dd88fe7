package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// Conn is one protocol session with an officer server, over either suite:
// the Sender's retry, backoff, idempotency and state machine work on it
// alone, so they are the same for TES/1 and the TLS suite.
type Conn interface {
	// Send delivers one report; nil means the server acknowledged it. An
	// ERROR reply is a *tes1.ReplyError. A TLS device the server no
	// longer accepts gives an error wrapping tlssuite.ErrDeviceRefused.
	Send(ctx context.Context, r *tes.Report) error
	// Statuses asks what became of reports; tes1.ErrStatusUnsupported
	// means the server does not say (an original TES server).
	Statuses(ctx context.Context, reportIDs []string) ([]tes.ReportStatus, error)
	Close() error
	// Info describes the session for the status panel.
	Info() ConnInfo
}

// Loginer is a Conn whose suite needs a person's sign-in before it takes
// reports: TES/1. The Sender signs in with it after every connect. A TLS
// suite session needs none (the device certificate authorises reports),
// so its Conn is not a Loginer; the web sign-in calls
// (*tlssuite.Client).Login itself.
type Loginer interface {
	Login(ctx context.Context, user, password string) error
}

// DialFunc opens a Conn to the sender's server. Errors it may return that
// the Sender treats specially: *pins.ChangedError, an error wrapping
// tlssuite.ErrDeviceRefused, *DowngradeRefusedError.
type DialFunc func(ctx context.Context) (Conn, error)

// ConnInfo describes a session: what the status panel shows.
type ConnInfo struct {
	Suite      string // tes.SuiteTES1 or tes.SuiteTLS
	Encryption string // e.g. "TLS 1.3, device 0123abcd..., Ed25519"
	Signature  string
	// Fingerprint identifies the server's key: TES/1's RSA key as pinned,
	// or the TLS server certificate's key ("SHA256:...").
	Fingerprint string
	FirstUse    bool   // TES/1: the key was pinned by this connection
	CAHash      string // TLS: the CA the server certificate chains to, the enrolment's
	Device      string // TLS: the device ID
	// Warning is set when the session is not the suite this client
	// prefers: TES/1 after the TLS suite failed, allowed by --allow-legacy.
	Warning string
}

// Labels of the suites, as the status panel shows them.
const (
	TES1Encryption = "DES-CBC (TES/1 legacy suite)"
	TES1Signature  = "RSA-2048 PKCS#1 v1.5 SHA-256"
	TLSSignature   = "Ed25519 device signature on each report (evidence)"
)

// TLSEncryption is the TLS suite's label for device id.
func TLSEncryption(deviceID string) string { return "TLS 1.3, device " + deviceID + ", Ed25519" }

// DowngradeRefusedError is what a DialFunc returns when this client is
// enrolled for the server's host, the TLS suite did not answer, and
// falling back to TES/1 is not allowed: a man-in-the-middle blocking the
// TLS port must not be able to push the client onto the legacy suite.
// Nothing was sent.
type DowngradeRefusedError struct {
	Addr string // the TLS suite's address
	Err  error  // why the TLS suite failed
}

func (e *DowngradeRefusedError) Error() string {
	return "TLS suite unreachable at " + e.Addr + " (" + e.Err.Error() + "); not falling back to TES/1 (the legacy suite) — use --allow-legacy to permit it"
}

func (e *DowngradeRefusedError) Unwrap() error { return e.Err }

// tes1Conn is a TES/1 session.
type tes1Conn struct {
	c       *tes1.Client
	wait    time.Duration
	warning string
}

// NewTES1Conn wraps a TES/1 client (signed in or not) as a Conn; wait
// bounds how long a STATUS answer is awaited before deciding the server
// has none (see tes1.Client.Statuses).
func NewTES1Conn(c *tes1.Client, wait time.Duration) Conn { return &tes1Conn{c: c, wait: wait} }

func (t *tes1Conn) Send(ctx context.Context, r *tes.Report) error { return t.c.Send(ctx, r) }
func (t *tes1Conn) Statuses(ctx context.Context, ids []string) ([]tes.ReportStatus, error) {
	return t.c.Statuses(ctx, ids, t.wait)
}
func (t *tes1Conn) Close() error { return t.c.Close() }
func (t *tes1Conn) Login(ctx context.Context, user, password string) error {
	return t.c.Login(ctx, user, password)
}
func (t *tes1Conn) Info() ConnInfo {
	return ConnInfo{Suite: tes.SuiteTES1, Encryption: TES1Encryption, Signature: TES1Signature,
		Fingerprint: t.c.Fingerprint, FirstUse: t.c.FirstUse, Warning: t.warning}
}

// tlsConn is a TLS-suite session of an enrolled device.
type tlsConn struct{ c *tlssuite.Client }

// NewTLSConn wraps a TLS-suite client as a Conn.
func NewTLSConn(c *tlssuite.Client) Conn { return &tlsConn{c: c} }

// Send maps the one refusal that is about the device, not the report: a
// connection that was open when the device was revoked is answered
// "Unauthorized" and closed. The report must stay queued, not be marked
// refused.
func (t *tlsConn) Send(ctx context.Context, r *tes.Report) error {
	err := t.c.Send(ctx, r)
	if tes1.IsReply(err, tes1.ReplyUnauthorized) {
		return fmt.Errorf("%w: the server answered %q", tlssuite.ErrDeviceRefused, tes1.ReplyUnauthorized)
	}
	return err
}

func (t *tlsConn) Statuses(ctx context.Context, ids []string) ([]tes.ReportStatus, error) {
	return t.c.Statuses(ctx, ids)
}
func (t *tlsConn) Close() error { return t.c.Close() }
func (t *tlsConn) Info() ConnInfo {
	dev := t.c.Device()
	info := ConnInfo{Suite: tes.SuiteTLS, Encryption: TLSEncryption(dev.ID), Signature: TLSSignature,
		CAHash: dev.CAHash, Device: dev.ID}
	if cert := t.c.ServerCertificate(); cert != nil {
		info.Fingerprint = ca.Fingerprint(cert.RawSubjectPublicKeyInfo)
	}
	return info
}

// DialConfig chooses the suite for one officer server.
type DialConfig struct {
	// Server is the officer's TES/1 address: the pin's name and the
	// outbox's key for its reports, whichever suite carries them.
	Server string
	Pins   *pins.File // TES/1's known servers; required when TES/1 may be used
	// Device is this client's enrolment, or nil. When it is enrolled for
	// Server's host the TLS suite is used, and TES/1 only with AllowLegacy.
	Device      *tlssuite.Device
	TLSAddr     string // overrides the TLS suite's address recorded at enrolment
	AllowLegacy bool   // fall back to TES/1, with a warning, when the TLS suite does not answer
	Timeout     time.Duration
	StatusWait  time.Duration // TES/1: see NewTES1Conn
	Log         *slog.Logger
}

// UsesTLS reports whether cfg's device is enrolled for the server's host:
// then the TLS suite is the one to use.
func (cfg *DialConfig) UsesTLS() bool {
	return cfg.Device != nil && cfg.Device.Host() != "" && cfg.Device.Host() == tlssuite.HostOf(cfg.Server)
}

// TLSOptions are the options DialTLS uses.
func (cfg *DialConfig) TLSOptions() tlssuite.Options {
	return tlssuite.Options{Addr: cfg.TLSAddr, Timeout: cfg.Timeout}
}

// DialTES1 connects over TES/1, checking the server key against the pin
// before anything is sent. It does not sign in.
func (cfg *DialConfig) DialTES1(ctx context.Context) (*tes1.Client, error) {
	if cfg.Pins == nil {
		return nil, errors.New("outbox: TES/1 needs a pins file")
	}
	return tes1.Dial(ctx, cfg.Server, tes1.ClientConfig{Pins: cfg.Pins, ServerName: cfg.Server, Timeout: cfg.Timeout})
}

// Fallback decides what to do when the TLS suite failed with err: it
// returns the warning to show when falling back to TES/1 is allowed, or
// the error to stop with (a refused device; a refused downgrade).
func (cfg *DialConfig) Fallback(err error) (warning string, stop error) {
	if errors.Is(err, tlssuite.ErrDeviceRefused) {
		return "", err
	}
	addr := cfg.TLSAddr
	if addr == "" && cfg.Device != nil {
		addr = cfg.Device.Addr
	}
	if !cfg.AllowLegacy {
		return "", &DowngradeRefusedError{Addr: addr, Err: err}
	}
	return "WARNING: the TLS suite at " + addr + " failed (" + shortNetError(err) + "); reports go over TES/1 (the legacy suite: DES, self-asserted keys) because --allow-legacy permits it.", nil
}

// NewDialer returns the DialFunc for cfg: the TLS suite when the device is
// enrolled for the server's host (with the downgrade rule above), else
// TES/1.
func NewDialer(cfg DialConfig) DialFunc {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if !cfg.UsesTLS() {
		return func(ctx context.Context) (Conn, error) {
			c, err := cfg.DialTES1(ctx)
			if err != nil {
				return nil, err
			}
			return NewTES1Conn(c, cfg.StatusWait), nil
		}
	}
	return func(ctx context.Context) (Conn, error) {
		c, err := tlssuite.DialWith(ctx, cfg.Device, cfg.TLSOptions())
		if err == nil {
			return NewTLSConn(c), nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		warning, stop := cfg.Fallback(err)
		if stop != nil {
			return nil, stop
		}
		cfg.Log.Warn("the TLS suite failed; falling back to TES/1 because of --allow-legacy", "server", cfg.Server, "err", err)
		c1, err := cfg.DialTES1(ctx)
		if err != nil {
			return nil, err
		}
		return &tes1Conn{c: c1, wait: cfg.StatusWait, warning: warning}, nil
	}
}

// SignIn opens a session for the web sign-in and proves user's password on
// it, by the same rules as NewDialer: over the TLS suite (LOGIN inside the
// device's mutual-TLS connection) when the device is enrolled for the
// server's host, else, or after an allowed fallback, over TES/1 (the key
// checked against the pin before the password is sent). The returned Conn
// is ready for a Sender (SenderConfig.Conn).
//
// Errors: *pins.ChangedError, an error wrapping tlssuite.ErrDeviceRefused
// and *DowngradeRefusedError (the password was not sent); a
// *tes1.ReplyError (tes1.ReplyBadLogin, tes1.ReplyTooManyAttempts,
// tes1.ReplyUnauthorized when user is not the device's); connection errors.
func (cfg *DialConfig) SignIn(ctx context.Context, user, password string) (Conn, error) {
	warning := ""
	if cfg.UsesTLS() {
		c, err := tlssuite.DialWith(ctx, cfg.Device, cfg.TLSOptions())
		if err == nil {
			if err := c.Login(ctx, user, password); err != nil {
				c.Close()
				return nil, err
			}
			return NewTLSConn(c), nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		var stop error
		if warning, stop = cfg.Fallback(err); stop != nil {
			return nil, stop
		}
		if cfg.Log != nil {
			cfg.Log.Warn("the TLS suite failed at sign-in; falling back to TES/1 because of --allow-legacy", "server", cfg.Server, "user", user, "err", err)
		}
	}
	c, err := cfg.DialTES1(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, user, password); err != nil {
		c.Close()
		return nil, err
	}
	return &tes1Conn{c: c, wait: cfg.StatusWait, warning: warning}, nil
}
