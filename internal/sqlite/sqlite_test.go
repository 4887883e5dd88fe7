package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/sqlite"
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

// mustOpen opens a new database in a fresh temporary directory and closes
// it when the test ends.
func mustOpen(t testing.TB) *sqlite.DB {
	t.Helper()
	return mustOpenPath(t, filepath.Join(t.TempDir(), "tes.db"), testKeys(t, 1))
}

func mustOpenPath(t testing.TB, path string, keys *atrest.Keys) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, keys)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tes.Store {
		db := mustOpen(t)
		t.Cleanup(func() {
			if err := db.IntegrityCheck(context.Background()); err != nil {
				t.Errorf("after the test: %v", err)
			}
		})
		return db
	})
}

func report(plate string, speed int) *tes.Report {
	return &tes.Report{Plate: plate, Speed: speed, SpeedLimit: 50, Location: "Rue de la Loi 16", User: "unit7", Suite: tes.SuiteTES1,
		Evidence: tes.Evidence{Signed: []byte("signed"), Signature: []byte("sig"), KeyFingerprint: "SHA256:k", PublicKey: []byte("pk")}}
}

var digestN int

func item(r *tes.Report) *tes.IngestItem {
	digestN++
	d := make([]byte, 32)
	copy(d, []byte(time.Now().String()))
	d[30], d[31] = byte(digestN>>8), byte(digestN)
	return &tes.IngestItem{MessageDigest: d, Report: r, ReceivedAt: time.Now()}
}

func mustIngest(t testing.TB, db *sqlite.DB, items ...*tes.IngestItem) {
	t.Helper()
	if err := db.Ingest(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func TestMigrationsRecordedAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	keys := testKeys(t, 1)
	db := mustOpenPath(t, path, keys)
	if sqlite.SchemaVersion() < 1 {
		t.Fatalf("SchemaVersion = %d", sqlite.SchemaVersion())
	}
	db.Close()
	db = mustOpenPath(t, path, keys) // reopen: nothing to apply, nothing fails
	db.Close()

	raw := rawDB(t, path)
	rows, err := raw.Query(`SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		if at <= 0 {
			t.Errorf("migration %d has applied_at %d", v, at)
		}
		versions = append(versions, v)
	}
	if len(versions) != sqlite.SchemaVersion() {
		t.Fatalf("schema_migrations holds %v after two opens, want each of 1..%d once", versions, sqlite.SchemaVersion())
	}
	for i, v := range versions {
		if v != i+1 {
			t.Errorf("schema_migrations = %v, want 1..%d", versions, sqlite.SchemaVersion())
		}
	}
	var mode string
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	mustOpenPath(t, path, testKeys(t, 1)).Close()
	raw := rawDB(t, path)
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 1)`, sqlite.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := sqlite.Open(context.Background(), path, testKeys(t, 1))
	if err == nil {
		db.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "upgrade tes") {
		t.Errorf("Open(newer schema) = %v; want EINVALID saying to upgrade tes", err)
	}
}

func TestRefusesWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	mustOpenPath(t, path, testKeys(t, 1)).Close()
	db, err := sqlite.Open(context.Background(), path, testKeys(t, 2))
	if err == nil {
		db.Close()
		t.Fatal("Open accepted a key the database was not created with")
	}
	if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "key") {
		t.Errorf("Open(wrong key) = %v; want EINVALID about the key", err)
	}
}

func TestRefusesURIPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?mode=ro")} {
		if db, err := sqlite.Open(context.Background(), p, testKeys(t, 1)); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", p)
		} else if tes.ErrorCode(err) != tes.EINVALID {
			t.Errorf("Open(%q) = %v, want EINVALID", p, err)
		}
	}
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	keys := testKeys(t, 1)
	ctx := context.Background()
	db := mustOpenPath(t, path, keys)
	it := item(report("AB-123-CD", 85))
	mustIngest(t, db, it)
	if _, err := db.Decide(ctx, tes.Decision{ViolationID: it.ViolationID, Approve: true, By: "alice"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUser(ctx, &tes.User{Name: "alice", Role: tes.RoleOfficer, PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenPath(t, path, keys)
	v, err := db.Violation(ctx, it.ViolationID)
	if err != nil || v.Plate != "AB-123-CD" || v.Status != tes.StatusApproved || v.PointsApplied != 20 {
		t.Fatalf("after reopen: %+v, %v", v, err)
	}
	if d, err := db.Driver(ctx, "AB-123-CD"); err != nil || d.Points != 20 {
		t.Errorf("driver after reopen: %+v, %v", d, err)
	}
	if _, err := db.User(ctx, "alice"); err != nil {
		t.Errorf("user after reopen: %v", err)
	}
	// The replay guard holds across restarts.
	again := &tes.IngestItem{MessageDigest: it.MessageDigest, Report: report("AB-123-CD", 85)}
	mustIngest(t, db, again)
	if again.Outcome != tes.OutcomeReplay {
		t.Errorf("replay after reopen: %v, want replay", again.Outcome)
	}
	events, err := db.Events(ctx, 0, 10)
	if err != nil || len(events) != 2 {
		t.Fatalf("events after reopen: %d, %v", len(events), err)
	}
	if err := db.AppendEvents(ctx, &tes.Event{Actor: "x", Action: "after.reopen"}); err != nil {
		t.Fatal(err)
	}
	events, _ = db.Events(ctx, 0, 1)
	if events[0].Seq != 3 {
		t.Errorf("first event after reopen has seq %d, want 3 (the chain continues)", events[0].Seq)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
}

func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "tes.db")
	db := mustOpenPath(t, path, testKeys(t, 1))
	mustIngest(t, db, item(report("AB-1", 90)))
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), got)
		}
	}
}

func TestNoPlaintextPlatesOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	db := mustOpenPath(t, path, testKeys(t, 1))
	ctx := context.Background()
	const plate, location = "QX-7734-ZJ", "Boulevard Anspach 1234"
	r := report(plate, 120)
	r.Location = location
	it := item(r)
	mustIngest(t, db, it)
	if _, err := db.Decide(ctx, tes.Decision{ViolationID: it.ViolationID, Approve: true, By: "alice"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	// Read it back to make sure the data is there, then look at the bytes:
	// first the WAL (not yet checkpointed), then the database file after a
	// checkpoint on close.
	if v, err := db.Violation(ctx, it.ViolationID); err != nil || v.Plate != plate || v.Location != location {
		t.Fatalf("Violation = %+v, %v", v, err)
	}
	checkFiles := func(when string) {
		total := 0
		for _, p := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(p)
			if os.IsNotExist(err) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			total += len(b)
			for _, secret := range []string{plate, location, `"points"`} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: %s contains %q in clear", when, filepath.Base(p), secret)
				}
			}
		}
		if total == 0 {
			t.Fatalf("%s: no database bytes to search", when)
		}
	}
	checkFiles("open")
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Errorf("the WAL is empty before close (%v), so the open check saw nothing", err)
	}
	db.Close()
	checkFiles("closed")
}

func TestIntegrityCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	db := mustOpenPath(t, path, testKeys(t, 1))
	for range 20 {
		mustIngest(t, db, item(report("AB-1", 90)))
	}
	ctx := context.Background()
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatalf("IntegrityCheck on a good database: %v", err)
	}
	if db.Path() != path {
		t.Errorf("Path = %q, want %q", db.Path(), path)
	}
	// A counter that disagrees with the rows is found.
	raw := rawDB(t, path)
	if _, err := raw.Exec(`UPDATE violation_counts SET n = n + 1 WHERE status = 'APPROVED'`); err != nil {
		t.Fatal(err)
	}
	if err := db.IntegrityCheck(ctx); tes.ErrorCode(err) != tes.EINTERNAL || !strings.Contains(err.Error(), "APPROVED") {
		t.Errorf("IntegrityCheck with a wrong counter = %v, want EINTERNAL naming APPROVED", err)
	}
}

func TestDecidedRowsAndAuditAreFinal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.db")
	db := mustOpenPath(t, path, testKeys(t, 1))
	it := item(report("AB-1", 90))
	mustIngest(t, db, it)
	if _, err := db.Decide(context.Background(), tes.Decision{ViolationID: it.ViolationID, Approve: true, By: "alice"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	raw.Exec(`PRAGMA busy_timeout = 5000`)
	for _, q := range []string{
		`UPDATE violations SET status = 'REJECTED', reject_reason = 'other' WHERE id = 1`,
		`UPDATE violations SET points_applied = 0 WHERE id = 1`,
		`DELETE FROM violations`,
		`UPDATE audit SET actor = 'mallory'`,
		`DELETE FROM audit`,
	} {
		if _, err := raw.Exec(q); err == nil {
			t.Errorf("%s: succeeded, want the schema to refuse it", q)
		}
	}
}

func TestQueryPlansUseIndexes(t *testing.T) {
	db := mustOpen(t)
	raw := rawDB(t, db.Path())
	cursorKey, cursorID := time.Now().UnixMicro(), int64(1000)
	for _, c := range sqlite.PlanCases(db) {
		t.Run(c.Name, func(t *testing.T) {
			for _, withCursor := range []bool{false, true} {
				q, args, err := c.Query(withCursor, cursorKey, cursorID)
				if err != nil {
					t.Fatal(err)
				}
				plan := explain(t, raw, q, args)
				for _, line := range strings.Split(plan, "\n") {
					if !strings.HasPrefix(line, "SCAN ") || c.Merged && strings.HasPrefix(line, "SCAN (subquery") {
						continue
					}
					// An ordered walk of the right index without a bound is
					// fine for a first page: LIMIT ends it after one page.
					if !(c.OrderedScan && !withCursor && strings.Contains(line, "INDEX "+c.Index)) {
						t.Errorf("cursor=%v: scan:\n%s\n%s", withCursor, q, plan)
					}
				}
				if !strings.Contains(plan, "USING INDEX "+c.Index) && !strings.Contains(plan, "USING COVERING INDEX "+c.Index) {
					t.Errorf("cursor=%v: plan does not use %s:\n%s", withCursor, c.Index, plan)
				}
				if c.Merged {
					// One ordered co-routine per status, merged; the only
					// sorts are of those pages (each a SCAN of its subquery).
					if n := strings.Count(plan, "SEARCH v USING INDEX "+c.Index+" (status=?"); n != len(tes.Statuses) {
						t.Errorf("cursor=%v: %d index ranges, want one per status:\n%s", withCursor, n, plan)
					}
					if !strings.Contains(plan, "MERGE (UNION ALL)") || strings.Count(plan, "TEMP B-TREE") != strings.Count(plan, "SCAN (subquery") {
						t.Errorf("cursor=%v: plan does not merge the per-status pages:\n%s", withCursor, plan)
					}
				} else if c.NoSort && strings.Contains(plan, "TEMP B-TREE") {
					t.Errorf("cursor=%v: plan sorts instead of reading the index in order:\n%s", withCursor, plan)
				}
				if withCursor && c.NoSort && !strings.Contains(plan, "SEARCH") {
					t.Errorf("cursor=%v: keyset bound is not an index range:\n%s", withCursor, plan)
				}
			}
		})
	}
}

func explain(t *testing.T, raw *sql.DB, q string, args []any) string {
	t.Helper()
	rows, err := raw.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}
