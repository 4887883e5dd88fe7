// Package outbox is the police client's store-and-forward queue: a durable
// local SQLite file in which every report is committed before anyone is told
// it was "queued", and a Sender that delivers the queue to an officer server
// over TES/1, retrying with backoff until the server acknowledges.
//
// A report moves through these states (every move is one UPDATE guarded on
// the current state, so a move that does not apply changes nothing):
//
//	queued ──claim──▶ sent ──OK──────────▶ acknowledged ──STATUS──▶ approved
//	  ▲                │  └──ERROR reply──▶ refused                └─▶ rejected
//	  └──transport─────┘
//	     failure (backoff)
//
// "sent" means written to a connection with no answer yet. A transport
// failure after that (the acknowledgement may have been lost) puts the
// report back to queued; the resend carries the same report_id, and the
// officer server stores a report_id only once, so a resend never makes a
// duplicate. That is also why a report never gets a new report_id.
//
// The outbox does not need the web UI: `tes report --outbox DIR` uses it
// from scripts and cameras.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the outbox's file name inside a data directory.
const FileName = "outbox.db"

// DefaultRetention is how long finished reports (acknowledged, decided or
// refused) stay on the device for the history list. Queued reports are never
// pruned.
const DefaultRetention = 30 * 24 * time.Hour

// State is where a report is on its way to the officer server.
type State string

// The states of a report; see the package comment for the transitions.
const (
	StateQueued       State = "queued"       // saved on this device, not yet acknowledged
	StateSent         State = "sent"         // written to a connection, no answer yet
	StateAcknowledged State = "acknowledged" // the officer server durably stored it
	StateRefused      State = "refused"      // the officer server answered ERROR; never resent
	StateApproved     State = "approved"     // an officer approved it
	StateRejected     State = "rejected"     // an officer rejected it (see DecidedReason)
)

// Pending reports whether a report in state s still has to be delivered.
func (s State) Pending() bool { return s == StateQueued || s == StateSent }

// Entry is one report in the outbox.
type Entry struct {
	ID            int64
	ReportID      string
	User          string
	Server        string
	Plate         string
	Speed         int
	SpeedLimit    int
	Location      string
	ObservedAt    time.Time // zero when not given
	CreatedAt     time.Time
	State         State
	Attempts      int // times it was written to a connection
	LastError     string
	NextAttemptAt time.Time
	AckedAt       time.Time
	ViolationID   int64
	DecidedStatus tes.Status       // APPROVED or REJECTED once decided
	DecidedReason tes.RejectReason // for REJECTED
	DecidedPoints int              // for APPROVED
	DecidedAt     time.Time
}

// Report returns the entry as the report the protocol sends.
func (e *Entry) Report() *tes.Report {
	return &tes.Report{ReportID: e.ReportID, Plate: e.Plate, Speed: e.Speed, SpeedLimit: e.SpeedLimit,
		Location: e.Location, ObservedAt: e.ObservedAt, User: e.User}
}

// Outbox is an open outbox file. It is safe for concurrent use, and several
// processes may share one file (SQLite locks it; a report claimed by one
// sender is not picked by another until its lease runs out).
type Outbox struct {
	db   *sql.DB
	path string
	now  func() time.Time
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// Open opens or creates the outbox at path (see FileName), readable by the
// owner only, in WAL mode with synchronous=FULL: once Enqueue returns, the
// report survives a crash or a power cut. It applies the embedded schema
// migrations and releases the leases of reports a crashed process left in
// state sent, so they are sent again (with the same report_id).
func Open(ctx context.Context, path string) (*Outbox, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, tes.Errorf(tes.EINVALID, "Invalid outbox path %q: use a plain file name.", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("outbox: create %s: %w", path, err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	// One connection: every statement is serialised, which is plenty for
	// one device, and no transaction ever has to upgrade a read lock.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	o := &Outbox{db: db, path: path, now: time.Now}
	if err := o.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `UPDATE reports SET next_attempt_at = ? WHERE state = 'sent'`, micros(o.now())); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: release leases: %w", err)
	}
	return o, nil
}

// createPrivate creates path with mode 0600 (its directory 0700) unless it
// exists, so that SQLite never creates it with the default mode; the -wal
// and -shm files get the database's mode.
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	return f.Close()
}

// migrate applies the embedded migrations newer than the file's version,
// each in one transaction together with its schema_migrations row.
func (o *Outbox) migrate(ctx context.Context) error {
	if _, err := o.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for i, name := range names {
		base := filepath.Base(name)
		num, _, _ := strings.Cut(base, "_")
		if v, err := strconv.Atoi(num); err != nil || v != i+1 {
			return fmt.Errorf("outbox: migration %s is not number %d", base, i+1)
		}
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return err
		}
		err = o.tx(ctx, func(tx *sql.Tx) error {
			var cur sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&cur); err != nil {
				return err
			}
			if int(cur.Int64) > len(names) {
				return tes.Errorf(tes.EINVALID, "The outbox %s was written by a newer tes (schema %d): upgrade tes.", o.path, cur.Int64)
			}
			if int(cur.Int64) > i {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("%s: %w", base, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, i+1, micros(o.now()))
			return err
		})
		if err != nil {
			if tes.ErrorCode(err) == tes.EINVALID {
				return err
			}
			return fmt.Errorf("outbox: migrate: %w", err)
		}
	}
	return nil
}

func (o *Outbox) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

// Path returns the file's path.
func (o *Outbox) Path() string { return o.path }

// Enqueue validates r (tes.Report.Validate, which also normalises the
// plate), gives it a report_id when it has none, and commits it as queued
// for user and server. It returns only after the commit is durable, so the
// caller may then tell the user "queued".
//
// A report_id that is already in the outbox is an ECONFLICT error and the
// existing entry is returned with it, so that a form submitted twice is
// saved once. Invalid reports are EINVALID errors naming the field.
func (o *Outbox) Enqueue(ctx context.Context, user, server string, r *tes.Report) (*Entry, error) {
	if user == "" || server == "" {
		return nil, tes.Errorf(tes.EINVALID, "A queued report needs a user and a server.")
	}
	rep := *r
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	if rep.ReportID == "" {
		rep.ReportID = tes.NewReportID()
	}
	now := o.now()
	e := &Entry{ReportID: rep.ReportID, User: user, Server: server, Plate: rep.Plate, Speed: rep.Speed,
		SpeedLimit: rep.SpeedLimit, Location: rep.Location, ObservedAt: rep.ObservedAt,
		CreatedAt: now, State: StateQueued, NextAttemptAt: now}
	err := o.db.QueryRowContext(ctx, `INSERT INTO reports
		(report_id, user, server, plate, speed, speed_limit, location, observed_at, created_at, state, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)
		ON CONFLICT (report_id) DO NOTHING RETURNING id`,
		e.ReportID, user, server, e.Plate, e.Speed, e.SpeedLimit, e.Location, nullMicros(e.ObservedAt),
		micros(now), micros(now)).Scan(&e.ID)
	if errors.Is(err, sql.ErrNoRows) {
		old, gerr := o.Get(ctx, e.ReportID)
		if gerr != nil {
			return nil, gerr
		}
		return old, &tes.Error{Code: tes.ECONFLICT, Message: "This report is already saved on this device."}
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: enqueue: %w", err)
	}
	return e, nil
}

const entryColumns = `id, report_id, user, server, plate, speed, speed_limit, location, observed_at, created_at,
	state, attempts, last_error, next_attempt_at, acked_at, violation_id, decided_status, decided_reason,
	decided_points, decided_at`

type scanner interface{ Scan(...any) error }

func scanEntry(s scanner) (*Entry, error) {
	var e Entry
	var observed, acked, vid, decided sql.NullInt64
	var created, next int64
	var state, dstatus, dreason string
	if err := s.Scan(&e.ID, &e.ReportID, &e.User, &e.Server, &e.Plate, &e.Speed, &e.SpeedLimit, &e.Location,
		&observed, &created, &state, &e.Attempts, &e.LastError, &next, &acked, &vid, &dstatus, &dreason,
		&e.DecidedPoints, &decided); err != nil {
		return nil, err
	}
	e.State = State(state)
	e.ObservedAt = fromNull(observed)
	e.CreatedAt = fromMicros(created)
	e.NextAttemptAt = fromMicros(next)
	e.AckedAt = fromNull(acked)
	e.ViolationID = vid.Int64
	e.DecidedStatus = tes.Status(dstatus)
	e.DecidedReason = tes.RejectReason(dreason)
	e.DecidedAt = fromNull(decided)
	return &e, nil
}

func (o *Outbox) query(ctx context.Context, q string, args ...any) ([]*Entry, error) {
	rows, err := o.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: query: %w", err)
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox: query: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: query: %w", err)
	}
	return out, nil
}

// Get returns the entry with the given report_id, or ENOTFOUND.
func (o *Outbox) Get(ctx context.Context, reportID string) (*Entry, error) {
	e, err := scanEntry(o.db.QueryRowContext(ctx, `SELECT `+entryColumns+` FROM reports WHERE report_id = ?`, reportID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tes.Errorf(tes.ENOTFOUND, "No report %s on this device.", reportID)
	} else if err != nil {
		return nil, fmt.Errorf("outbox: get: %w", err)
	}
	return e, nil
}

// List returns up to limit of user's reports for server, newest first
// (limit 0 means 100).
func (o *Outbox) List(ctx context.Context, user, server string, limit int) ([]*Entry, error) {
	if limit <= 0 {
		limit = 100
	}
	return o.query(ctx, `SELECT `+entryColumns+` FROM reports WHERE user = ? AND server = ? ORDER BY id DESC LIMIT ?`,
		user, server, limit)
}

// Counts returns how many of user's reports for server are in each state.
func (o *Outbox) Counts(ctx context.Context, user, server string) (map[State]int, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT state, count(*) FROM reports WHERE user = ? AND server = ? GROUP BY state`, user, server)
	if err != nil {
		return nil, fmt.Errorf("outbox: counts: %w", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("outbox: counts: %w", err)
		}
		out[State(s)] = n
	}
	return out, rows.Err()
}

// Waiting returns how many reports on this device, of any user, still have
// to be delivered.
func (o *Outbox) Waiting(ctx context.Context) (int, error) {
	var n int
	err := o.db.QueryRowContext(ctx, `SELECT count(*) FROM reports WHERE state IN ('queued', 'sent')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("outbox: waiting: %w", err)
	}
	return n, nil
}

// Due returns up to limit of user's undelivered reports for server whose
// next attempt is at or before now, oldest first.
func (o *Outbox) Due(ctx context.Context, user, server string, now time.Time, limit int) ([]*Entry, error) {
	return o.query(ctx, `SELECT `+entryColumns+` FROM reports
		WHERE user = ? AND server = ? AND state IN ('queued', 'sent') AND next_attempt_at <= ?
		ORDER BY id LIMIT ?`, user, server, micros(now), limit)
}

// NextDue returns when the next of user's undelivered reports for server is
// due, and false when none is waiting.
func (o *Outbox) NextDue(ctx context.Context, user, server string) (time.Time, bool, error) {
	var t sql.NullInt64
	err := o.db.QueryRowContext(ctx, `SELECT min(next_attempt_at) FROM reports
		WHERE user = ? AND server = ? AND state IN ('queued', 'sent')`, user, server).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("outbox: next due: %w", err)
	}
	return fromMicros(t.Int64), t.Valid, nil
}

// Claim moves a due report to sent before it is written to a connection,
// counting the attempt and leasing it until now+lease so that another
// sender (another browser session of the same user, another process) does
// not pick it meanwhile. It returns false when the report is not due any
// more: delivered, or claimed by someone else.
func (o *Outbox) Claim(ctx context.Context, id int64, now time.Time, lease time.Duration) (bool, error) {
	res, err := o.db.ExecContext(ctx, `UPDATE reports SET state = 'sent', attempts = attempts + 1, next_attempt_at = ?
		WHERE id = ? AND state IN ('queued', 'sent') AND next_attempt_at <= ?`,
		micros(now.Add(lease)), id, micros(now))
	if err != nil {
		return false, fmt.Errorf("outbox: claim: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Acknowledge records the server's OK for a report in state sent.
func (o *Outbox) Acknowledge(ctx context.Context, id int64, at time.Time) error {
	return o.move(ctx, "acknowledge", id, `state = 'acknowledged', acked_at = ?, last_error = ''`,
		[]any{micros(at)}, StateSent)
}

// Refuse records an ERROR reply for a report in state sent: the server will
// not take it, so it is never sent again. reason is the server's text.
func (o *Outbox) Refuse(ctx context.Context, id int64, reason string) error {
	return o.move(ctx, "refuse", id, `state = 'refused', last_error = ?`, []any{reason}, StateSent)
}

// Retry puts a report in state sent back to queued after a failure whose
// outcome is unknown (the connection broke, the server was busy), due again
// at next. The resend keeps the report_id.
func (o *Outbox) Retry(ctx context.Context, id int64, errText string, next time.Time) error {
	return o.move(ctx, "retry", id, `state = 'queued', last_error = ?, next_attempt_at = ?`,
		[]any{errText, micros(next)}, StateSent)
}

// move applies set to report id if it is in one of the states from; it is
// ECONFLICT when the report is in another state and ENOTFOUND when there is
// no such report.
func (o *Outbox) move(ctx context.Context, op string, id int64, set string, args []any, from ...State) error {
	q := `UPDATE reports SET ` + set + ` WHERE id = ? AND state IN (` + placeholders(len(from)) + `)`
	args = append(args, id)
	for _, s := range from {
		args = append(args, string(s))
	}
	res, err := o.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("outbox: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var st string
	err = o.db.QueryRowContext(ctx, `SELECT state FROM reports WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return tes.Errorf(tes.ENOTFOUND, "No report %d on this device.", id)
	} else if err != nil {
		return fmt.Errorf("outbox: %s: %w", op, err)
	}
	return tes.Errorf(tes.ECONFLICT, "Cannot %s report %d: it is %s.", op, id, st)
}

// Postpone records why user's due reports for server could not be sent (the
// server is unreachable, its key changed) and makes them due again at next.
// It does not count an attempt: nothing was written. It returns how many
// reports it postponed.
func (o *Outbox) Postpone(ctx context.Context, user, server, errText string, now, next time.Time) (int, error) {
	res, err := o.db.ExecContext(ctx, `UPDATE reports SET last_error = ?, next_attempt_at = ?
		WHERE user = ? AND server = ? AND state IN ('queued', 'sent') AND next_attempt_at <= ?`,
		errText, micros(next), user, server, micros(now))
	if err != nil {
		return 0, fmt.Errorf("outbox: postpone: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// RetryNow makes every undelivered report of user for server due at now:
// "retry now", when the server is known to be back.
func (o *Outbox) RetryNow(ctx context.Context, user, server string, now time.Time) (int, error) {
	res, err := o.db.ExecContext(ctx, `UPDATE reports SET next_attempt_at = ?
		WHERE user = ? AND server = ? AND state IN ('queued', 'sent') AND next_attempt_at > ?`,
		micros(now), user, server, micros(now))
	if err != nil {
		return 0, fmt.Errorf("outbox: retry now: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Undecided returns the report_ids of up to limit of user's acknowledged
// reports for server that no officer has decided yet, newest first.
func (o *Outbox) Undecided(ctx context.Context, user, server string, limit int) ([]string, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT report_id FROM reports
		WHERE user = ? AND server = ? AND state = 'acknowledged' ORDER BY id DESC LIMIT ?`, user, server, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: undecided: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("outbox: undecided: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Decide records what the officer server said became of an acknowledged
// report: approved or rejected (with the reason). A PENDING status changes
// nothing and returns nil; a report that is not acknowledged is ECONFLICT.
func (o *Outbox) Decide(ctx context.Context, st tes.ReportStatus) error {
	var state State
	switch st.Status {
	case tes.StatusPending:
		return nil
	case tes.StatusApproved:
		state = StateApproved
	case tes.StatusRejected:
		state = StateRejected
	default:
		return tes.Errorf(tes.EINVALID, "Unknown status %q for report %s.", st.Status, st.ReportID)
	}
	at := st.DecidedAt
	if at.IsZero() {
		at = o.now()
	}
	res, err := o.db.ExecContext(ctx, `UPDATE reports SET state = ?, violation_id = ?, decided_status = ?,
		decided_reason = ?, decided_points = ?, decided_at = ? WHERE report_id = ? AND state = 'acknowledged'`,
		string(state), st.ViolationID, string(st.Status), string(st.RejectReason), st.Points, micros(at), st.ReportID)
	if err != nil {
		return fmt.Errorf("outbox: decide: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tes.Errorf(tes.ECONFLICT, "Report %s is not waiting for a decision.", st.ReportID)
	}
	return nil
}

// Prune deletes reports that are finished (acknowledged, decided or
// refused) and were created before before, so that plates do not stay on
// the device for ever. Undelivered reports are never pruned.
func (o *Outbox) Prune(ctx context.Context, before time.Time) (int, error) {
	res, err := o.db.ExecContext(ctx, `DELETE FROM reports
		WHERE state IN ('acknowledged', 'refused', 'approved', 'rejected') AND created_at < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("outbox: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNull(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}
