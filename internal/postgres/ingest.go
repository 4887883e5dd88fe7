package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
)

// Digest kinds in seen_digests.
const (
	digestSession = 1
	digestData    = 2
)

// Additional data binding each sealed column to its meaning (the same as
// internal/sqlite's, so that a copied store opens with the same key).
var (
	aadPlate    = []byte("plate")
	aadLocation = []byte("location")
)

// ingestRow is one item made ready outside the transaction: validated,
// plate indexed and sealed, time truncated.
type ingestRow struct {
	kind     int16
	digest   []byte
	r        *tes.Report
	plateKey []byte
	plateEnc []byte
	locEnc   []byte // nil when there is no location
	at       time.Time

	// Set inside the transaction.
	dupOf   int // index of an earlier row of the batch with the same report_id, or -1
	outcome tes.IngestOutcome
	id      int64
}

// Ingest commits items in one transaction and sets each item's Outcome and
// ViolationID; see tes.ViolationStore.
//
// Validation and cryptography happen before the transaction. The SQL is a
// handful of set-based statements whatever the batch size: one INSERT of
// every digest (ON CONFLICT DO NOTHING RETURNING tells the new ones), one
// INSERT of every new report (ON CONFLICT (report_id) DO NOTHING RETURNING
// tells the stored ones), one INSERT of the batch's audit events. Items of
// one batch see each other in order: a digest or report_id that appears
// twice is a replay or a duplicate of the first. An item that breaks the
// IngestItem contract (no or short digest, an invalid plate or report_id)
// fails the whole call with EINVALID before anything is written.
func (db *DB) Ingest(ctx context.Context, items []*tes.IngestItem) error {
	if len(items) == 0 {
		return nil
	}
	now := db.now()
	rows := make([]ingestRow, len(items))
	for i, it := range items {
		if err := db.prepareIngest(&rows[i], it, now); err != nil {
			return err
		}
	}
	if err := db.ingestConn(ctx, rows); err != nil {
		return err
	}
	for i, it := range items {
		it.Outcome = rows[i].outcome
		it.ViolationID = rows[i].id
	}
	return nil
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
	// report_id is a uuid column: anything but a canonical UUID would fail
	// the transaction, so it is refused here, where the caller learns why.
	if id, err := tes.ValidateReportID(r.ReportID); err != nil {
		return err
	} else if id != r.ReportID {
		return tes.Errorf(tes.EINVALID, "Invalid report_id: must be a lower-case UUID.")
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
	return nil
}

// Statements of the ingest path. The arrays are bound as parameters, so
// each statement is parsed and planned once per connection (pgx caches the
// prepared statement) and runs once per batch.
const (
	sqlLockHead = `SELECT seq, hash FROM audit_head WHERE id FOR UPDATE`

	sqlInsertDigests = `INSERT INTO seen_digests (digest, kind, at)
		SELECT * FROM unnest($1::bytea[], $2::int2[], $3::timestamptz[])
		ON CONFLICT DO NOTHING RETURNING digest`

	sqlInsertKeys = `INSERT INTO client_keys (fingerprint, public_key)
		SELECT * FROM unnest($1::text[], $2::bytea[])
		ON CONFLICT DO NOTHING`

	sqlNextIDs = `SELECT nextval($1::regclass) FROM generate_series(1, $2)`

	sqlInsertViolations = `INSERT INTO violations (id, report_id, plate_key, plate_enc, speed, speed_limit, location_enc,
			observed_at, received_at, reported_by, suite, ev_signed, ev_sig, ev_key_fp, device_id, sig_verified)
		SELECT u.id, u.rid::uuid, u.pk, u.pe, u.sp, u.sl, u.loc, u.obs, u.rcv, u.usr, u.suite, u.sgn, u.sig, u.fp, u.dev, u.ver
		FROM unnest($1::int8[], $2::text[], $3::bytea[], $4::bytea[], $5::int4[], $6::int4[], $7::bytea[],
			$8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::bytea[], $13::bytea[], $14::text[],
			$15::text[], $16::bool[])
			AS u(id, rid, pk, pe, sp, sl, loc, obs, rcv, usr, suite, sgn, sig, fp, dev, ver)
		ON CONFLICT (report_id) DO NOTHING RETURNING id`

	sqlDuplicateIDs = `SELECT report_id::text, id FROM violations WHERE report_id = ANY($1::uuid[])`

	sqlInsertEvents = `INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash)
		SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[])`

	sqlMoveHead = `UPDATE audit_head SET seq = $1, hash = $2 WHERE id AND seq = $3`

	sqlCountPending = `UPDATE violation_counts SET n = n + $1 WHERE status = 'PENDING'`
)

// ingestConn runs the ingest transaction on one pooled connection. The
// transaction is opened and committed inside the statement pipelines
// (BEGIN queued before the first statement, COMMIT after the last), so a
// batch costs three round trips to the server, not five: that is most of
// the cost of a batch of one. On any error the transaction is rolled back;
// a connection that is still in a transaction is never reused (pgxpool
// closes it on release).
func (db *DB) ingestConn(ctx context.Context, rows []ingestRow) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return wrap("ingest", err)
	}
	defer c.Release()
	if err := db.ingestTx(ctx, c.Conn(), rows); err != nil {
		if !c.Conn().IsClosed() && c.Conn().PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			c.Conn().Exec(rctx, "ROLLBACK")
			cancel()
		}
		return wrap("ingest", err)
	}
	return nil
}

const (
	sqlBegin  = `BEGIN ISOLATION LEVEL READ COMMITTED`
	sqlCommit = `COMMIT`
)

// ingestTx is one ingest transaction on conn: three pipelines, the first
// opening the transaction, the last committing it.
func (db *DB) ingestTx(ctx context.Context, conn *pgx.Conn, rows []ingestRow) error {
	for i := range rows { // a retried transaction starts clean
		rows[i].outcome, rows[i].id, rows[i].dupOf = tes.OutcomeNone, 0, -1
	}

	// The first occurrence of each digest is offered to the database; a
	// later one in the batch is a replay of it.
	first := make(map[string]struct{}, len(rows))
	var (
		digests [][]byte
		kinds   []int16
		ats     []time.Time
		nReport int
		keyFPs  []string
		keyPubs [][]byte
		keySeen map[string]struct{}
	)
	for i := range rows {
		row := &rows[i]
		if row.digest != nil { // a TLS-suite report has none (tes.IngestItem)
			if _, dup := first[string(row.digest)]; dup {
				row.outcome = tes.OutcomeReplay
				continue
			}
			first[string(row.digest)] = struct{}{}
			digests, kinds, ats = append(digests, row.digest), append(kinds, row.kind), append(ats, row.at)
		}
		if row.r == nil {
			continue
		}
		nReport++
		if fp := row.r.Evidence.KeyFingerprint; fp != "" {
			if _, ok := keySeen[fp]; !ok {
				if keySeen == nil {
					keySeen = make(map[string]struct{})
				}
				keySeen[fp] = struct{}{}
				keyFPs, keyPubs = append(keyFPs, fp), append(keyPubs, row.r.Evidence.PublicKey)
			}
		}
	}

	if nReport == 0 {
		return claimsOnly(ctx, conn, rows, digests, kinds, ats)
	}

	// One round trip: BEGIN, the chain head lock (first, as in every
	// appending transaction), the digests, the client keys and ids for the
	// reports. The ids are drawn under the lock, so they increase in the
	// order batches commit, on every node; ids of reports that turn out to
	// be replays or duplicates are never used (unique, not gap-free). A
	// batch of session claims alone appends no event and takes no lock, so
	// it does not wait for another node's report batch.
	b := &pgx.Batch{}
	b.Queue(sqlBegin)
	if nReport > 0 {
		b.Queue(sqlLockHead)
	}
	b.Queue(sqlInsertDigests, byteaArray(digests), kinds, timeArray(ats))
	if len(keyFPs) > 0 {
		b.Queue(sqlInsertKeys, keyFPs, keyPubs)
	}
	if nReport > 0 {
		b.Queue(sqlNextIDs, db.idSeq, nReport)
	}
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return err
	}
	var head chainHead
	if nReport > 0 {
		var err error
		if head, err = scanHead(br.QueryRow()); err != nil {
			br.Close()
			return err
		}
	}
	dr, err := br.Query()
	if err != nil {
		br.Close()
		return err
	}
	inserted, err := scanDigests(dr, len(digests))
	if err != nil {
		br.Close()
		return err
	}
	if len(keyFPs) > 0 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	var ids []int64
	if nReport > 0 {
		ir, err := br.Query()
		if err != nil {
			br.Close()
			return err
		}
		ids, err = pgx.CollectRows(ir, pgx.RowTo[int64])
		if err != nil {
			br.Close()
			return err
		}
		slices.Sort(ids) // later items get larger ids
	}
	if err := br.Close(); err != nil {
		return err
	}

	// Outcomes of the digests; the reports still in play, first occurrence
	// of each report_id only.
	var cand []int
	byRID := make(map[string]int)
	for i := range rows {
		row := &rows[i]
		if row.outcome != tes.OutcomeNone {
			continue
		}
		if _, ok := inserted[string(row.digest)]; !ok && row.digest != nil {
			row.outcome = tes.OutcomeReplay
			continue
		}
		if row.r == nil {
			row.outcome = tes.OutcomeStored
			continue
		}
		if rid := row.r.ReportID; rid != "" {
			if j, ok := byRID[rid]; ok {
				row.dupOf = j
				continue
			}
			byRID[rid] = i
		}
		cand = append(cand, i)
	}

	var stored []int
	if len(cand) > 0 {
		if len(ids) < len(cand) {
			return fmt.Errorf("allocated %d ids for %d reports", len(ids), len(cand))
		}
		var err error
		if stored, err = db.insertViolations(ctx, conn, rows, cand, ids); err != nil {
			return err
		}
	}
	for i := range rows {
		if j := rows[i].dupOf; j >= 0 {
			rows[i].outcome, rows[i].id = tes.OutcomeDuplicate, rows[j].id
		}
	}
	if len(stored) == 0 {
		return commit(ctx, conn, &pgx.Batch{})
	}

	// The audit events of the stored reports, in batch order, linked to
	// the head read under the lock; then the head and the counter move.
	n := len(stored)
	var (
		seqs                               = make([]int64, n)
		evAts                              = make([]time.Time, n)
		actors, actions, subjects, details = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prevs, hashes                      = make([][]byte, n), make([][]byte, n)
		ev                                 = tes.Event{Action: "report.accepted"}
		detail                             = make([]byte, 0, 64)
		oldSeq                             = head.seq
	)
	for k, i := range stored {
		row := &rows[i]
		ev.At = row.at
		ev.Actor = row.r.User
		ev.Subject = "violation:" + strconv.FormatInt(row.id, 10)
		detail = append(detail[:0], "suite="...)
		detail = append(detail, row.r.Suite...)
		detail = append(detail, " plate_key="...)
		detail = hex.AppendEncode(detail, row.plateKey[:4])
		detail = append(detail, " speed="...)
		detail = strconv.AppendInt(detail, int64(row.r.Speed), 10)
		ev.Detail = string(detail)
		head.link(&ev)
		seqs[k], evAts[k], actors[k], actions[k], subjects[k], details[k] = ev.Seq, ev.At, ev.Actor, ev.Action, ev.Subject, ev.Detail
		prevs[k], hashes[k] = ev.PrevHash, ev.Hash
	}
	b = &pgx.Batch{}
	b.Queue(sqlInsertEvents, int64Array(seqs), timeArray(evAts), textArray(actors), textArray(actions), textArray(subjects),
		textArray(details), byteaArray(prevs), byteaArray(hashes))
	b.Queue(sqlMoveHead, head.seq, head.hash, oldSeq)
	b.Queue(sqlCountPending, n)
	return commit(ctx, conn, b)
}

// claimsOnly commits a batch of session claims alone, which appends no
// audit event and takes no lock, in one round trip: BEGIN, the INSERT and
// COMMIT in one pipeline, instead of BEGIN with the INSERT and a COMMIT
// after it (two round trips, each about 0.1 ms of this process's CPU in
// system calls and wake-ups; a batch holds a few claims). The explicit
// BEGIN keeps READ COMMITTED whatever the server's default isolation. If
// the INSERT fails, PostgreSQL skips the COMMIT and ingestConn rolls back.
func claimsOnly(ctx context.Context, conn *pgx.Conn, rows []ingestRow, digests [][]byte, kinds []int16, ats []time.Time) error {
	b := &pgx.Batch{}
	b.Queue(sqlBegin)
	b.Queue(sqlInsertDigests, byteaArray(digests), kinds, timeArray(ats))
	b.Queue(sqlCommit)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	dr, err := br.Query()
	if err != nil {
		return err
	}
	inserted, err := scanDigests(dr, len(digests))
	if err != nil {
		return err
	}
	if tag, err := br.Exec(); err != nil {
		return err
	} else if tag.String() != "COMMIT" {
		return fmt.Errorf("the transaction did not commit (%s)", tag)
	}
	if err := br.Close(); err != nil {
		return err
	}
	for i := range rows {
		row := &rows[i]
		if row.outcome != tes.OutcomeNone {
			continue // a later copy of a digest in this batch
		}
		if _, ok := inserted[string(row.digest)]; ok {
			row.outcome = tes.OutcomeStored
		} else {
			row.outcome = tes.OutcomeReplay
		}
	}
	return nil
}

// scanDigests reads the digests an INSERT ... RETURNING digest wrote and
// closes dr.
func scanDigests(dr pgx.Rows, n int) (map[string]struct{}, error) {
	defer dr.Close()
	inserted := make(map[string]struct{}, n)
	for dr.Next() {
		var d []byte
		if err := dr.Scan(&d); err != nil {
			return nil, err
		}
		inserted[string(d)] = struct{}{}
	}
	dr.Close()
	return inserted, dr.Err()
}

// commit sends b followed by COMMIT and checks every statement, the audit
// head move (b's second statement, if any) for exactly one row, and that
// the transaction did commit.
func commit(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	b.Queue(sqlCommit)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	for i := 0; i < b.Len(); i++ {
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		if i == 1 && b.Len() > 2 && tag.RowsAffected() != 1 {
			return fmt.Errorf("the audit chain head moved under a locked transaction")
		}
		if i == b.Len()-1 && tag.String() != "COMMIT" {
			return fmt.Errorf("the transaction did not commit (%s)", tag)
		}
	}
	return br.Close()
}

// insertViolations inserts rows[cand] with ids[:len(cand)] and returns the
// indexes of the rows stored, in batch order. A row whose report_id is
// already in the table gets the stored row's id and OutcomeDuplicate.
func (db *DB) insertViolations(ctx context.Context, conn *pgx.Conn, rows []ingestRow, cand []int, ids []int64) ([]int, error) {
	n := len(cand)
	var (
		vid             = make([]int64, n)
		rid             = make([]*string, n)
		pk, pe, loc     = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		sp, sl          = make([]int32, n), make([]int32, n)
		obs             = make([]*time.Time, n)
		rcv             = make([]time.Time, n)
		usr, suite, dev = make([]string, n), make([]string, n), make([]string, n)
		sgn, sig        = make([][]byte, n), make([][]byte, n)
		fp              = make([]*string, n)
		ver             = make([]bool, n)
	)
	for k, i := range cand {
		row := &rows[i]
		r := row.r
		vid[k] = ids[k]
		rid[k] = nullString(r.ReportID)
		pk[k], pe[k], loc[k] = row.plateKey, row.plateEnc, row.locEnc
		sp[k], sl[k] = int32(r.Speed), int32(r.SpeedLimit)
		obs[k] = nullTS(r.ObservedAt)
		rcv[k] = row.at
		usr[k], suite[k], dev[k] = r.User, r.Suite, r.Evidence.DeviceID
		sgn[k], sig[k] = r.Evidence.Signed, r.Evidence.Signature
		fp[k] = nullString(r.Evidence.KeyFingerprint)
		ver[k] = len(r.Evidence.Signature) > 0
	}
	qr, err := conn.Query(ctx, sqlInsertViolations, int64Array(vid), nullTextArray(rid), byteaArray(pk), byteaArray(pe),
		int32Array(sp), int32Array(sl), byteaArray(loc), nullTimeArray(obs), timeArray(rcv), textArray(usr), textArray(suite),
		byteaArray(sgn), byteaArray(sig), nullTextArray(fp), textArray(dev), ver)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(qr, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	ok := make(map[int64]struct{}, len(got))
	for _, id := range got {
		ok[id] = struct{}{}
	}
	var stored []int
	var dupRIDs []string
	for k, i := range cand {
		if _, yes := ok[vid[k]]; yes {
			rows[i].outcome, rows[i].id = tes.OutcomeStored, vid[k]
			stored = append(stored, i)
		} else {
			dupRIDs = append(dupRIDs, rows[i].r.ReportID)
		}
	}
	if len(dupRIDs) == 0 {
		return stored, nil
	}
	// Resends of reports stored before (by this node or another): answer
	// with the stored id. Every one is committed: ON CONFLICT waited for
	// any transaction still holding the key.
	qr, err = conn.Query(ctx, sqlDuplicateIDs, dupRIDs)
	if err != nil {
		return nil, err
	}
	byRID := make(map[string]int64, len(dupRIDs))
	for qr.Next() {
		var r string
		var id int64
		if err := qr.Scan(&r, &id); err != nil {
			qr.Close()
			return nil, err
		}
		byRID[r] = id
	}
	qr.Close()
	if err := qr.Err(); err != nil {
		return nil, err
	}
	for _, i := range cand {
		if rows[i].outcome != tes.OutcomeNone {
			continue
		}
		id, found := byRID[rows[i].r.ReportID]
		if !found {
			return nil, fmt.Errorf("read duplicate report_id %s: not found", rows[i].r.ReportID)
		}
		rows[i].outcome, rows[i].id = tes.OutcomeDuplicate, id
	}
	return stored, nil
}

// execBatch sends b and checks every statement. The statement at index
// mustOne (-1: none) must change exactly one row: it is the audit head
// move, whose guard on the old seq catches a writer that skipped the lock.
func execBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch, mustOne int) error {
	br := tx.SendBatch(ctx, b)
	for i := 0; i < b.Len(); i++ {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return err
		}
		if i == mustOne && tag.RowsAffected() != 1 {
			br.Close()
			return fmt.Errorf("the audit chain head moved under a locked transaction")
		}
	}
	return br.Close()
}
