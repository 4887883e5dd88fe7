package tes

import (
	"context"
	"time"
)

// IngestOutcome says what the store did with one ingest item.
type IngestOutcome int

// The outcomes of an ingest item.
const (
	OutcomeNone      IngestOutcome = iota // not yet committed
	OutcomeStored                         // a new row was written
	OutcomeDuplicate                      // the report_id was already stored; nothing new was written
	OutcomeReplay                         // the message or session digest was seen before; refused
)

func (o IngestOutcome) String() string {
	switch o {
	case OutcomeStored:
		return "stored"
	case OutcomeDuplicate:
		return "duplicate"
	case OutcomeReplay:
		return "replay"
	}
	return "none"
}

// IngestItem is one unit of work for the group-commit path: either a session
// claim (SessionDigest set, Report nil) or a report (Report set).
//
// Digests are SHA-256 values. The store enforces their uniqueness with a
// constraint, so a replay is refused across restarts and across several
// server processes that share one database.
type IngestItem struct {
	SessionDigest []byte // TES/1 SESSION: SHA-256 of encrypted_key
	// MessageDigest is, for a TES/1 DATA, the SHA-256 of the signed bytes:
	// the replay guard, required. A TLS-suite report has none: TLS refuses
	// a replayed record, and a resend after a lost reply is a duplicate by
	// report_id.
	MessageDigest []byte
	Report        *Report
	ReceivedAt    time.Time

	// Set by the store when Ingest returns nil.
	Outcome     IngestOutcome
	ViolationID int64 // the new or the already stored violation
}

// ViolationFilter selects a page of violations. Pages are keyset-paginated:
// pass the last row of one page as After to get the next.
type ViolationFilter struct {
	Status     Status // "" for any
	Plate      string // exact plate (normalised); "" for any
	From, To   time.Time
	MinSpeed   int
	MaxSpeed   int // 0 for no upper bound
	ReportedBy string

	Sort  string // "time" (default: newest first), "time_asc", "speed" (fastest first), "speed_asc"
	After *Cursor
	Limit int // 1..1000; 0 means 50
}

// Cursor is a keyset position: the sort key and id of the last row seen.
type Cursor struct {
	Key int64 // received_at in unix microseconds, or the speed
	ID  int64
}

// DriverFilter selects a page of driver records.
type DriverFilter struct {
	Plate         string // exact plate; "" for all
	MinPoints     int
	AfterPlateKey string // keyset: opaque key of the last row seen
	Limit         int
}

// Event is one entry of the tamper-evident audit log.
type Event struct {
	Seq      int64
	At       time.Time
	Actor    string // user name, or "system"
	Action   string // e.g. "report.accepted", "violation.approved"
	Subject  string // e.g. "violation:42", "user:alice"
	Detail   string
	PrevHash []byte
	Hash     []byte
}

// ViolationStore keeps violations and driver records.
type ViolationStore interface {
	// Ingest commits items in one transaction and sets each item's Outcome
	// and ViolationID. It returns an error (and sets no outcome) only when the
	// transaction as a whole failed; a replay or duplicate is an outcome.
	Ingest(ctx context.Context, items []*IngestItem) error

	// Violation returns one violation or an ENOTFOUND error.
	Violation(ctx context.Context, id int64) (*Violation, error)
	// Violations returns a page and the cursor of the next page (nil at the end).
	Violations(ctx context.Context, f ViolationFilter) ([]*Violation, *Cursor, error)
	// CountByStatus returns how many violations are in each status.
	CountByStatus(ctx context.Context) (map[Status]int, error)

	// Decide applies d in one transaction guarded on the violation being
	// PENDING. Approval adds rules' points to the driver's record in the same
	// transaction. A decided violation gives an ECONFLICT error saying who
	// decided it and when; the error's Decided field is not used.
	Decide(ctx context.Context, d Decision, rules Rules) (*Decided, error)

	// Driver returns one plate's record or ENOTFOUND.
	Driver(ctx context.Context, plate string) (*Driver, error)
	// Drivers returns a page of records and the key of the next page ("" at the end).
	Drivers(ctx context.Context, f DriverFilter) ([]*Driver, string, error)
}

// UserStore keeps accounts.
//
// The methods that change an account take the audit events that record
// the change and append them to the chain in the same transaction, so
// that an account change and its record are never one without the other.
type UserStore interface {
	// CreateUser adds u and appends events; ECONFLICT if the name is taken.
	CreateUser(ctx context.Context, u *User, events ...*Event) error
	// User returns one user or ENOTFOUND.
	User(ctx context.Context, name string) (*User, error)
	// Users lists every user by name.
	Users(ctx context.Context) ([]*User, error)
	// UpdateUser reads the user, calls fn and writes the result in one
	// transaction; ENOTFOUND if there is no such user. In the same
	// transaction it appends those of events that have an Action once fn
	// has run (so fn may fill in an event only when the change calls for
	// it), and, when the password hash changed or the account was
	// disabled, deletes the user's web sessions.
	UpdateUser(ctx context.Context, name string, fn func(*User) error, events ...*Event) error
	// CountUsers returns the number of accounts.
	CountUsers(ctx context.Context) (int, error)
}

// AuditStore keeps the hash-chained event log.
type AuditStore interface {
	// AppendEvents appends events to the chain in one transaction, setting
	// Seq, PrevHash and Hash on each.
	AppendEvents(ctx context.Context, events ...*Event) error
	// Events returns up to limit events, newest first, with Seq < before (0 for the newest).
	Events(ctx context.Context, before int64, limit int) ([]*Event, error)
}

// Store is everything the officer server keeps. Implementations: SQLite
// (internal/sqlite), PostgreSQL (internal/postgres).
type Store interface {
	ViolationStore
	UserStore
	AuditStore
	SessionStore
	MetaStore
	Close() error
}

// MetaStore keeps facts about the deployment that every node sharing the
// store must agree on, such as the fingerprint of the TES/1 server key that
// clients pin.
type MetaStore interface {
	// ClaimMeta records value under name if nothing is recorded yet, and
	// returns what is recorded (value itself on the first claim). With
	// replace, value overwrites what is recorded.
	ClaimMeta(ctx context.Context, name string, value []byte, replace bool) ([]byte, error)
}

// ReportStatus is what a reporting unit may learn about its own report.
type ReportStatus struct {
	ReportID     string       `json:"report_id"`
	ViolationID  int64        `json:"id"`
	Status       Status       `json:"status"`
	RejectReason RejectReason `json:"reject_reason,omitempty"`
	DecidedAt    time.Time    `json:"decided_at,omitzero"`
	Points       int          `json:"points_applied,omitempty"`
}

// ReportStatusStore answers a reporting unit's question "what happened to
// my reports?". Only reports by user are returned; unknown ids are left out.
type ReportStatusStore interface {
	ReportStatuses(ctx context.Context, user string, reportIDs []string) ([]ReportStatus, error)
}
