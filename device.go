package tes

import (
	"context"
	"time"
)

// Device is a reporting unit enrolled for the TLS suite: it holds an Ed25519
// key generated on the device, and the officer's CA has certified that key
// for this device and user. Reports over the TLS suite are signed with it.
type Device struct {
	ID             string    // the join token's ID; also the certificate's common name
	User           string    // the account the device reports as
	KeyFingerprint string    // "SHA256:..." of the device key's SubjectPublicKeyInfo
	Cert           []byte    // the issued client certificate, DER
	EnrolledAt     time.Time // when the join token was redeemed
	RevokedAt      time.Time // zero while the device may connect
	RevokedBy      string
}

// Revoked reports whether the device is refused at the handshake.
func (d *Device) Revoked() bool { return !d.RevokedAt.IsZero() }

// JoinToken is the stored half of a join token: everything but the
// secret. The store keeps only Verifier, a one-way function of the secret
// (an Ed25519 public key derived from it, see internal/enroll), so the
// database holds nothing that can enroll a device.
type JoinToken struct {
	ID        string // 16 lower-case hex digits; becomes the device ID
	Verifier  []byte // 32 bytes
	User      string // the account the enrolled device will report as
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until a device enrolled with it
	RevokedAt time.Time // zero unless cancelled before use
}

// DeviceStore keeps join tokens and enrolled devices. Every method that
// changes state appends its audit event to the chain in the same
// transaction, so an enrolment or revocation is never missing from the log.
//
// Implementations: SQLite (internal/sqlite). Times are stored with
// microsecond precision and returned in UTC, like every other store time.
type DeviceStore interface {
	// CreateJoinToken stores t and appends a "device.added" event (actor
	// t.CreatedBy). Errors: EINVALID for a token without an ID, a 32-byte
	// verifier, a user or an expiry; ENOTFOUND if the user does not exist;
	// ECONFLICT if the ID is taken.
	CreateJoinToken(ctx context.Context, t *JoinToken) error

	// JoinToken returns the token with id, or ENOTFOUND.
	JoinToken(ctx context.Context, id string) (*JoinToken, error)

	// JoinTokens lists every token, newest first.
	JoinTokens(ctx context.Context) ([]*JoinToken, error)

	// EnrollDevice redeems the join token d.ID and stores d, in one
	// transaction guarded on the token being unused, not cancelled and
	// unexpired at d.EnrolledAt, and appends a "device.enrolled" event (actor
	// d.User). d.User must be the token's user. Errors: ENOTFOUND (no such
	// token), EUNAUTHORIZED (expired), ECONFLICT (already used or
	// cancelled), EINVALID (missing fields, another user).
	EnrollDevice(ctx context.Context, d *Device) error

	// Device returns an enrolled device, or ENOTFOUND.
	Device(ctx context.Context, id string) (*Device, error)

	// Devices lists every enrolled device, most recently enrolled first.
	Devices(ctx context.Context) ([]*Device, error)

	// RevokeDevice revokes the enrolled device id, or cancels the unused
	// join token id when no device enrolled with it yet, and appends a
	// "device.revoked" event (actor by). Errors: ENOTFOUND, ECONFLICT when
	// it is already revoked or the token was already used up or cancelled.
	RevokeDevice(ctx context.Context, id, by string, at time.Time) error
}
