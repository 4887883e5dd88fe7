package enroll

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
)

// Token lifetimes.
const (
	DefaultTTL = 24 * time.Hour
	MaxTTL     = 30 * 24 * time.Hour
)

// Redemption errors. Transports map them to their own replies; they are
// compared with errors.Is.
var (
	// ErrInvalidToken: no such token, or the proof does not verify. The two
	// are not told apart.
	ErrInvalidToken = &tes.Error{Code: tes.EUNAUTHORIZED, Message: "The join token is not valid for this server."}
	// ErrExpired: the token's expiry has passed.
	ErrExpired = &tes.Error{Code: tes.EUNAUTHORIZED, Message: "The join token has expired: ask for a new one (tes device add)."}
	// ErrUsed: the token was redeemed or cancelled before.
	ErrUsed = &tes.Error{Code: tes.ECONFLICT, Message: "The join token was already used or cancelled: ask for a new one (tes device add)."}
	// ErrUserNotAllowed: the token's user is disabled or may not report.
	ErrUserNotAllowed = &tes.Error{Code: tes.EFORBIDDEN, Message: "The join token's user may not report."}
)

// Service creates and redeems join tokens.
type Service struct {
	Devices tes.DeviceStore
	Users   tes.UserStore
	CA      *ca.CA
	Rand    io.Reader        // nil: crypto/rand
	Now     func() time.Time // nil: time.Now
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Create makes and stores a join token for user, valid for ttl (0 means
// DefaultTTL), carrying addr as the TLS suite's address when not empty.
// Errors: EINVALID (ttl out of range, bad address), ENOTFOUND (no such
// user), EFORBIDDEN (the user is disabled or may not report).
func (s *Service) Create(ctx context.Context, user, createdBy string, ttl time.Duration, addr string) (*Token, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Minute || ttl > MaxTTL {
		return nil, tes.Errorf(tes.EINVALID, "A join token must be valid for 1 minute to %d days.", int(MaxTTL.Hours()/24))
	}
	u, err := s.Users.User(ctx, user)
	if err != nil {
		return nil, err
	}
	if u.Disabled || !u.Role.CanReport() {
		return nil, tes.Errorf(tes.EFORBIDDEN, "User %s is %s and may not report: devices are for police or admin accounts that are enabled.", u.Name, u.Role)
	}
	rnd := s.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := s.now()
	tok, err := Generate(rnd, s.CA.Hash(), addr, now.Add(ttl))
	if err != nil {
		return nil, tes.Errorf(tes.EINVALID, "%v", err)
	}
	rec := &tes.JoinToken{ID: tok.ID, Verifier: tok.Verifier(), User: u.Name, CreatedBy: createdBy, CreatedAt: now, ExpiresAt: tok.Expires}
	if err := s.Devices.CreateJoinToken(ctx, rec); err != nil {
		return nil, err
	}
	return tok, nil
}

// Request is what a device sends to redeem a token.
type Request struct {
	TokenID string
	CSR     []byte // PKCS#10 DER with the device's Ed25519 key
	Proof   []byte // Token.Prove(exporter, CSR)
}

// Redeem checks req against the stored token and this connection's
// exporter, certifies the CSR's key for the token's device ID and user, and
// records the device, redeeming the token. Errors: ErrInvalidToken,
// ErrExpired, ErrUsed, ErrUserNotAllowed, EINVALID for a bad CSR, and
// store errors.
func (s *Service) Redeem(ctx context.Context, req *Request, exporter []byte) (*tes.Device, *x509.Certificate, error) {
	t, err := s.Devices.JoinToken(ctx, req.TokenID)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		return nil, nil, ErrInvalidToken
	} else if err != nil {
		return nil, nil, err
	}
	// The proof first: a state (expired, used) is told only to whoever
	// holds the secret.
	if !VerifyProof(t.Verifier, t.ID, exporter, req.CSR, req.Proof) {
		return nil, nil, ErrInvalidToken
	}
	now := tes.AuditTime(s.now())
	switch {
	case !t.UsedAt.IsZero() || !t.RevokedAt.IsZero():
		return nil, nil, ErrUsed
	case !now.Before(t.ExpiresAt):
		return nil, nil, ErrExpired
	}
	u, err := s.Users.User(ctx, t.User)
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled || !u.Role.CanReport() {
		return nil, nil, ErrUserNotAllowed
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, nil, tes.Errorf(tes.EINVALID, "The certificate request is not PKCS#10 DER.")
	}
	cert, err := s.CA.IssueDevice(csr, t.ID, t.User)
	if err != nil {
		return nil, nil, &tes.Error{Code: tes.EINVALID, Message: "The certificate request must be self-signed with an Ed25519 key.", Err: err}
	}
	d := &tes.Device{ID: t.ID, User: t.User, KeyFingerprint: ca.Fingerprint(cert.RawSubjectPublicKeyInfo), Cert: cert.Raw, EnrolledAt: now}
	if err := s.Devices.EnrollDevice(ctx, d); err != nil {
		switch tes.ErrorCode(err) {
		case tes.ECONFLICT:
			return nil, nil, errors.Join(ErrUsed, err)
		case tes.EUNAUTHORIZED:
			return nil, nil, errors.Join(ErrExpired, err)
		}
		return nil, nil, err
	}
	return d, cert, nil
}
