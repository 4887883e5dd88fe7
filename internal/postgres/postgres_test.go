package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/postgres"
	"github.com/tes-traffic/tes/internal/postgres/pgtest"
	"github.com/tes-traffic/tes/internal/storetest"
)

func testKeys(t testing.TB, fill byte) *atrest.Keys {
	t.Helper()
	k, err := atrest.New(bytes.Repeat([]byte{fill}, atrest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustOpenURL opens (migrating) the store at u and closes it at test end.
func mustOpenURL(t testing.TB, u string, keys *atrest.Keys) *postgres.DB {
	t.Helper()
	db, err := postgres.OpenOptions(context.Background(), u, keys, postgres.Options{Migrate: postgres.MigrateAll})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustOpen opens a new store in a schema of its own in a new database.
func mustOpen(t testing.TB) (*postgres.DB, string) {
	t.Helper()
	return mustOpenKeys(t, testKeys(t, 1))
}

// mustOpenKeys is mustOpen with the given at-rest keys.
func mustOpenKeys(t testing.TB, keys *atrest.Keys) (*postgres.DB, string) {
	t.Helper()
	u := pgtest.NewSchema(t, pgtest.NewDatabase(t))
	return mustOpenURL(t, u, keys), u
}

func TestStore(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	storetest.Run(t, func(t *testing.T) tes.Store {
		db := mustOpenURL(t, pgtest.NewSchema(t, dbURL), testKeys(t, 1))
		t.Cleanup(func() {
			if err := db.IntegrityCheck(context.Background()); err != nil {
				t.Errorf("after the test: %v", err)
			}
		})
		return db
	})
}

func TestMigrationsConcurrentAndRecorded(t *testing.T) {
	u := pgtest.NewSchema(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	// Several nodes starting at once on an empty database: one creates
	// the schema, the others wait for the lock and find it done.
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			db, err := postgres.OpenOptions(ctx, u, testKeys(t, 1), postgres.Options{Migrate: postgres.MigrateEmpty})
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent open: %v", err)
		}
	}
	rows := mustQueryInts(t, u, `SELECT version FROM schema_migrations ORDER BY version`)
	if len(rows) != postgres.SchemaVersion() {
		t.Fatalf("schema_migrations = %v, want each of 1..%d once", rows, postgres.SchemaVersion())
	}
	for i, v := range rows {
		if v != int64(i+1) {
			t.Errorf("schema_migrations = %v", rows)
		}
	}
	// Nothing is due: Open without migrating works, Migrate is a no-op.
	mustOpenURL(t, u, testKeys(t, 1))
	from, to, err := postgres.Migrate(ctx, u)
	if err != nil || from != postgres.SchemaVersion() || to != from {
		t.Errorf("Migrate on a current schema = %d -> %d, %v; want %d -> %d", from, to, err, postgres.SchemaVersion(), postgres.SchemaVersion())
	}
}

func mustQueryInts(t *testing.T, u, q string) []int64 {
	t.Helper()
	c, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenDoesNotMigrate(t *testing.T) {
	u := pgtest.NewSchema(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	db, err := postgres.Open(ctx, u, testKeys(t, 1))
	if err == nil {
		db.Close()
		t.Fatal("Open created a schema without being asked")
	}
	if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "tes migrate") {
		t.Errorf("Open(empty database) = %v; want EINVALID telling to run tes migrate", err)
	}
	if got := mustQueryInts(t, u, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`); got[0] != 0 {
		t.Errorf("Open without migrating left %d tables", got[0])
	}
	from, to, err := postgres.Migrate(ctx, u)
	if err != nil || from != 0 || to != postgres.SchemaVersion() {
		t.Fatalf("Migrate = %d -> %d, %v; want 0 -> %d", from, to, err, postgres.SchemaVersion())
	}
	// tes migrate needs no key; the first Open seals the key check.
	mustOpenURL(t, u, testKeys(t, 1))
	if db, err := postgres.Open(ctx, u, testKeys(t, 2)); err == nil {
		db.Close()
		t.Error("Open accepted a second key after the first sealed the key check")
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	_, u := mustOpen(t)
	if err := pgtest.Exec(t, u, fmt.Sprintf(`INSERT INTO schema_migrations (version, applied_at) VALUES (%d, now())`, postgres.SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, mode := range []postgres.MigrateMode{postgres.MigrateNone, postgres.MigrateEmpty, postgres.MigrateAll} {
		db, err := postgres.OpenOptions(ctx, u, testKeys(t, 1), postgres.Options{Migrate: mode})
		if err == nil {
			db.Close()
			t.Fatalf("mode %d: Open accepted a newer schema", mode)
		}
		if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "upgrade tes") {
			t.Errorf("mode %d: Open(newer schema) = %v; want EINVALID saying to upgrade tes", mode, err)
		}
	}
	if _, _, err := postgres.Migrate(ctx, u); !strings.Contains(tes.ErrorMessage(err), "upgrade tes") {
		t.Errorf("Migrate(newer schema) = %v; want EINVALID saying to upgrade tes", err)
	}
}

func TestRefusesWrongKey(t *testing.T) {
	_, u := mustOpen(t)
	db, err := postgres.Open(context.Background(), u, testKeys(t, 2))
	if err == nil {
		db.Close()
		t.Fatal("Open accepted a key the database was not created with")
	}
	if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "key") {
		t.Errorf("Open(wrong key) = %v; want EINVALID about the key", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"", "sqlite:x.db", "mysql://x", "postgres://u:secret@[::1"} {
		db, err := postgres.Open(ctx, u, testKeys(t, 1))
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if tes.ErrorCode(err) != tes.EINVALID || strings.Contains(tes.ErrorMessage(err), "secret") {
			t.Errorf("Open(%q) = %v; want EINVALID without the password", u, err)
		}
	}
	// Nothing listens on port 1.
	db, err := postgres.Open(ctx, "postgres://u:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", testKeys(t, 1))
	if err == nil {
		db.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
	if tes.ErrorCode(err) != tes.EUNAVAILABLE || strings.Contains(tes.ErrorMessage(err), "secret") {
		t.Errorf("Open(unreachable) = %v; want EUNAVAILABLE without the password", err)
	}
	if _, err := postgres.Open(ctx, "postgres://x", nil); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("Open without keys = %v, want EINVALID", err)
	}
}

func report(plate string, speed int) *tes.Report {
	return &tes.Report{Plate: plate, Speed: speed, SpeedLimit: 50, Location: "Rue de la Loi 16", User: "unit7", Suite: tes.SuiteTES1,
		Evidence: tes.Evidence{Signed: []byte("signed"), Signature: []byte("sig"), KeyFingerprint: "SHA256:k", PublicKey: []byte("pk")}}
}

var digestN atomic.Int64

func item(r *tes.Report) *tes.IngestItem {
	d := sha256.Sum256(fmt.Append(nil, "postgres test digest ", digestN.Add(1), time.Now().UnixNano()))
	return &tes.IngestItem{MessageDigest: d[:], Report: r, ReceivedAt: time.Now()}
}

func mustIngest(t testing.TB, db tes.Store, items ...*tes.IngestItem) {
	t.Helper()
	if err := db.Ingest(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

func TestDecidedRowsAndAuditAreFinal(t *testing.T) {
	db, u := mustOpen(t)
	it := item(report("AB-1", 90))
	pending := item(report("AB-2", 90))
	mustIngest(t, db, it, pending)
	if _, err := db.Decide(context.Background(), tes.Decision{ViolationID: it.ViolationID, Approve: true, By: "alice"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(it.ViolationID)
	for _, q := range []string{
		`UPDATE violations SET status = 'REJECTED', reject_reason = 'other', points_applied = 0 WHERE id = ` + id,
		`UPDATE violations SET points_applied = 0 WHERE id = ` + id,
		`UPDATE violations SET speed = 10 WHERE id = ` + id,
		`DELETE FROM violations WHERE id = ` + fmt.Sprint(pending.ViolationID),
		`TRUNCATE violations CASCADE`,
		`UPDATE audit SET actor = 'mallory'`,
		`DELETE FROM audit`,
		`TRUNCATE audit`,
		`DELETE FROM audit_head`,
		// A fork: a second event after event 1.
		`INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash)
			SELECT 2, now(), 'mallory', 'x', 'y', '', hash, hash FROM audit WHERE seq = 1`,
		// An event claiming to start a chain in the middle.
		`INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (99, now(), 'm', 'x', 'y', '', NULL, sha256('x'))`,
		// Pending rows must not carry a decision; decided rows must.
		`UPDATE violations SET decided_by = 'x' WHERE id = ` + fmt.Sprint(pending.ViolationID),
		`UPDATE violations SET status = 'APPROVED' WHERE id = ` + fmt.Sprint(pending.ViolationID),
		`INSERT INTO seen_digests (digest, kind, at) VALUES ('\x00', 2, now())`,
	} {
		if err := pgtest.Exec(t, u, q); err == nil {
			t.Errorf("%s: succeeded, want the schema to refuse it", q)
		}
	}
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestNoPlaintextOnServer(t *testing.T) {
	db, u := mustOpen(t)
	ctx := context.Background()
	const plate, location = "QX-7734-ZJ", "Boulevard Anspach 1234"
	r := report(plate, 120)
	r.Location = location
	it := item(r)
	mustIngest(t, db, it)
	if _, err := db.Decide(ctx, tes.Decision{ViolationID: it.ViolationID, Approve: true, By: "alice"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Violation(ctx, it.ViolationID); err != nil || v.Plate != plate || v.Location != location {
		t.Fatalf("Violation = %+v, %v", v, err)
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	seen := 0
	for _, table := range []string{"violations", "drivers", "audit", "client_keys", "seen_digests", "meta"} {
		rows, err := c.Query(ctx, `SELECT t::text FROM `+table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			seen++
			for _, secret := range []string{plate, location, `"points"`} {
				if strings.Contains(s, secret) || strings.Contains(s, hex.EncodeToString([]byte(secret))) {
					t.Errorf("%s holds %q in clear: %s", table, secret, s)
				}
			}
		}
	}
	if seen < 5 {
		t.Fatalf("only %d rows searched", seen)
	}
}

func TestViolationStats(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	h0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration, speeds ...int) {
		var items []*tes.IngestItem
		for _, s := range speeds {
			it := item(&tes.Report{Plate: "AB 123", Speed: s, User: "unit7", Suite: tes.SuiteTES1})
			it.ReceivedAt = h0.Add(d)
			items = append(items, it)
		}
		mustIngest(t, db, items...)
	}
	if st, err := db.ViolationStats(ctx, h0); err != nil || st.Total != 0 || len(st.Hourly) != 0 {
		t.Fatalf("empty store: %+v, %v", st, err)
	}
	at(-time.Second, 200)
	at(0, 55, 59, 60)
	at(59*time.Minute+59*time.Second, 101)
	at(3*time.Hour+time.Minute, 0, 9, 101, 75)
	st, err := db.ViolationStats(ctx, h0)
	if err != nil {
		t.Fatal(err)
	}
	wantHours := []tes.HourCount{{Hour: h0, Count: 4}, {Hour: h0.Add(3 * time.Hour), Count: 4}}
	wantBuckets := []tes.BucketCount{{Min: 0, Count: 2}, {Min: 50, Count: 2}, {Min: 60, Count: 1}, {Min: 70, Count: 1}, {Min: 100, Count: 2}}
	if st.Total != 8 || !reflect.DeepEqual(st.Hourly, wantHours) || !reflect.DeepEqual(st.SpeedBuckets, wantBuckets) {
		t.Errorf("stats = %+v\nwant total 8, hours %+v, buckets %+v", st, wantHours, wantBuckets)
	}
	if !st.Since.Equal(h0) {
		t.Errorf("Since = %v", st.Since)
	}
	st, err = db.ViolationStats(ctx, h0.Add(time.Hour))
	if err != nil || st.Total != 4 || len(st.Hourly) != 1 || !st.Hourly[0].Hour.Equal(h0.Add(3*time.Hour)) {
		t.Errorf("since h0+1h: %+v, %v", st, err)
	}
}

func TestReportStatuses(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	r := report("AB-1", 90)
	r.ReportID = "0190a1b2-0000-7000-8000-000000000001"
	it := item(r)
	mustIngest(t, db, it)
	got, err := db.ReportStatuses(ctx, "unit7", []string{r.ReportID, "not-a-uuid", "0190A1B2-0000-7000-8000-000000000001", "0190a1b2-0000-7000-8000-000000000002"})
	if err != nil || len(got) != 1 || got[0].ViolationID != it.ViolationID || got[0].Status != tes.StatusPending {
		t.Fatalf("ReportStatuses = %+v, %v", got, err)
	}
	if got, err := db.ReportStatuses(ctx, "someone-else", []string{r.ReportID}); err != nil || len(got) != 0 {
		t.Errorf("another user's report: %+v, %v", got, err)
	}
	if _, err := db.Decide(ctx, tes.Decision{ViolationID: it.ViolationID, By: "olga", Reason: tes.ReasonDuplicate}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	got, _ = db.ReportStatuses(ctx, "unit7", []string{r.ReportID})
	if len(got) != 1 || got[0].Status != tes.StatusRejected || got[0].RejectReason != tes.ReasonDuplicate || got[0].DecidedAt.IsZero() {
		t.Errorf("after rejection: %+v", got)
	}
	if _, err := db.ReportStatuses(ctx, "unit7", make([]string, postgres.MaxStatusQuery+1)); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("too many ids: %v", err)
	}
}

func TestDeviceStore(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	storetest.RunDevices(t, func(t *testing.T) storetest.DeviceBackend {
		return mustOpenURL(t, pgtest.NewSchema(t, dbURL), testKeys(t, 1))
	})
}

// TestOlderSchemaNeedsTesMigrate: a database one migration behind is
// refused by Open and by the server's mode, with a message that says to
// run tes migrate, which then upgrades it.
func TestOlderSchemaNeedsTesMigrate(t *testing.T) {
	if postgres.SchemaVersion() < 2 {
		t.Skip("one migration only")
	}
	u := pgtest.NewSchema(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	old := postgres.SchemaVersion() - 1
	if from, to, err := postgres.MigrateTo(ctx, u, old); err != nil || from != 0 || to != old {
		t.Fatalf("MigrateTo(%d) = %d -> %d, %v", old, from, to, err)
	}
	for _, mode := range []postgres.MigrateMode{postgres.MigrateNone, postgres.MigrateEmpty} {
		db, err := postgres.OpenOptions(ctx, u, testKeys(t, 1), postgres.Options{Migrate: mode})
		if err == nil {
			db.Close()
			t.Fatalf("mode %d opened an older schema", mode)
		}
		if msg := tes.ErrorMessage(err); tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(msg, "older") || !strings.Contains(msg, "tes migrate") {
			t.Errorf("mode %d: %v; want EINVALID saying the schema is older and to run tes migrate", mode, err)
		}
	}
	from, to, err := postgres.Migrate(ctx, u)
	if err != nil || from != old || to != postgres.SchemaVersion() {
		t.Fatalf("Migrate = %d -> %d, %v; want %d -> %d", from, to, err, old, postgres.SchemaVersion())
	}
	mustOpenURL(t, u, testKeys(t, 1))
}
