package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storecopy"
	"github.com/tes-traffic/tes/internal/storekit"
)

// The PostgreSQL store is a storecopy.Target (and so a Source): `tes store
// copy` writes a single-machine install into it, and reads it back to
// verify the copy.
var _ storecopy.Target = (*DB)(nil)

// Counts returns the number of rows of each table in storecopy.Tables.
func (db *DB) Counts(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64, len(storecopy.Tables))
	b := &pgx.Batch{}
	for _, t := range storecopy.Tables {
		// t comes from the fixed list, never from input.
		b.Queue(`SELECT count(*) FROM ` + t)
	}
	br := db.pool.SendBatch(ctx, b)
	defer br.Close()
	for _, t := range storecopy.Tables {
		var n int64
		if err := br.QueryRow().Scan(&n); err != nil {
			return nil, wrap("count "+t, err)
		}
		out[t] = n
	}
	return out, nil
}

var exportQueries = map[string]string{
	storecopy.TableUsers:       `SELECT ` + userColumns + ` FROM users ORDER BY name`,
	storecopy.TableClientKeys:  `SELECT fingerprint, public_key FROM client_keys ORDER BY fingerprint`,
	storecopy.TableJoinTokens:  `SELECT ` + joinTokenColumns + ` FROM join_tokens ORDER BY id`,
	storecopy.TableDevices:     `SELECT ` + deviceColumns + ` FROM devices ORDER BY id`,
	storecopy.TableViolations:  `SELECT ` + violationColumns + ` FROM violations v` + violationJoin + ` ORDER BY v.id`,
	storecopy.TableDrivers:     `SELECT plate_key, record_enc, updated_at FROM drivers ORDER BY plate_key`,
	storecopy.TableSeenDigests: `SELECT digest, kind, at FROM seen_digests ORDER BY digest`,
	storecopy.TableAudit:       `SELECT ` + eventColumns + ` FROM audit ORDER BY seq`,
	storecopy.TableCheckpoints: `SELECT ` + checkpointColumns + ` FROM audit_checkpoints ORDER BY id`,
	storecopy.TableWebSessions: `SELECT id_hash, user_name, csrf_token, created_at, last_seen FROM web_sessions ORDER BY id_hash`,
	storecopy.TableAPITokens:   `SELECT ` + tokenColumns + ` FROM api_tokens ORDER BY id_hash`,
}

// Dump reads every row of the named tables (see storecopy.Tables) in one
// REPEATABLE READ, READ ONLY transaction, so the rows form one snapshot
// even while nodes write, and calls fn with batches of at most size rows
// of one table. Plates, locations and driver records are decrypted; audit
// events keep their stored hashes. An unknown table is EINVALID; an error
// from fn stops the dump and is returned as is.
func (db *DB) Dump(ctx context.Context, tables []string, size int, fn func(*storecopy.Batch) error) error {
	for _, t := range tables {
		if _, ok := exportQueries[t]; !ok {
			return tes.Errorf(tes.EINVALID, "Unknown table %q.", t)
		}
	}
	if size <= 0 {
		size = 1000
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return wrap("dump", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, t := range tables {
		if err := db.dumpTable(ctx, tx, t, size, fn); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) dumpTable(ctx context.Context, tx pgx.Tx, table string, size int, fn func(*storecopy.Batch) error) error {
	rows, err := tx.Query(ctx, exportQueries[table])
	if err != nil {
		return wrap("dump "+table, err)
	}
	defer rows.Close()
	err = storecopy.Walk(table, size, rows, func(b *storecopy.Batch) error { return db.scanExport(rows, b) }, fn)
	var re *storecopy.ReadError
	if errors.As(err, &re) {
		return wrap("dump "+table, re.Err)
	}
	return err
}

func (db *DB) scanExport(rows pgx.Rows, b *storecopy.Batch) error {
	switch b.Table {
	case storecopy.TableUsers:
		u, err := scanUser(rows)
		if err != nil {
			return err
		}
		b.Users = append(b.Users, u)
	case storecopy.TableClientKeys:
		var k storecopy.ClientKey
		if err := rows.Scan(&k.Fingerprint, &k.PublicKey); err != nil {
			return err
		}
		b.ClientKeys = append(b.ClientKeys, k)
	case storecopy.TableJoinTokens:
		t, err := scanJoinToken(rows)
		if err != nil {
			return err
		}
		b.JoinTokens = append(b.JoinTokens, t)
	case storecopy.TableDevices:
		d, err := scanDevice(rows)
		if err != nil {
			return err
		}
		b.Devices = append(b.Devices, d)
	case storecopy.TableViolations:
		v, _, err := db.scanViolation(rows)
		if err != nil {
			return err
		}
		b.Violations = append(b.Violations, v)
	case storecopy.TableDrivers:
		var key, enc []byte
		var updated time.Time
		if err := rows.Scan(&key, &enc, &updated); err != nil {
			return err
		}
		rec, err := db.openDriver(enc, key)
		if err != nil {
			return err
		}
		b.Drivers = append(b.Drivers, &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: updated.UTC()})
	case storecopy.TableSeenDigests:
		var d storecopy.SeenDigest
		var kind int16
		if err := rows.Scan(&d.Digest, &kind, &d.At); err != nil {
			return err
		}
		d.Kind, d.At = int(kind), d.At.UTC()
		b.SeenDigests = append(b.SeenDigests, d)
	case storecopy.TableAudit:
		e, err := scanEvent(rows)
		if err != nil {
			return err
		}
		b.Events = append(b.Events, e)
	case storecopy.TableCheckpoints:
		c, err := scanCheckpoint(rows)
		if err != nil {
			return err
		}
		b.Checkpoints = append(b.Checkpoints, c)
	case storecopy.TableWebSessions:
		var s tes.WebSession
		if err := rows.Scan(&s.IDHash, &s.User, &s.CSRFToken, &s.CreatedAt, &s.LastSeen); err != nil {
			return err
		}
		s.CreatedAt, s.LastSeen = s.CreatedAt.UTC(), s.LastSeen.UTC()
		b.WebSessions = append(b.WebSessions, &s)
	case storecopy.TableAPITokens:
		t, err := scanToken(rows)
		if err != nil {
			return err
		}
		b.APITokens = append(b.APITokens, t)
	default:
		return fmt.Errorf("unknown table %q", b.Table)
	}
	return nil
}

// Import writes b in one transaction with COPY, keeping violation ids,
// audit sequence numbers and hashes as given. Plates, locations and driver
// records are sealed again with this store's key (and plates indexed), so
// the copy is readable only with that key. It is meant for an empty store
// (storecopy.Copy checks); rows that already exist make it fail.
func (db *DB) Import(ctx context.Context, b *storecopy.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	var (
		cols []string
		rows [][]any
	)
	switch b.Table {
	case storecopy.TableUsers:
		cols = []string{"name", "role", "password_hash", "disabled", "must_change_pass", "failed_logins", "locked_until", "created_at", "updated_at"}
		for _, u := range b.Users {
			if err := storekit.ValidateUser(u); err != nil {
				return err
			}
			rows = append(rows, []any{u.Name, string(u.Role), u.PasswordHash, u.Disabled, u.MustChangePass, u.FailedLogins,
				nullTS(u.LockedUntil), ts(u.CreatedAt), ts(u.UpdatedAt)})
		}
	case storecopy.TableClientKeys:
		cols = []string{"fingerprint", "public_key"}
		for _, k := range b.ClientKeys {
			rows = append(rows, []any{k.Fingerprint, k.PublicKey})
		}
	case storecopy.TableJoinTokens:
		cols = []string{"id", "verifier", "user_name", "created_by", "created_at", "expires_at", "used_at", "revoked_at"}
		for _, t := range b.JoinTokens {
			rows = append(rows, []any{t.ID, t.Verifier, t.User, t.CreatedBy, ts(t.CreatedAt), ts(t.ExpiresAt), nullTS(t.UsedAt), nullTS(t.RevokedAt)})
		}
	case storecopy.TableDevices:
		cols = []string{"id", "user_name", "key_fp", "cert", "enrolled_at", "revoked_at", "revoked_by"}
		for _, d := range b.Devices {
			rows = append(rows, []any{d.ID, d.User, d.KeyFingerprint, d.Cert, ts(d.EnrolledAt), nullTS(d.RevokedAt), nullString(d.RevokedBy)})
		}
	case storecopy.TableViolations:
		cols = []string{"id", "report_id", "plate_key", "plate_enc", "speed", "speed_limit", "location_enc", "observed_at",
			"received_at", "reported_by", "suite", "ev_signed", "ev_sig", "ev_key_fp", "device_id", "sig_verified",
			"status", "decided_by", "decided_at", "reject_reason", "reject_note", "points_applied"}
		for _, v := range b.Violations {
			r, err := db.violationRow(v)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	case storecopy.TableDrivers:
		cols = []string{"plate_key", "record_enc", "updated_at"}
		for _, d := range b.Drivers {
			plate, err := tes.NormalizePlate(d.Plate)
			if err != nil {
				return err
			}
			key := db.keys.Index(plate)
			enc, err := db.sealDriver(driverRecord{Plate: plate, Points: d.Points}, key)
			if err != nil {
				return err
			}
			rows = append(rows, []any{key, enc, ts(d.UpdatedAt)})
		}
	case storecopy.TableSeenDigests:
		cols = []string{"digest", "kind", "at"}
		for _, d := range b.SeenDigests {
			rows = append(rows, []any{d.Digest, int16(d.Kind), ts(d.At)})
		}
	case storecopy.TableAudit:
		cols = []string{"seq", "at", "actor", "action", "subject", "detail", "prev_hash", "hash"}
		for _, e := range b.Events {
			rows = append(rows, []any{e.Seq, ts(e.At), e.Actor, e.Action, e.Subject, e.Detail, e.PrevHash, e.Hash})
		}
	case storecopy.TableCheckpoints:
		cols = []string{"id", "seq", "hash", "at", "key_fp", "public_key", "signature"}
		for _, c := range b.Checkpoints {
			rows = append(rows, []any{c.ID, c.Seq, c.Hash, ts(c.At), c.KeyFingerprint, c.PublicKey, c.Signature})
		}
	case storecopy.TableWebSessions:
		cols = []string{"id_hash", "user_name", "csrf_token", "created_at", "last_seen"}
		for _, s := range b.WebSessions {
			rows = append(rows, []any{s.IDHash, s.User, s.CSRFToken, ts(s.CreatedAt), ts(s.LastSeen)})
		}
	case storecopy.TableAPITokens:
		cols = []string{"id_hash", "name", "user_name", "created_at", "last_used"}
		for _, t := range b.APITokens {
			rows = append(rows, []any{t.IDHash, t.Name, t.User, ts(t.CreatedAt), nullTS(t.LastUsed)})
		}
	default:
		return tes.Errorf(tes.EINVALID, "Unknown table %q.", b.Table)
	}
	return db.writeTx(ctx, "import "+b.Table, func(tx pgx.Tx) error {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{b.Table}, cols, pgx.CopyFromRows(rows))
		if err != nil {
			return err
		}
		if int(n) != len(rows) {
			return fmt.Errorf("copied %d of %d rows", n, len(rows))
		}
		return nil
	})
}

// violationRow seals and indexes v for the violations table.
func (db *DB) violationRow(v *tes.Violation) ([]any, error) {
	plate, err := tes.NormalizePlate(v.Plate)
	if err != nil {
		return nil, fmt.Errorf("violation %d: %w", v.ID, err)
	}
	if id, err := tes.ValidateReportID(v.ReportID); err != nil || id != v.ReportID {
		return nil, fmt.Errorf("violation %d: report_id %q is not a lower-case UUID", v.ID, v.ReportID)
	}
	var loc []byte
	if v.Location != "" {
		loc = db.keys.Seal([]byte(v.Location), aadLocation)
	}
	var reason *string
	if v.RejectReason != "" {
		reason = nullString(string(v.RejectReason))
	}
	var decidedBy, note *string
	if v.Status != tes.StatusPending {
		decidedBy = &v.DecidedBy
	}
	if v.Status == tes.StatusRejected {
		note = nullString(v.RejectNote)
	}
	var rid pgtype.UUID
	if v.ReportID != "" {
		if err := rid.Scan(v.ReportID); err != nil {
			return nil, fmt.Errorf("violation %d: report_id: %w", v.ID, err)
		}
	}
	return []any{v.ID, rid, db.keys.Index(plate), db.keys.Seal([]byte(plate), aadPlate),
		int32(v.Speed), int32(v.SpeedLimit), loc, nullTS(v.ObservedAt), ts(v.ReceivedAt), v.ReportedBy, v.Suite,
		v.Evidence.Signed, v.Evidence.Signature, nullString(v.Evidence.KeyFingerprint), v.Evidence.DeviceID, v.SigVerified,
		string(v.Status), decidedBy, nullTS(v.DecidedAt), reason, note, int32(v.PointsApplied)}, nil
}

// FinishImport recomputes what the store derives from its rows after an
// import, in one transaction that holds the audit head lock: the status
// counters (a full count), the id sequence (past the largest id, so new
// reports never reuse a copied id; the same for checkpoints) and the audit
// head (the last event).
func (db *DB) FinishImport(ctx context.Context) error {
	return db.writeTx(ctx, "finish import", func(tx pgx.Tx) error {
		if _, err := lockHead(ctx, tx); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE violation_counts c SET n = (SELECT count(*) FROM violations v WHERE v.status = c.status)`)
		b.Queue(`SELECT setval($1::regclass, coalesce(max(id), 1), max(id) IS NOT NULL) FROM violations`, db.idSeq)
		b.Queue(`SELECT setval(pg_get_serial_sequence('audit_checkpoints', 'id'), coalesce(max(id), 1), max(id) IS NOT NULL) FROM audit_checkpoints`)
		b.Queue(`UPDATE audit_head SET (seq, hash) = (
			SELECT coalesce(max(seq), 0), (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1) FROM audit) WHERE id`)
		return execBatch(ctx, tx, b, 3)
	})
}
