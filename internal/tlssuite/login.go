package tlssuite

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/tes1"
)

// LOGIN inside the TLS suite: a person proves their password on an
// enrolled device's connection (the police web client's sign-in).
//
//	client  LOGIN  payload: JSON {"username": NAME, "password": PW}
//	server  OK "Login Successful" | ERROR "Invalid Credentials" |
//	        ERROR "Too Many Attempts" | ERROR "Unauthorized"
//
// There is no DES: TLS protects the password. The name must be the device
// certificate's user; any other is refused with "Unauthorized" before a
// password is checked, so a device cannot be used to guess another
// account's password (nor lock it). The check is the server's
// Authenticator (internal/auth.Service), with its throttling.
//
// LOGIN changes nothing on the connection: DATA and STATUS stay authorised
// by the device certificate alone, with or without a LOGIN.

// Authenticator checks a user's password (internal/auth.Service): it
// returns the user, or an error whose code is tes.EUNAUTHORIZED for wrong
// credentials and tes.ERATELIMIT while the account is locked.
type Authenticator interface {
	Authenticate(ctx context.Context, name, password string) (*tes.User, error)
}

// loginRequest is the LOGIN payload.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// parseLogin decodes a LOGIN payload strictly: one object, the two fields,
// nothing else.
func parseLogin(m *tes1.Message) (*loginRequest, error) {
	s, ok := m.PayloadString()
	if !ok {
		return nil, fmt.Errorf("payload is not a string")
	}
	var req loginRequest
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("text after the object")
	}
	if req.Username == "" || len(req.Username) > 64 || len(req.Password) > 256 {
		return nil, fmt.Errorf("username or password missing or too long")
	}
	return &req, nil
}

// handleLogin answers LOGIN on a report connection.
func (s *Server) handleLogin(c *conn, log *slog.Logger, m *tes1.Message) (string, string, bool) {
	if s.cfg.Auth == nil {
		s.refuse(c, log, tes1.ReplyUnknownType)
		return tes1.StatusError, tes1.ReplyUnknownType, false
	}
	req, err := parseLogin(m)
	if err != nil {
		s.refuse(c, log, tes1.ReplyMalformed)
		return tes1.StatusError, tes1.ReplyMalformed, false
	}
	if req.Username != c.device.User {
		who := "another user"
		if tes.ValidateUsername(req.Username) == nil { // a name safe to put in the log and the audit chain
			who = req.Username
		}
		log.Warn("login as another user than the device's refused", "login_user", who)
		s.refuse(c, log, tes1.ReplyUnauthorized+" (login as "+who+")")
		return tes1.StatusError, tes1.ReplyUnauthorized, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.cfg.Auth.Authenticate(ctx, req.Username, req.Password); err != nil {
		s.Stats.LoginsFailed.Add(1)
		reply := tes1.ReplyBadLogin
		switch tes.ErrorCode(err) {
		case tes.EUNAUTHORIZED:
		case tes.ERATELIMIT:
			reply = tes1.ReplyTooManyAttempts
		default:
			log.Error("login check failed", "err", err)
			reply = tes1.ReplyUnavailable
		}
		log.Warn("login refused", "reply", reply)
		s.Stats.CountRefused(reply)
		return tes1.StatusError, reply, false
	}
	s.Stats.Logins.Add(1)
	log.Info("user signed in over the TLS suite")
	return tes1.StatusOK, tes1.ReplyLoginOK, false
}

// Login proves user's password to the server over the device's connection
// (the police web client's sign-in); nil means "Login Successful". user
// must be the device's user. It does not change what the connection may
// do: reports are authorised by the device certificate. An ERROR reply is
// a *tes1.ReplyError: tes1.ReplyBadLogin, tes1.ReplyTooManyAttempts, or
// tes1.ReplyUnauthorized for another user than the device's.
func (c *Client) Login(ctx context.Context, user, password string) error {
	b, err := json.Marshal(loginRequest{Username: user, Password: password})
	if err != nil {
		return err
	}
	payload := string(b)
	clear(b)
	return c.roundTrip(ctx, tes1.TypeLogin, payload, "")
}

// ServerCertificate returns the certificate the server presented (the
// leaf; it chains to the device's CA).
func (c *Client) ServerCertificate() *x509.Certificate {
	if certs := c.tls.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0]
	}
	return nil
}
