// Package storetest is the one contract test suite for tes.Store. Every
// backend (internal/sqlite, internal/postgres) runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) tes.Store { return mustOpen(t) })
//	}
//
// The suite pins down what the tes.Store doc comments leave to the
// implementation, so that the backends agree:
//
//   - Times come back in UTC, truncated to microseconds.
//   - Ingest validates every item before writing; an item that breaks the
//     IngestItem contract fails the whole call and writes nothing. A report
//     with a signature is stored with SigVerified set (the ingest path
//     refuses reports whose signature does not verify).
//   - Violations: From is inclusive, To exclusive, MinSpeed and MaxSpeed
//     inclusive; Limit 0 means 50 and a limit outside 1..1000, an unknown
//     sort or status is EINVALID. The cursor is nil on the last page; every
//     page before it is full.
//   - Plates in filters and lookups are normalised (tes.NormalizePlate).
//   - Approval creates the driver record even when the rules give 0 points.
//   - Drivers: newest UpdatedAt first. With MinPoints a page may be short
//     while the next key is not ""; following keys to "" yields every match
//     exactly once.
//   - Sessions and tokens need an existing user (ENOTFOUND otherwise);
//     DeleteWebSession of a missing session is not an error, DeleteAPIToken
//     of a missing token is ENOTFOUND.
//   - The audit chain of a new store starts at the first event with a nil
//     PrevHash, and every event's Hash is tes.ChainHash(PrevHash, event).
package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

// Run runs every contract test against stores made by open. open is called
// once per subtest and must return a new, empty store isolated from every
// other (subtests run in parallel); it should close the store with
// t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) tes.Store) {
	groups := []struct {
		name  string
		tests []namedTest
	}{
		{"Ingest", ingestTests},
		{"Violations", violationsTests},
		{"Decide", decideTests},
		{"Drivers", driversTests},
		{"Users", usersTests},
		{"Sessions", sessionsTests},
		{"Audit", auditTests},
		{"Meta", []namedTest{{"ClaimMeta", testClaimMeta}}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, open(t))
				})
			}
		})
	}
}

type namedTest struct {
	name string
	fn   func(t *testing.T, s tes.Store)
}

// base is the suite's reference time, with a nanosecond part that a
// backend must drop.
var base = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

var digestCounter atomic.Int64

// newDigest returns a SHA-256 value no other call returns.
func newDigest() []byte {
	d := sha256.Sum256(fmt.Appendf(nil, "storetest digest %d", digestCounter.Add(1)))
	return d[:]
}

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func reportID(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n) }

// newReport returns a complete report, as the protocol layer hands it over.
func newReport(plate string, speed int) *tes.Report {
	return &tes.Report{
		Plate:      plate,
		Speed:      speed,
		SpeedLimit: 50,
		Location:   "A1 km 42, northbound",
		ObservedAt: base.Add(-time.Minute),
		User:       "unit7",
		Suite:      tes.SuiteTES1,
		Evidence: tes.Evidence{
			Signed:         []byte("iv||ciphertext of " + plate),
			Signature:      []byte("signature over " + plate),
			KeyFingerprint: "SHA256:unit7-key",
			PublicKey:      []byte("SPKI DER of unit7's key"),
		},
	}
}

func reportItem(r *tes.Report, at time.Time) *tes.IngestItem {
	return &tes.IngestItem{MessageDigest: newDigest(), Report: r, ReceivedAt: at}
}

func mustIngest(t *testing.T, s tes.Store, items ...*tes.IngestItem) {
	t.Helper()
	if err := s.Ingest(context.Background(), items); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
}

// mustStore ingests one report and returns its violation id.
func mustStore(t *testing.T, s tes.Store, r *tes.Report, at time.Time) int64 {
	t.Helper()
	it := reportItem(r, at)
	mustIngest(t, s, it)
	if it.Outcome != tes.OutcomeStored || it.ViolationID <= 0 {
		t.Fatalf("Ingest outcome = %v id %d, want stored", it.Outcome, it.ViolationID)
	}
	return it.ViolationID
}

func mustViolation(t *testing.T, s tes.Store, id int64) *tes.Violation {
	t.Helper()
	v, err := s.Violation(context.Background(), id)
	if err != nil {
		t.Fatalf("Violation(%d): %v", id, err)
	}
	return v
}

func mustCreateUser(t *testing.T, s tes.Store, name string, role tes.Role) *tes.User {
	t.Helper()
	u := &tes.User{Name: name, Role: role, PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", CreatedAt: base, UpdatedAt: base}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code string, what string) {
	t.Helper()
	if got := tes.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func mustCounts(t *testing.T, s tes.Store) map[tes.Status]int {
	t.Helper()
	c, err := s.CountByStatus(context.Background())
	if err != nil {
		t.Fatalf("CountByStatus: %v", err)
	}
	return c
}

func wantCounts(t *testing.T, s tes.Store, pending, approved, rejected int) {
	t.Helper()
	c := mustCounts(t, s)
	if c[tes.StatusPending] != pending || c[tes.StatusApproved] != approved || c[tes.StatusRejected] != rejected {
		t.Fatalf("CountByStatus = %v, want PENDING %d, APPROVED %d, REJECTED %d", c, pending, approved, rejected)
	}
}

// allEvents reads the whole audit log, oldest first, through Events pages.
func allEvents(t *testing.T, s tes.Store) []*tes.Event {
	t.Helper()
	var newestFirst []*tes.Event
	before := int64(0)
	for range 10000 {
		page, err := s.Events(context.Background(), before, 7)
		if err != nil {
			t.Fatalf("Events(%d, 7): %v", before, err)
		}
		if len(page) == 0 {
			break
		}
		newestFirst = append(newestFirst, page...)
		before = page[len(page)-1].Seq
	}
	out := make([]*tes.Event, len(newestFirst))
	for i, e := range newestFirst {
		out[len(out)-1-i] = e
	}
	return out
}

// verifyChain recomputes the hash chain over the whole log in Seq order.
func verifyChain(t *testing.T, s tes.Store) []*tes.Event {
	t.Helper()
	events := allEvents(t, s)
	var prev []byte
	for i, e := range events {
		if i > 0 && e.Seq != events[i-1].Seq+1 {
			t.Fatalf("event seq %d follows %d: the chain has a gap", e.Seq, events[i-1].Seq)
		}
		if string(e.PrevHash) != string(prev) {
			t.Fatalf("event %d PrevHash = %x, want the previous hash %x", e.Seq, e.PrevHash, prev)
		}
		if want := tes.ChainHash(prev, e); string(e.Hash) != string(want) {
			t.Fatalf("event %d (%s) Hash = %x, recomputed %x", e.Seq, e.Action, e.Hash, want)
		}
		prev = e.Hash
	}
	return events
}

func findEvent(events []*tes.Event, action, subject string) *tes.Event {
	for _, e := range events {
		if e.Action == action && e.Subject == subject {
			return e
		}
	}
	return nil
}

func subject(id int64) string { return fmt.Sprintf("violation:%d", id) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// testClaimMeta: the first claim records, later ones return what is
// recorded, replace overwrites; names are independent.
func testClaimMeta(t *testing.T, s tes.Store) {
	ctx := context.Background()
	claim := func(name, value string, replace bool, want string) {
		t.Helper()
		got, err := s.ClaimMeta(ctx, name, []byte(value), replace)
		if err != nil || string(got) != want {
			t.Fatalf("ClaimMeta(%s, %s, replace=%t) = %q, %v; want %q", name, value, replace, got, err, want)
		}
	}
	claim("tes1_key_fingerprint", "SHA256:a", false, "SHA256:a")
	claim("tes1_key_fingerprint", "SHA256:b", false, "SHA256:a")
	claim("tls_ca_hash", "sha256:c", false, "sha256:c")
	claim("tes1_key_fingerprint", "SHA256:b", true, "SHA256:b")
	claim("tes1_key_fingerprint", "SHA256:a", false, "SHA256:b")
	claim("tls_ca_hash", "sha256:d", false, "sha256:c")
}
