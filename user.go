package tes

import (
	"strings"
	"time"
)

// Role is what a user may do.
type Role string

// The roles. Police report; officers review; admins do both and manage users.
const (
	RolePolice  Role = "police"
	RoleOfficer Role = "officer"
	RoleAdmin   Role = "admin"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RolePolice, RoleOfficer, RoleAdmin:
		return r, nil
	}
	return "", Errorf(EINVALID, "Unknown role %q: use police, officer or admin.", s)
}

// CanReport reports whether the role may send violation reports.
func (r Role) CanReport() bool { return r == RolePolice || r == RoleAdmin }

// CanReview reports whether the role may approve and reject violations.
func (r Role) CanReview() bool { return r == RoleOfficer || r == RoleAdmin }

// User is an account on the officer server.
type User struct {
	Name           string
	Role           Role
	PasswordHash   string // PHC-format argon2id string; never shown
	Disabled       bool
	MustChangePass bool      // set for generated passwords; cleared by a change
	FailedLogins   int       // consecutive failures; reset on success
	LockedUntil    time.Time // sign-in refused before this time (throttling)
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ValidateUsername checks a user name: 1-64 of a-z, A-Z, 0-9, '.', '_', '-'.
func ValidateUsername(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return Errorf(EINVALID, "A user name must be 1 to 64 characters.")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return Errorf(EINVALID, "A user name may hold only letters, digits, '.', '_' and '-'.")
		}
	}
	return nil
}

// ValidatePassword enforces NIST SP 800-63B lengths: at least 8 characters,
// at most 256 bytes (the hash input stays bounded).
func ValidatePassword(pw string) error {
	if len([]rune(pw)) < 8 {
		return Errorf(EINVALID, "A password must be at least 8 characters.")
	}
	if len(pw) > 256 {
		return Errorf(EINVALID, "A password must be at most 256 bytes.")
	}
	return nil
}
