package tes

import (
	"context"
	"time"
)

// WebSession is a signed-in browser session. The store keeps only the
// SHA-256 of the session id, so a leaked database cannot be replayed as cookies.
type WebSession struct {
	IDHash    []byte
	User      string
	CSRFToken string
	CreatedAt time.Time
	LastSeen  time.Time
}

// APIToken is a bearer token an admin issues to an integration. Only the
// token's SHA-256 is stored.
type APIToken struct {
	IDHash    []byte
	Name      string
	User      string // the account the token acts as
	CreatedAt time.Time
	LastUsed  time.Time
}

// SessionStore keeps web sessions and API tokens in the database, so that
// several officer nodes behind one load balancer share them.
type SessionStore interface {
	CreateWebSession(ctx context.Context, s *WebSession) error
	// WebSession returns the session or ENOTFOUND.
	WebSession(ctx context.Context, idHash []byte) (*WebSession, error)
	TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error
	DeleteWebSession(ctx context.Context, idHash []byte) error
	// DeleteUserWebSessions signs a user out everywhere (password reset, disable).
	DeleteUserWebSessions(ctx context.Context, user string) error

	// CreateAPIToken stores t and appends events in one transaction.
	CreateAPIToken(ctx context.Context, t *APIToken, events ...*Event) error
	// APIToken returns the token or ENOTFOUND.
	APIToken(ctx context.Context, idHash []byte) (*APIToken, error)
	APITokens(ctx context.Context) ([]*APIToken, error)
	// DeleteAPIToken deletes the token and appends events in one
	// transaction; ENOTFOUND if there is no such token.
	DeleteAPIToken(ctx context.Context, idHash []byte, events ...*Event) error
}
