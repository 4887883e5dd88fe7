// Package auth signs users in and manages accounts: argon2id password
// checks, throttling of failed sign-ins (NIST SP 800-63B 5.2.2) kept in the
// store so that it holds across server processes, and the account changes an
// admin makes, each recorded in the audit log.
package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/password"
)

// Throttling: after FreeFailures consecutive failures a user is locked for
// BaseLock, doubling with each further failure up to MaxLock. NIST allows at
// most 100 consecutive failures; we lock much sooner but only for a while, so
// an attacker cannot lock an officer out for long.
const (
	FreeFailures = 5
	BaseLock     = 30 * time.Second
	MaxLock      = 15 * time.Minute
)

// Store is what the service needs from the store.
type Store interface {
	tes.UserStore
	tes.AuditStore
	tes.SessionStore
}

// Service authenticates users and changes accounts.
type Service struct {
	Store Store
	Log   *slog.Logger
	Now   func() time.Time

	verified *verifiedCache // nil: every sign-in runs argon2id
}

// CacheVerified lets a repeat sign-in with a password verified within ttl
// skip argon2id (see verifiedCache for what is kept and why); at most max
// users are remembered. ttl <= 0 turns the cache off. Call it before the
// service is used.
func (s *Service) CacheVerified(ttl time.Duration, max int) {
	s.verified = newVerifiedCache(ttl, max)
}

// New returns a Service over store.
func New(store Store, log *slog.Logger) *Service {
	return &Service{Store: store, Log: log, Now: time.Now}
}

func (s *Service) now() time.Time { return s.Now() }

// verifyPassword is password.Verify; tests count its calls.
var verifyPassword = password.Verify

// ErrInvalidCredentials is what every failed sign-in returns, whether the
// user is unknown, disabled or the password is wrong, so that it tells an
// attacker nothing about which names exist.
var ErrInvalidCredentials = &tes.Error{Code: tes.EUNAUTHORIZED, Message: "Invalid user name or password."}

// Authenticate checks name and pw. It returns the user, or
// ErrInvalidCredentials, or an ERATELIMIT error while the user is locked.
func (s *Service) Authenticate(ctx context.Context, name, pw string) (*tes.User, error) {
	if len(pw) > 256 || len(name) > 64 {
		password.Burn(pw[:min(len(pw), 256)])
		return nil, ErrInvalidCredentials
	}
	u, err := s.Store.User(ctx, name)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		password.Burn(pw)
		return nil, ErrInvalidCredentials
	} else if err != nil {
		return nil, err
	}
	now := s.now()
	if now.Before(u.LockedUntil) {
		return nil, tes.Errorf(tes.ERATELIMIT, "Too many failed sign-ins: try again in %s.", u.LockedUntil.Sub(now).Round(time.Second))
	}
	var ok, rehash bool
	if !u.Disabled && s.verified.check(name, u.PasswordHash, pw, now) {
		ok = true
	} else {
		ok, rehash, err = verifyPassword(pw, u.PasswordHash)
		if err != nil {
			s.Log.Error("stored password hash is unreadable", "user", name, "err", err)
			return nil, ErrInvalidCredentials
		}
		if ok && !u.Disabled && !rehash {
			s.verified.remember(name, u.PasswordHash, pw, now)
		}
	}
	if !ok || u.Disabled {
		// The lock, when this failure sets one, is recorded in the same
		// transaction as the counter.
		lock := s.event(name, "", "user:"+name, "")
		if err := s.Store.UpdateUser(ctx, name, func(u *tes.User) error {
			u.FailedLogins++
			if n := u.FailedLogins - FreeFailures; n >= 0 {
				d := BaseLock << min(n, 10)
				u.LockedUntil = now.Add(min(d, MaxLock))
				lock.Action = "user.locked"
				lock.Detail = fmt.Sprintf("until=%s", u.LockedUntil.UTC().Format(time.RFC3339))
			}
			return nil
		}, lock); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	if u.FailedLogins > 0 || rehash {
		err := s.Store.UpdateUser(ctx, name, func(u *tes.User) error {
			u.FailedLogins = 0
			u.LockedUntil = time.Time{}
			if rehash {
				if h, err := password.Hash(pw); err == nil {
					u.PasswordHash = h
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		u.FailedLogins = 0
	}
	return u, nil
}

// CreateUser adds an account. actor is who asks ("" for the command line).
func (s *Service) CreateUser(ctx context.Context, actor, name string, role tes.Role, pw string, mustChange bool) (*tes.User, error) {
	if err := tes.ValidateUsername(name); err != nil {
		return nil, err
	}
	if _, err := tes.ParseRole(string(role)); err != nil {
		return nil, err
	}
	if err := tes.ValidatePassword(pw); err != nil {
		return nil, err
	}
	h, err := password.Hash(pw)
	if err != nil {
		return nil, err
	}
	now := s.now()
	u := &tes.User{Name: name, Role: role, PasswordHash: h, MustChangePass: mustChange, CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateUser(ctx, u, s.event(actor, "user.added", "user:"+name, "role="+string(role))); err != nil {
		return nil, err
	}
	return u, nil
}

// SetPassword replaces a user's password and signs them out everywhere.
// mustChange forces a change at the next sign-in (an admin's reset).
func (s *Service) SetPassword(ctx context.Context, actor, name, pw string, mustChange bool) error {
	if err := tes.ValidatePassword(pw); err != nil {
		return err
	}
	h, err := password.Hash(pw)
	if err != nil {
		return err
	}
	if err := s.Store.UpdateUser(ctx, name, func(u *tes.User) error {
		u.PasswordHash = h
		u.MustChangePass = mustChange
		u.FailedLogins = 0
		u.LockedUntil = time.Time{}
		u.UpdatedAt = s.now()
		return nil
	}, s.event(actor, "user.password_changed", "user:"+name, fmt.Sprintf("must_change=%t", mustChange))); err != nil {
		return err
	}
	// The store signed the user out everywhere in the same transaction.
	s.verified.forget(name)
	return nil
}

// SetDisabled disables or re-enables an account; disabling signs it out.
func (s *Service) SetDisabled(ctx context.Context, actor, name string, disabled bool) error {
	action := "user.enabled"
	if disabled {
		action = "user.disabled"
	}
	if err := s.Store.UpdateUser(ctx, name, func(u *tes.User) error {
		u.Disabled = disabled
		u.UpdatedAt = s.now()
		return nil
	}, s.event(actor, action, "user:"+name, "")); err != nil {
		return err
	}
	// Disabling signed the user out everywhere in the same transaction.
	s.verified.forget(name)
	return nil
}

// SetRole changes a user's role.
func (s *Service) SetRole(ctx context.Context, actor, name string, role tes.Role) error {
	if _, err := tes.ParseRole(string(role)); err != nil {
		return err
	}
	return s.Store.UpdateUser(ctx, name, func(u *tes.User) error {
		u.Role = role
		u.UpdatedAt = s.now()
		return nil
	}, s.event(actor, "user.role_changed", "user:"+name, "role="+string(role)))
}

// EnsureAdmin creates the "admin" account with a random password when the
// store has no users at all, and returns that password ("" when nothing was
// created). The password must be changed at first sign-in.
func (s *Service) EnsureAdmin(ctx context.Context) (string, error) {
	n, err := s.Store.CountUsers(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	pw := password.Generate()
	if _, err := s.CreateUser(ctx, "system", "admin", tes.RoleAdmin, pw, true); err != nil {
		if tes.ErrorCode(err) == tes.ECONFLICT { // another node created it first
			return "", nil
		}
		return "", err
	}
	return pw, nil
}

// event is the audit record of an account change by actor ("" for the
// command line), appended by the store in the change's own transaction.
func (s *Service) event(actor, action, subject, detail string) *tes.Event {
	if actor == "" {
		actor = "cli"
	}
	return &tes.Event{At: s.now(), Actor: actor, Action: action, Subject: subject, Detail: detail}
}

// audit appends an event that records no change of its own (a refused
// request, an export); a failure is logged, not returned.
func (s *Service) audit(ctx context.Context, actor, action, subject, detail string) {
	if err := s.Store.AppendEvents(ctx, s.event(actor, action, subject, detail)); err != nil {
		s.Log.Error("audit append failed", "action", action, "err", err)
	}
}
