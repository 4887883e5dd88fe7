package tes

import (
	"context"
	"time"
)

// Checkpoint is the officer's signature over the audit chain's head: it
// commits to every event up to Seq, so an attacker who rewrites the log
// and recomputes the hashes still cannot match it without the signing key.
// See internal/audit for the signed encoding.
type Checkpoint struct {
	ID             int64     // store-assigned, increasing
	Seq            int64     // the last event covered
	Hash           []byte    // that event's Hash
	At             time.Time // when it was signed (microseconds, UTC)
	KeyFingerprint string    // "SHA256:..." of PublicKey
	PublicKey      []byte    // the signer's Ed25519 SubjectPublicKeyInfo DER
	Signature      []byte
}

// CheckpointStore keeps signed checkpoints of the audit chain and reads the
// chain in order for a verifier. Like the chain itself it is append-only.
type CheckpointStore interface {
	// AuditHead returns the newest event's seq and hash, or 0 and nil for an
	// empty log. It reads the database, never a cache, so several
	// processes sharing one database see each other's events.
	AuditHead(ctx context.Context) (seq int64, hash []byte, err error)

	// AddCheckpoint stores c, guarded on an event with c.Seq and c.Hash
	// being in the log (ECONFLICT otherwise), and sets c.ID. EINVALID for a
	// checkpoint with a missing field.
	AddCheckpoint(ctx context.Context, c *Checkpoint) error

	// Checkpoints returns every checkpoint, oldest first.
	Checkpoints(ctx context.Context) ([]*Checkpoint, error)

	// EventsAfter returns up to limit events with Seq > after, oldest first,
	// as stored: a verifier sees gaps and out-of-order rows as they are.
	// limit outside 1..10000 is EINVALID.
	EventsAfter(ctx context.Context, after int64, limit int) ([]*Event, error)
}
