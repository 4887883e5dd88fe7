package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tes-traffic/tes"
)

// Digest kinds in seen_digests.
const (
	digestSession = 1
	digestData    = 2
)

// ingestStmts are the hot path's statements, prepared once on the writer
// connection and bound to each transaction with Tx.StmtContext, which reuses
// the connection's prepared statement instead of compiling it again.
type ingestStmts struct {
	digest, key, violation, dupID, auditHead, audit, count *sql.Stmt
}

func (s *ingestStmts) prepare(ctx context.Context, w *sql.DB) error {
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&s.digest, `INSERT INTO seen_digests (digest, kind, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`},
		{&s.key, `INSERT INTO client_keys (fingerprint, public_key) VALUES (?, ?) ON CONFLICT DO NOTHING`},
		{&s.violation, `INSERT INTO violations (report_id, plate_key, plate_enc, speed, speed_limit, location_enc,
			observed_at, received_at, reported_by, suite, ev_signed, ev_sig, ev_key_fp, device_id, sig_verified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (report_id) DO NOTHING`},
		{&s.dupID, `SELECT id FROM violations WHERE report_id = ?`},
		{&s.auditHead, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`},
		{&s.audit, `INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.count, `UPDATE violation_counts SET n = n + ? WHERE status = ?`},
	} {
		st, err := w.PrepareContext(ctx, p.sql)
		if err != nil {
			return wrap("prepare", err)
		}
		*p.st = st
	}
	return nil
}

func (s *ingestStmts) close() {
	for _, st := range []*sql.Stmt{s.digest, s.key, s.violation, s.dupID, s.auditHead, s.audit, s.count} {
		if st != nil {
			st.Close()
		}
	}
}

// ingestRow is one item made ready outside the transaction: validated,
// plate indexed and sealed, times converted.
type ingestRow struct {
	kind       int64
	digest     []byte
	r          *tes.Report
	plateKey   []byte
	plateEnc   []byte
	locEnc     any // []byte or nil
	reportID   any // string or nil
	observedAt any // int64 or nil
	receivedAt int64
	at         time.Time // receivedAt as a time, for the audit event
	keyFP      any       // string or nil
	newKey     bool      // keyFP is not known to be in client_keys yet
	verified   int64

	outcome tes.IngestOutcome
	id      int64
}

// Ingest commits items in one write transaction and sets each item's Outcome
// and ViolationID; see tes.ViolationStore.
//
// All validation and cryptography happen before the transaction begins, so
// the write lock is held only for the SQL. An item that breaks the
// IngestItem contract (no digest, a digest that is not 32 bytes, a report
// without a message digest or with an invalid plate) fails the whole call
// with EINVALID before anything is written: that is a bug in the caller, not
// an outcome. A report is stored with SigVerified set when it carries a
// signature, because the ingest path refuses reports whose signature does
// not verify.
func (db *DB) Ingest(ctx context.Context, items []*tes.IngestItem) error {
	durable, err := db.IngestDeferred(ctx, items)
	if err != nil {
		return err
	}
	return durable()
}

// IngestDeferred is Ingest in two steps: it returns once the transaction
// has committed, with every item's Outcome and ViolationID set, and durable
// returns once that commit is on disk. Nothing may be acknowledged before
// durable returned nil. Meanwhile the writer connection is free, so the
// next batch's statements can run while this one's fsync is on the disk
// (internal/ingest does so when enough reports are waiting).
func (db *DB) IngestDeferred(ctx context.Context, items []*tes.IngestItem) (durable func() error, err error) {
	done := func() error { return db.durable("ingest") }
	if len(items) == 0 {
		return func() error { return nil }, nil
	}
	now := db.now()
	rows := make([]ingestRow, len(items))
	for i, it := range items {
		if err := db.prepareIngest(&rows[i], it, now); err != nil {
			return nil, err
		}
	}

	var newKeys []string
	err = db.commitTx(ctx, "ingest", func(tx *sql.Tx) error {
		newKeys = newKeys[:0]
		return db.ingestTx(ctx, tx, rows, &newKeys)
	})
	if err != nil {
		return nil, err
	}
	for i, it := range items {
		it.Outcome = rows[i].outcome
		it.ViolationID = rows[i].id
	}
	if len(newKeys) > 0 {
		db.keysMu.Lock()
		for _, fp := range newKeys {
			if len(db.knownKeys) >= maxKnownKeys {
				break
			}
			db.knownKeys[fp] = struct{}{}
		}
		db.keysMu.Unlock()
	}
	return done, nil
}

func (db *DB) prepareIngest(row *ingestRow, it *tes.IngestItem, now time.Time) error {
	if it == nil {
		return tes.Errorf(tes.EINVALID, "An ingest item is nil.")
	}
	at := it.ReceivedAt
	if at.IsZero() {
		at = now
	}
	row.at = tes.AuditTime(at)
	row.receivedAt = micros(row.at)
	if it.Report == nil {
		if len(it.SessionDigest) != sha256.Size {
			return tes.Errorf(tes.EINVALID, "An ingest item needs a report or a 32-byte session digest.")
		}
		row.kind, row.digest = digestSession, it.SessionDigest
		return nil
	}
	if it.SessionDigest != nil {
		return tes.Errorf(tes.EINVALID, "An ingest item is either a session claim or a report, not both.")
	}
	r := it.Report
	if len(it.MessageDigest) != sha256.Size && !(it.MessageDigest == nil && r.Suite == tes.SuiteTLS) {
		return tes.Errorf(tes.EINVALID, "A TES/1 report needs its 32-byte message digest.")
	}
	plate, err := tes.NormalizePlate(r.Plate)
	if err != nil {
		return err
	}
	if r.Speed < 0 || r.SpeedLimit < 0 {
		return tes.Errorf(tes.EINVALID, "A report's speeds cannot be negative.")
	}
	if r.User == "" || r.Suite == "" {
		return tes.Errorf(tes.EINVALID, "A report needs the reporting user and the suite.")
	}
	ev := &r.Evidence
	if ev.KeyFingerprint == "" && len(ev.PublicKey) > 0 {
		return tes.Errorf(tes.EINVALID, "A report's evidence has a public key but no fingerprint.")
	}
	row.kind, row.digest, row.r = digestData, it.MessageDigest, r
	row.plateKey = db.keys.Index(plate)
	row.plateEnc = db.keys.Seal([]byte(plate), aadPlate)
	if r.Location != "" {
		row.locEnc = db.keys.Seal([]byte(r.Location), aadLocation)
	}
	if r.ReportID != "" {
		row.reportID = r.ReportID
	}
	row.observedAt = nullMicros(r.ObservedAt)
	if ev.KeyFingerprint != "" {
		row.keyFP = ev.KeyFingerprint
		db.keysMu.Lock()
		_, known := db.knownKeys[ev.KeyFingerprint]
		db.keysMu.Unlock()
		row.newKey = !known
	}
	row.verified = boolInt(len(ev.Signature) > 0)
	return nil
}

// Additional data binding each sealed column to its meaning.
var (
	aadPlate    = []byte("plate")
	aadLocation = []byte("location")
)

func (db *DB) ingestTx(ctx context.Context, tx *sql.Tx, rows []ingestRow, newKeys *[]string) error {
	s := &db.ingest
	digest := tx.StmtContext(ctx, s.digest)
	violation := tx.StmtContext(ctx, s.violation)
	audit := tx.StmtContext(ctx, s.audit)
	var key, dupID *sql.Stmt // rarely needed; bound on first use
	var batchKeys map[string]struct{}

	// The chain head is read when the first report is stored: a batch of
	// session claims and replays appends no event.
	var head *chainHead
	var stored int64
	ev := tes.Event{Action: "report.accepted"}
	detail := make([]byte, 0, 64)
	for i := range rows {
		row := &rows[i]
		if row.digest != nil { // a TLS-suite report has none (tes.IngestItem)
			res, err := digest.ExecContext(ctx, row.digest, row.kind, row.receivedAt)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				row.outcome = tes.OutcomeReplay
				continue
			}
		}
		if row.kind == digestSession {
			row.outcome = tes.OutcomeStored
			continue
		}

		r := row.r
		if row.newKey {
			fp := row.keyFP.(string)
			if _, done := batchKeys[fp]; !done {
				if key == nil {
					key = tx.StmtContext(ctx, s.key)
					batchKeys = make(map[string]struct{})
				}
				if _, err := key.ExecContext(ctx, fp, r.Evidence.PublicKey); err != nil {
					return err
				}
				batchKeys[fp] = struct{}{}
				*newKeys = append(*newKeys, fp)
			}
		}
		res, err := violation.ExecContext(ctx, row.reportID, row.plateKey, row.plateEnc, r.Speed, r.SpeedLimit,
			row.locEnc, row.observedAt, row.receivedAt, r.User, r.Suite, r.Evidence.Signed, r.Evidence.Signature,
			row.keyFP, r.Evidence.DeviceID, row.verified)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if dupID == nil {
				dupID = tx.StmtContext(ctx, s.dupID)
			}
			if err := dupID.QueryRowContext(ctx, row.reportID).Scan(&row.id); err != nil {
				return fmt.Errorf("read duplicate report_id: %w", err)
			}
			row.outcome = tes.OutcomeDuplicate
			continue
		}
		if row.id, err = res.LastInsertId(); err != nil {
			return err
		}
		row.outcome = tes.OutcomeStored
		stored++

		ev.At = row.at
		ev.Actor = r.User
		ev.Subject = "violation:" + strconv.FormatInt(row.id, 10)
		detail = append(detail[:0], "suite="...)
		detail = append(detail, r.Suite...)
		detail = append(detail, " plate_key="...)
		detail = hex.AppendEncode(detail, row.plateKey[:4])
		detail = append(detail, " speed="...)
		detail = strconv.AppendInt(detail, int64(r.Speed), 10)
		ev.Detail = string(detail)
		if head == nil {
			h, err := readChainHead(ctx, tx.StmtContext(ctx, s.auditHead))
			if err != nil {
				return err
			}
			head = &h
		}
		head.link(&ev)
		if _, err := audit.ExecContext(ctx, ev.Seq, micros(ev.At), ev.Actor, ev.Action, ev.Subject, ev.Detail, ev.PrevHash, ev.Hash); err != nil {
			return err
		}
	}
	if stored > 0 {
		if _, err := tx.StmtContext(ctx, s.count).ExecContext(ctx, stored, string(tes.StatusPending)); err != nil {
			return err
		}
	}
	return nil
}

// chainHead is the last event of the audit chain as read inside the
// current write transaction; it is never kept across transactions, because
// another process may append between them.
type chainHead struct {
	seq  int64
	hash []byte // nil before the first event
}

func readChainHead(ctx context.Context, st interface {
	QueryRowContext(context.Context, ...any) *sql.Row
}) (chainHead, error) {
	var h chainHead
	err := st.QueryRowContext(ctx).Scan(&h.seq, &h.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return chainHead{}, nil
	}
	return h, err
}

// link sets e's Seq, PrevHash and Hash to follow h and advances h to e.
func (h *chainHead) link(e *tes.Event) {
	e.Seq = h.seq + 1
	e.PrevHash = h.hash
	e.Hash = tes.ChainHash(h.hash, e)
	h.seq, h.hash = e.Seq, e.Hash
}
