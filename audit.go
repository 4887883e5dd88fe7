package tes

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// ChainHash computes the hash of e linked to prev, the hash of the entry
// before it (nil for the first). Every backend and every verifier uses this
// one function, so a chain written by SQLite verifies after a copy to
// PostgreSQL. The encoding is length-prefixed so that no two different
// events share an input.
func ChainHash(prev []byte, e *Event) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("tes-audit-v1"))
	field(prev)
	var v [8]byte // a buffer of its own: field reuses n for the length
	binary.BigEndian.PutUint64(v[:], uint64(e.Seq))
	field(v[:])
	binary.BigEndian.PutUint64(v[:], uint64(e.At.UTC().UnixNano()))
	field(v[:])
	field([]byte(e.Actor))
	field([]byte(e.Action))
	field([]byte(e.Subject))
	field([]byte(e.Detail))
	return h.Sum(nil)
}

// AuditTime truncates t to the precision every backend stores (microseconds),
// so that a hash computed before a write matches one computed after a read.
func AuditTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// StageEvents returns copies of the events that have an action, with At
// defaulting to now: what a store appends in the transaction of a change
// (UserStore, SessionStore), leaving the caller's events as they are.
func StageEvents(events []*Event, now time.Time) []*Event {
	var out []*Event
	for _, e := range events {
		if e == nil || e.Action == "" {
			continue
		}
		c := *e
		if c.At.IsZero() {
			c.At = now
		}
		out = append(out, &c)
	}
	return out
}
