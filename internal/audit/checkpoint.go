// Package audit signs checkpoints of the tamper-evident audit log and
// verifies the log (`tes audit verify`).
//
// The log is a hash chain (tes.ChainHash): each event's hash covers its
// fields and the previous event's hash. That finds a careless edit, but
// someone who can write the database can also recompute every hash after
// an edit. So the officer signs a checkpoint of the chain's head with its
// signing key (internal/ca, a file in the data directory) every interval
// when the head moved, and at shutdown; the database holds no key that can
// make one. Verify recomputes the chain, checks that seq runs 1, 2, 3...
// without gaps, checks each checkpoint's signature and that the chain still
// has the signed hash at the signed seq, and names the first bad entry.
//
// # Checkpoint signature, version 1
//
// Ed25519 over four fields, each a 4-byte big-endian length and the bytes:
// "tes-audit-checkpoint-v1"; seq as 8 bytes big-endian; the event's 32-byte
// hash; the signing time as 8 bytes big-endian unix microseconds.
package audit

import (
	"context"
	"encoding/binary"
	"log/slog"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
)

// CheckpointMessage is the byte string a checkpoint signs.
func CheckpointMessage(seq int64, hash []byte, at time.Time) []byte {
	var out []byte
	put := func(b []byte) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	put([]byte("tes-audit-checkpoint-v1"))
	put(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	put(hash)
	put(binary.BigEndian.AppendUint64(nil, uint64(tes.AuditTime(at).UnixMicro())))
	return out
}

// Sign signs and stores a checkpoint of the chain's current head, unless
// the head is at or before skipThrough (already covered). It returns the
// checkpoint, or nil when there was nothing to sign. Errors are the
// store's.
func Sign(ctx context.Context, st tes.CheckpointStore, signer *ca.Signer, skipThrough int64, now time.Time) (*tes.Checkpoint, error) {
	seq, hash, err := st.AuditHead(ctx)
	if err != nil || seq == 0 || seq <= skipThrough {
		return nil, err
	}
	at := tes.AuditTime(now)
	c := &tes.Checkpoint{Seq: seq, Hash: hash, At: at, KeyFingerprint: signer.Fingerprint(),
		PublicKey: signer.Cert.RawSubjectPublicKeyInfo, Signature: signer.Sign(CheckpointMessage(seq, hash, at))}
	if err := st.AddCheckpoint(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Checkpointer signs a checkpoint every Interval when the head moved.
type Checkpointer struct {
	Store    tes.CheckpointStore
	Signer   *ca.Signer
	Interval time.Duration // default 1 minute
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now

	last int64 // the newest seq this checkpointer signed
}

// Run signs until ctx ends. It does not sign at the end: the caller calls
// Final once the last events are written.
func (c *Checkpointer) Run(ctx context.Context) {
	iv := c.Interval
	if iv <= 0 {
		iv = time.Minute
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.once(ctx)
		}
	}
}

// Final signs the head if it moved since the last checkpoint: at shutdown,
// after the last audit events were appended.
func (c *Checkpointer) Final(ctx context.Context) { c.once(ctx) }

func (c *Checkpointer) once(ctx context.Context) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	cp, err := Sign(ctx, c.Store, c.Signer, c.last, now())
	if err != nil {
		if c.Log != nil {
			c.Log.Error("audit checkpoint failed", "err", err)
		}
		return
	}
	if cp != nil {
		c.last = cp.Seq
		if c.Log != nil {
			c.Log.Debug("audit checkpoint signed", "seq", cp.Seq)
		}
	}
}
