package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/tes-traffic/tes"
)

// TokenPrefix starts every API token, so that a leaked token is easy to
// recognise in logs and by secret scanners.
const TokenPrefix = "tes_"

// maxTokenName bounds the label an admin gives a token.
const maxTokenName = 64

// HashToken returns the SHA-256 of a raw API token: the only form the store
// keeps.
func HashToken(raw string) []byte {
	h := sha256.Sum256([]byte(raw))
	return h[:]
}

// CreateAPIToken issues a bearer token that acts as the account user. It
// returns the raw token, which is shown once and never stored, and the stored
// record. The account must exist and be enabled. The change is audited.
// Errors: EINVALID for a bad name, ENOTFOUND for an unknown user.
func (s *Service) CreateAPIToken(ctx context.Context, actor, name, user string) (string, *tes.APIToken, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxTokenName {
		return "", nil, tes.Errorf(tes.EINVALID, "A token name must be 1 to %d characters.", maxTokenName)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return "", nil, tes.Errorf(tes.EINVALID, "A token name may not hold control characters.")
		}
	}
	u, err := s.Store.User(ctx, user)
	if err != nil {
		return "", nil, err
	}
	if u.Disabled {
		return "", nil, tes.Errorf(tes.EINVALID, "User %s is disabled: enable the account first.", u.Name)
	}
	var b [32]byte
	rand.Read(b[:])
	raw := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	t := &tes.APIToken{IDHash: HashToken(raw), Name: name, User: u.Name, CreatedAt: s.now()}
	ev := s.event(actor, "token.created", "user:"+u.Name, "token="+hex.EncodeToString(t.IDHash[:6])+" name="+name)
	if err := s.Store.CreateAPIToken(ctx, t, ev); err != nil {
		return "", nil, err
	}
	return raw, t, nil
}

// RevokeAPIToken deletes the token whose hash is idHash. The change is
// audited. Errors: ENOTFOUND if there is no such token (when the store
// reports it).
func (s *Service) RevokeAPIToken(ctx context.Context, actor string, idHash []byte) error {
	return s.Store.DeleteAPIToken(ctx, idHash, s.event(actor, "token.revoked", "token:"+hex.EncodeToString(idHash[:min(len(idHash), 6)]), ""))
}

// AuthenticateToken returns the account a raw bearer token acts as. Every
// failure (unknown token, deleted or disabled user) is EUNAUTHORIZED with one
// message, so a caller learns nothing about which part was wrong.
func (s *Service) AuthenticateToken(ctx context.Context, raw string) (*tes.User, error) {
	bad := tes.Errorf(tes.EUNAUTHORIZED, "Invalid or revoked API token.")
	if !strings.HasPrefix(raw, TokenPrefix) || len(raw) > 128 {
		return nil, bad
	}
	t, err := s.Store.APIToken(ctx, HashToken(raw))
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		return nil, bad
	} else if err != nil {
		return nil, err
	}
	u, err := s.Store.User(ctx, t.User)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		return nil, bad
	} else if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, bad
	}
	return u, nil
}

// Audit records an event on behalf of the web UIs (a sign-in, a sign-out),
// in the same log as the account changes. A failure is logged, not returned:
// the audit log must not stop a user from signing out.
func (s *Service) Audit(ctx context.Context, actor, action, subject, detail string) {
	s.audit(ctx, actor, action, subject, detail)
}
