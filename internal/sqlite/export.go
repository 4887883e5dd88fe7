package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storecopy"
)

// The SQLite store is a storecopy.Source: `tes store copy` reads every row
// of a single-machine install through it to move it to PostgreSQL.
var _ storecopy.Source = (*DB)(nil)

// exportQueries read each table whole, in a stable order (violations by
// id, the audit log by seq).
var exportQueries = map[string]string{
	storecopy.TableUsers:       `SELECT ` + userColumns + ` FROM users ORDER BY name`,
	storecopy.TableClientKeys:  `SELECT fingerprint, public_key FROM client_keys ORDER BY fingerprint`,
	storecopy.TableJoinTokens:  `SELECT ` + joinTokenColumns + ` FROM join_tokens ORDER BY id`,
	storecopy.TableDevices:     `SELECT ` + deviceColumns + ` FROM devices ORDER BY id`,
	storecopy.TableViolations:  `SELECT ` + violationColumns + ` FROM violations v` + violationJoin + ` ORDER BY v.id`,
	storecopy.TableDrivers:     `SELECT plate_key, record_enc, updated_at FROM drivers ORDER BY plate_key`,
	storecopy.TableSeenDigests: `SELECT digest, kind, at FROM seen_digests ORDER BY digest`,
	storecopy.TableAudit:       `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY seq`,
	storecopy.TableCheckpoints: `SELECT id, seq, hash, at, key_fp, public_key, signature FROM audit_checkpoints ORDER BY id`,
	storecopy.TableWebSessions: `SELECT id_hash, user, csrf_token, created_at, last_seen FROM web_sessions ORDER BY id_hash`,
	storecopy.TableAPITokens:   `SELECT ` + tokenColumns + ` FROM api_tokens ORDER BY id_hash`,
}

// Counts returns the number of rows of each table in storecopy.Tables.
func (db *DB) Counts(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64, len(storecopy.Tables))
	for _, t := range storecopy.Tables {
		var n int64
		// t comes from the fixed list above, never from input.
		if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, wrap("count "+t, err)
		}
		out[t] = n
	}
	return out, nil
}

// Dump reads every row of the named tables (see storecopy.Tables) in one
// read transaction, so the rows form one snapshot even while a server
// writes, and calls fn with batches of at most size rows of one table.
// Plates, locations and driver records are decrypted; audit events keep
// their stored hashes. An unknown table is EINVALID; an error from fn
// stops the dump and is returned as is.
func (db *DB) Dump(ctx context.Context, tables []string, size int, fn func(*storecopy.Batch) error) error {
	for _, t := range tables {
		if _, ok := exportQueries[t]; !ok {
			return tes.Errorf(tes.EINVALID, "Unknown table %q.", t)
		}
	}
	if size <= 0 {
		size = 1000
	}
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap("dump", err)
	}
	defer tx.Rollback()
	for _, t := range tables {
		if err := db.dumpTable(ctx, tx, t, size, fn); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) dumpTable(ctx context.Context, tx *sql.Tx, table string, size int, fn func(*storecopy.Batch) error) error {
	rows, err := tx.QueryContext(ctx, exportQueries[table])
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

// scanExport reads one row of b.Table's export query and appends it to b.
func (db *DB) scanExport(rows *sql.Rows, b *storecopy.Batch) error {
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
		var updated int64
		if err := rows.Scan(&key, &enc, &updated); err != nil {
			return err
		}
		rec, err := db.openDriver(enc, key)
		if err != nil {
			return err
		}
		if want := db.keys.Index(rec.Plate); string(want) != string(key) {
			return fmt.Errorf("driver record of %q is stored under another plate's key", rec.Plate)
		}
		b.Drivers = append(b.Drivers, &tes.Driver{Plate: rec.Plate, Points: rec.Points, UpdatedAt: fromMicros(updated)})
	case storecopy.TableSeenDigests:
		var d storecopy.SeenDigest
		var at int64
		if err := rows.Scan(&d.Digest, &d.Kind, &at); err != nil {
			return err
		}
		d.At = fromMicros(at)
		b.SeenDigests = append(b.SeenDigests, d)
	case storecopy.TableAudit:
		var e tes.Event
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.At = fromMicros(at)
		b.Events = append(b.Events, &e)
	case storecopy.TableCheckpoints:
		var c tes.Checkpoint
		var at int64
		if err := rows.Scan(&c.ID, &c.Seq, &c.Hash, &at, &c.KeyFingerprint, &c.PublicKey, &c.Signature); err != nil {
			return err
		}
		c.At = fromMicros(at)
		b.Checkpoints = append(b.Checkpoints, &c)
	case storecopy.TableWebSessions:
		var s tes.WebSession
		var created, seen int64
		if err := rows.Scan(&s.IDHash, &s.User, &s.CSRFToken, &created, &seen); err != nil {
			return err
		}
		s.CreatedAt, s.LastSeen = fromMicros(created), fromMicros(seen)
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

// ReadSchemaVersion returns the schema version of the SQLite database at
// path without opening it as a store, creating or migrating anything: 0
// for a database without a schema. It lets `tes migrate` say "from → to".
// A missing file is an error wrapping fs.ErrNotExist.
func ReadSchemaVersion(ctx context.Context, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, wrap("schema version", err)
	}
	defer raw.Close()
	var n int
	err = raw.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil {
		return 0, wrap("schema version", err)
	}
	if n == 0 {
		return 0, nil
	}
	v, err := schemaVersion(ctx, raw)
	if err != nil {
		return 0, wrap("schema version", err)
	}
	return v, nil
}
