// Package storecopy moves a TES store from one backend to another with
// nothing lost: `tes store copy --from sqlite:PATH --to postgres://...`
// when a single-machine install moves up to several nodes on PostgreSQL.
//
// A Source hands over every row, table by table, in batches and in one
// consistent snapshot; a Target writes each batch in one transaction,
// keeping ids, sequence numbers and hashes as they are, then brings its
// derived state (counters, id sequence, audit head) up to date. Copy
// refuses a target that is not empty, and at the end checks the row count
// of every table on both sides, the violation counts by status and the
// whole audit chain, recomputed on the target with tes.ChainHash and
// compared with the source's last hash.
//
// Rows travel as domain values (decrypted): both stores must be opened
// with the same at-rest key, which the nodes of a deployment share anyway.
package storecopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// Table names, in the order Copy moves them: every row after the rows it
// refers to.
const (
	TableUsers       = "users"
	TableClientKeys  = "client_keys"
	TableJoinTokens  = "join_tokens"
	TableDevices     = "devices"
	TableViolations  = "violations"
	TableDrivers     = "drivers"
	TableSeenDigests = "seen_digests"
	TableAudit       = "audit"
	TableCheckpoints = "audit_checkpoints"
	TableWebSessions = "web_sessions"
	TableAPITokens   = "api_tokens"
)

// Tables lists every table a copy moves, parents first.
var Tables = []string{TableUsers, TableClientKeys, TableJoinTokens, TableDevices, TableViolations, TableDrivers,
	TableSeenDigests, TableAudit, TableCheckpoints, TableWebSessions, TableAPITokens}

// Digest kinds of a SeenDigest.
const (
	KindSession = 1 // SHA-256 of a TES/1 SESSION's encrypted key
	KindData    = 2 // SHA-256 of a DATA message's signed bytes
)

// SeenDigest is one row of the replay guard.
type SeenDigest struct {
	Digest []byte
	Kind   int
	At     time.Time
}

// ClientKey is one reporting client's public key.
type ClientKey struct {
	Fingerprint string
	PublicKey   []byte
}

// Batch holds rows of one table (Table); only that table's slice is set.
// Violations carry their decrypted plate and location (a Target ignores
// Evidence.PublicKey: the key travels in client_keys); events carry their
// stored Seq, PrevHash and Hash; checkpoints and join tokens keep their
// ids and signatures.
type Batch struct {
	Table       string
	Users       []*tes.User
	ClientKeys  []ClientKey
	JoinTokens  []*tes.JoinToken
	Devices     []*tes.Device
	Violations  []*tes.Violation
	Drivers     []*tes.Driver
	SeenDigests []SeenDigest
	Events      []*tes.Event
	Checkpoints []*tes.Checkpoint
	WebSessions []*tes.WebSession
	APITokens   []*tes.APIToken
}

// Len returns the number of rows in b.
func (b *Batch) Len() int {
	return len(b.Users) + len(b.ClientKeys) + len(b.JoinTokens) + len(b.Devices) + len(b.Violations) + len(b.Drivers) +
		len(b.SeenDigests) + len(b.Events) + len(b.Checkpoints) + len(b.WebSessions) + len(b.APITokens)
}

// Rows is what Walk needs of a result set (*sql.Rows and pgx.Rows have it).
type Rows interface {
	Next() bool
	Err() error
}

// ReadError is an error Walk met reading rows (from scan or rows.Err), as
// opposed to one the caller's fn returned, which Walk returns as is.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Walk reads a store's rows of table into batches of size rows: scan
// appends the current row to the batch, and fn gets each full batch and the
// last one (none when there are no rows). It is the loop both stores' Dump
// share.
func Walk(table string, size int, rows Rows, scan func(*Batch) error, fn func(*Batch) error) error {
	b := &Batch{Table: table}
	for rows.Next() {
		if err := scan(b); err != nil {
			return &ReadError{err}
		}
		if b.Len() >= size {
			if err := fn(b); err != nil {
				return err
			}
			b = &Batch{Table: table}
		}
	}
	if err := rows.Err(); err != nil {
		return &ReadError{err}
	}
	if b.Len() > 0 {
		return fn(b)
	}
	return nil
}

// Source is a store whose every row can be read.
type Source interface {
	// Counts returns the number of rows of each table in Tables.
	Counts(ctx context.Context) (map[string]int64, error)
	// Dump reads every row of the named tables, in the order given, in one
	// consistent snapshot, and calls fn with batches of at most size rows
	// of one table. Violations come in id order, events in seq order. An
	// error from fn stops the dump and is returned.
	Dump(ctx context.Context, tables []string, size int, fn func(*Batch) error) error
}

// Target is a store a copy can be written into.
type Target interface {
	Source
	// Import writes b in one transaction, keeping ids, sequence numbers and
	// hashes as given.
	Import(ctx context.Context, b *Batch) error
	// FinishImport brings derived state up to date after the last Import:
	// status counters, id sequences, the audit chain head.
	FinishImport(ctx context.Context) error
}

// Options tune Copy.
type Options struct {
	// Tables to copy; nil means Tables. Leaving out web_sessions signs
	// everyone out of the dashboards; leaving out others loses data.
	Tables []string
	// BatchSize is the number of rows per transaction; 0 means 1000.
	BatchSize int
	// Progress, if set, is called after each batch with the table and the
	// number of its rows copied so far.
	Progress func(table string, done int64)
}

// TableSummary is one table's row count on both sides after a copy.
type TableSummary struct {
	Name           string
	Source, Target int64
}

// Summary is what Copy did and checked.
type Summary struct {
	Tables   []TableSummary
	Events   int64  // audit events verified on the target
	Head     []byte // hash of the last event (nil for an empty log)
	Duration time.Duration
}

// Mismatches lists the tables whose counts differ.
func (s *Summary) Mismatches() []string {
	var out []string
	for _, t := range s.Tables {
		if t.Source != t.Target {
			out = append(out, fmt.Sprintf("%s: %d in the source, %d in the target", t.Name, t.Source, t.Target))
		}
	}
	return out
}

// Copy copies src into dst, which must be empty, and verifies the result.
// It returns the summary with every error after the copy started, so a
// caller can show what was checked. Errors: EINVALID for a non-empty
// target or an unknown table; an error naming each mismatch when the
// verification fails; the stores' own errors otherwise.
func Copy(ctx context.Context, src Source, dst Target, opt Options) (*Summary, error) {
	start := time.Now()
	tables := Tables
	if opt.Tables != nil {
		if err := checkTables(opt.Tables); err != nil {
			return nil, err
		}
		tables = nil // in Tables' order, whatever the order given
		for _, t := range Tables {
			if contains(opt.Tables, t) {
				tables = append(tables, t)
			}
		}
	}
	size := opt.BatchSize
	if size <= 0 {
		size = 1000
	}
	have, err := dst.Counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("count the target: %w", err)
	}
	for _, t := range Tables {
		if have[t] > 0 {
			return nil, tes.Errorf(tes.EINVALID, "The target store is not empty (%s has %d rows): copy into a new, empty database.", t, have[t])
		}
	}

	sum := &Summary{}
	var srcHead []byte
	done := map[string]int64{}
	err = src.Dump(ctx, tables, size, func(b *Batch) error {
		if len(b.Events) > 0 {
			srcHead = b.Events[len(b.Events)-1].Hash
		}
		if err := dst.Import(ctx, b); err != nil {
			return fmt.Errorf("import %s: %w", b.Table, err)
		}
		done[b.Table] += int64(b.Len())
		if opt.Progress != nil {
			opt.Progress(b.Table, done[b.Table])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := dst.FinishImport(ctx); err != nil {
		return nil, fmt.Errorf("finish import: %w", err)
	}

	// Verify: counts per table, counts per status, the whole chain.
	var problems []string
	sc, err := src.Counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("count the source: %w", err)
	}
	dc, err := dst.Counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("count the target: %w", err)
	}
	for _, t := range tables {
		sum.Tables = append(sum.Tables, TableSummary{Name: t, Source: sc[t], Target: dc[t]})
	}
	problems = append(problems, sum.Mismatches()...)
	if s, ok := src.(tes.ViolationStore); ok {
		if d, ok := dst.(tes.ViolationStore); ok {
			a, err1 := s.CountByStatus(ctx)
			b, err2 := d.CountByStatus(ctx)
			if err1 != nil || err2 != nil {
				return sum, fmt.Errorf("count by status: %v %v", err1, err2)
			}
			for _, st := range tes.Statuses {
				if a[st] != b[st] {
					problems = append(problems, fmt.Sprintf("%s violations: %d in the source, %d in the target", st, a[st], b[st]))
				}
			}
		}
	}
	if contains(tables, TableAudit) {
		n, head, err := VerifyChain(ctx, dst)
		sum.Events, sum.Head = n, head
		if err != nil {
			problems = append(problems, "the target's audit chain: "+err.Error())
		} else if !bytes.Equal(head, srcHead) {
			problems = append(problems, fmt.Sprintf("the target's chain ends at %x, the source's at %x", head, srcHead))
		}
	}
	sum.Duration = time.Since(start)
	if len(problems) > 0 {
		return sum, fmt.Errorf("the copy does not match its source: %s", strings.Join(problems, "; "))
	}
	return sum, nil
}

// VerifyChain reads s's audit log in seq order and recomputes the chain:
// seq must run 1, 2, 3... with no gap, each PrevHash must be the previous
// Hash (nil for the first) and each Hash tes.ChainHash(PrevHash, event).
// It returns the number of events and the last hash, and an error naming
// the first event that breaks the chain.
func VerifyChain(ctx context.Context, s Source) (n int64, head []byte, err error) {
	var prev []byte
	err = s.Dump(ctx, []string{TableAudit}, 1000, func(b *Batch) error {
		for _, e := range b.Events {
			if e.Seq != n+1 {
				return fmt.Errorf("event %d follows event %d: the chain has a gap", e.Seq, n)
			}
			if !bytes.Equal(e.PrevHash, prev) {
				return fmt.Errorf("event %d does not link to event %d (prev_hash %x, want %x)", e.Seq, n, e.PrevHash, prev)
			}
			if want := tes.ChainHash(prev, e); !bytes.Equal(e.Hash, want) {
				return fmt.Errorf("event %d (%s) has hash %x, recomputed %x: it was changed", e.Seq, e.Action, e.Hash, want)
			}
			prev, n = e.Hash, e.Seq
		}
		return nil
	})
	return n, prev, err
}

func checkTables(tables []string) error {
	for _, t := range tables {
		if !contains(Tables, t) {
			return tes.Errorf(tes.EINVALID, "Unknown table %q: use %s.", t, strings.Join(Tables, ", "))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Diff reads every row of tables from a and b, in step, and returns the
// differences it finds (at most max, 0 meaning 20), each naming the table
// and the row: a row that differs in any field, or rows that one side has
// and the other does not. Both stores must be readable with the same key.
// `tes store copy --compare` runs it after a copy; it reads everything
// twice, so it costs as much as the copy.
func Diff(ctx context.Context, a, b Source, tables []string, max int) ([]string, error) {
	if max <= 0 {
		max = 20
	}
	if tables == nil {
		tables = Tables
	}
	if err := checkTables(tables); err != nil {
		return nil, err
	}
	var diffs []string
	for _, t := range tables {
		d, err := diffTable(ctx, a, b, t, max-len(diffs))
		if err != nil {
			return diffs, err
		}
		diffs = append(diffs, d...)
		if len(diffs) >= max {
			break
		}
	}
	return diffs, nil
}

// diffTable compares one table: b's rows arrive over a channel from a
// goroutine while a's are read, so neither side is held in memory whole.
func diffTable(ctx context.Context, a, b Source, table string, max int) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rowsB := make(chan any, 1000)
	errB := make(chan error, 1)
	go func() {
		defer close(rowsB)
		errB <- b.Dump(ctx, []string{table}, 1000, func(batch *Batch) error {
			for _, r := range rowsOf(batch) {
				select {
				case rowsB <- r:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	var diffs []string
	n := 0
	errA := a.Dump(ctx, []string{table}, 1000, func(batch *Batch) error {
		for _, ra := range rowsOf(batch) {
			n++
			rb, ok := <-rowsB
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s row %d: only in the first store: %+v", table, n, ra))
			} else if !reflect.DeepEqual(ra, rb) {
				diffs = append(diffs, fmt.Sprintf("%s row %d differs:\n  %+v\n  %+v", table, n, ra, rb))
			}
			if len(diffs) >= max {
				return errStop
			}
		}
		return nil
	})
	if errA == nil {
		for rb := range rowsB {
			n++
			diffs = append(diffs, fmt.Sprintf("%s row %d: only in the second store: %+v", table, n, rb))
			if len(diffs) >= max {
				break
			}
		}
	}
	cancel()
	for range rowsB { // let the producer finish
	}
	eb := <-errB
	switch {
	case errA != nil && errA != errStop:
		return diffs, errA
	case eb != nil && !errors.Is(eb, context.Canceled):
		return diffs, eb
	}
	return diffs, nil
}

var errStop = errors.New("enough differences")

// rowsOf returns the rows of b as comparable values (pointers followed).
func rowsOf(b *Batch) []any {
	var out []any
	v := reflect.ValueOf(b).Elem()
	for f := 0; f < v.NumField(); f++ {
		s := v.Field(f)
		if s.Kind() != reflect.Slice {
			continue
		}
		for i := 0; i < s.Len(); i++ {
			e := s.Index(i)
			if e.Kind() == reflect.Pointer {
				e = e.Elem()
			}
			out = append(out, e.Interface())
		}
	}
	return out
}
