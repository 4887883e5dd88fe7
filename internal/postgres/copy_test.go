package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/postgres/pgtest"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/storecopy"
)

// fillSQLite gives a SQLite store something of everything: users (one
// locked), reports with and without report_id over a few plates, session
// claims, approvals and rejections, extra audit events, web sessions and
// an API token.
func fillSQLite(t *testing.T, db *sqlite.DB, nReports int) {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 4, 1, 8, 0, 0, 123456789, time.UTC)
	for i, u := range []*tes.User{
		{Name: "admin", Role: tes.RoleAdmin, PasswordHash: "$argon2id$a", MustChangePass: true},
		{Name: "olga", Role: tes.RoleOfficer, PasswordHash: "$argon2id$o", FailedLogins: 2, LockedUntil: base.Add(time.Hour)},
		{Name: "unit7", Role: tes.RolePolice, PasswordHash: "$argon2id$u", Disabled: true},
	} {
		u.CreatedAt = base.Add(time.Duration(i) * time.Second)
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	var batch []*tes.IngestItem
	for i := range nReports {
		r := &tes.Report{Plate: fmt.Sprintf("CP-%03d", i%37), Speed: 30 + i%110, SpeedLimit: 50, User: "unit7", Suite: tes.SuiteTES1,
			Evidence: tes.Evidence{Signed: []byte(fmt.Sprint("signed ", i)), Signature: []byte("sig"), KeyFingerprint: fmt.Sprintf("SHA256:k%d", i%3), PublicKey: []byte(fmt.Sprint("pk ", i%3))}}
		if i%2 == 0 {
			r.ReportID = fmt.Sprintf("%08x-0000-7000-8000-%012x", i, i)
		}
		if i%5 == 0 {
			r.Location = fmt.Sprintf("Ring %d", i)
			r.ObservedAt = base.Add(-time.Duration(i) * time.Second)
		}
		if i%7 == 0 {
			r.Suite, r.Evidence = tes.SuiteTLS, tes.Evidence{DeviceID: "cam-1"}
		}
		d := sha256.Sum256(fmt.Append(nil, "copy test ", i))
		batch = append(batch, &tes.IngestItem{MessageDigest: d[:], Report: r, ReceivedAt: base.Add(time.Duration(i) * time.Millisecond)})
		if i%50 == 0 {
			s := sha256.Sum256(fmt.Append(nil, "session ", i))
			batch = append(batch, &tes.IngestItem{SessionDigest: s[:], ReceivedAt: base})
		}
		if len(batch) >= 300 {
			if err := db.Ingest(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := db.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= int64(nReports); id += 3 {
		d := tes.Decision{ViolationID: id, Approve: id%2 == 1, By: "olga", At: base.Add(time.Duration(id) * time.Second), Reason: tes.ReasonEquipmentFault, Note: "radar"}
		if _, err := db.Decide(ctx, d, tes.DefaultRules()); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AppendEvents(ctx, &tes.Event{Actor: "admin", Action: "user.added", Subject: "user:unit7", Detail: "role=police"}); err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{"admin", "olga"} {
		h := sha256.Sum256([]byte(u))
		if err := db.CreateWebSession(ctx, &tes.WebSession{IDHash: h[:], User: u, CSRFToken: "csrf-" + u, CreatedAt: base, LastSeen: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	h := sha256.Sum256([]byte("token"))
	if err := db.CreateAPIToken(ctx, &tes.APIToken{IDHash: h[:], Name: "billing", User: "admin", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	// Devices of the TLS suite: one enrolled then revoked, one enrolled,
	// one token never used; and a signed checkpoint of the chain.
	for i, id := range []string{"00000000000000a1", "00000000000000a2", "00000000000000a3"} {
		tok := &tes.JoinToken{ID: id, Verifier: bytes.Repeat([]byte{byte(i)}, 32), User: "unit7", CreatedBy: "admin", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := db.CreateJoinToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			d := &tes.Device{ID: id, User: "unit7", KeyFingerprint: "SHA256:dev" + id, Cert: []byte("cert " + id), EnrolledAt: base.Add(time.Minute)}
			if err := db.EnrollDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.RevokeDevice(ctx, "00000000000000a1", "admin", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	seq, hash, err := db.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp := &tes.Checkpoint{Seq: seq, Hash: hash, At: base.Add(2 * time.Hour), KeyFingerprint: "SHA256:signer", PublicKey: []byte("spki"), Signature: bytes.Repeat([]byte{9}, 64)}
	if err := db.AddCheckpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
}

// dumpAll reads every table of s into memory, table by table.
func dumpAll(t *testing.T, s storecopy.Source) map[string]*storecopy.Batch {
	t.Helper()
	out := map[string]*storecopy.Batch{}
	err := s.Dump(context.Background(), storecopy.Tables, 500, func(b *storecopy.Batch) error {
		all := out[b.Table]
		if all == nil {
			all = &storecopy.Batch{Table: b.Table}
			out[b.Table] = all
		}
		// Append every slice field, whatever tables Batch grows.
		va, vb := reflect.ValueOf(all).Elem(), reflect.ValueOf(b).Elem()
		for f := 0; f < va.NumField(); f++ {
			if va.Field(f).Kind() == reflect.Slice {
				va.Field(f).Set(reflect.AppendSlice(va.Field(f), vb.Field(f)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return out
}

// mustSameRows fails unless a and b hold equal rows in every table.
func mustSameRows(t *testing.T, a, b storecopy.Source) {
	t.Helper()
	da, db := dumpAll(t, a), dumpAll(t, b)
	for _, table := range storecopy.Tables {
		x, y := da[table], db[table]
		if x == nil || y == nil {
			if x != y {
				t.Errorf("%s: present on one side only", table)
			}
			continue
		}
		if x.Len() != y.Len() {
			t.Errorf("%s: %d rows in the source, %d in the copy", table, x.Len(), y.Len())
			continue
		}
		if !reflect.DeepEqual(x, y) {
			vx, vy := reflect.ValueOf(*x), reflect.ValueOf(*y)
			for f := 0; f < vx.NumField(); f++ {
				if vx.Field(f).Kind() != reflect.Slice {
					continue
				}
				for i := 0; i < vx.Field(f).Len(); i++ {
					if ex, ey := vx.Field(f).Index(i).Interface(), vy.Field(f).Index(i).Interface(); !reflect.DeepEqual(ex, ey) {
						t.Errorf("%s row %d differs:\nsource %+v\ncopy   %+v", table, i, deref(ex), deref(ey))
						break
					}
				}
			}
		}
	}
}

func deref(v any) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

// TestCopyFromSQLite: a SQLite store copied to PostgreSQL keeps every row
// of every table, the counters and the audit chain, and the copy goes on
// from where the source stopped.
func TestCopyFromSQLite(t *testing.T) {
	pgtest.ServerURL(t) // skip (or fail in CI) before any work
	ctx := context.Background()
	keys := testKeys(t, 7)
	src, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillSQLite(t, src, 2500)

	dst, _ := mustOpenKeys(t, keys)
	var progress int
	sum, err := storecopy.Copy(ctx, src, dst, storecopy.Options{BatchSize: 700, Progress: func(string, int64) { progress++ }})
	if err != nil {
		t.Fatalf("Copy: %v (summary %+v)", err, sum)
	}
	if progress < 8 {
		t.Errorf("%d progress calls, want one per batch (at least 8)", progress)
	}
	want := map[string]int64{storecopy.TableUsers: 3, storecopy.TableClientKeys: 3, storecopy.TableViolations: 2500,
		storecopy.TableWebSessions: 2, storecopy.TableAPITokens: 1, storecopy.TableJoinTokens: 3, storecopy.TableDevices: 2,
		storecopy.TableCheckpoints: 1}
	for _, ts := range sum.Tables {
		if ts.Source != ts.Target {
			t.Errorf("%s: %d -> %d", ts.Name, ts.Source, ts.Target)
		}
		if w, ok := want[ts.Name]; ok && ts.Source != w {
			t.Errorf("%s: %d rows in the source, want %d", ts.Name, ts.Source, w)
		}
	}
	if sum.Events < 2500 || sum.Head == nil {
		t.Errorf("summary: %d events, head %x", sum.Events, sum.Head)
	}
	mustSameRows(t, src, dst)
	if err := dst.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
	a, _ := src.CountByStatus(ctx)
	b, _ := dst.CountByStatus(ctx)
	if !reflect.DeepEqual(a, b) || a[tes.StatusApproved] == 0 || a[tes.StatusRejected] == 0 {
		t.Errorf("CountByStatus: source %v, copy %v", a, b)
	}
	for i := range 37 {
		p := fmt.Sprintf("CP-%03d", i)
		x, err1 := src.Driver(ctx, p)
		y, err2 := dst.Driver(ctx, p)
		if tes.ErrorCode(err1) != tes.ErrorCode(err2) || (err1 == nil && *x != *y) {
			t.Errorf("Driver(%s): source %+v %v, copy %+v %v", p, x, err1, y, err2)
		}
	}

	// The copy carries on: new ids above the copied ones, the chain goes
	// on from the copied head, the replay guard remembers old messages.
	d := sha256.Sum256(fmt.Append(nil, "copy test ", 5))
	replay := &tes.IngestItem{MessageDigest: d[:], Report: &tes.Report{Plate: "CP-1", Speed: 90, User: "unit7", Suite: tes.SuiteTES1}}
	d2 := sha256.Sum256([]byte("after the copy"))
	fresh := &tes.IngestItem{MessageDigest: d2[:], Report: &tes.Report{Plate: "CP-1", Speed: 90, User: "unit7", Suite: tes.SuiteTES1}}
	if err := dst.Ingest(ctx, []*tes.IngestItem{replay, fresh}); err != nil {
		t.Fatal(err)
	}
	if replay.Outcome != tes.OutcomeReplay || fresh.Outcome != tes.OutcomeStored || fresh.ViolationID != 2501 {
		t.Errorf("after the copy: replay %v, fresh %v id %d; want replay, stored 2501", replay.Outcome, fresh.Outcome, fresh.ViolationID)
	}
	n, head, err := storecopy.VerifyChain(ctx, dst)
	if err != nil || n != sum.Events+1 {
		t.Errorf("chain after one more report: %d events, %v; want %d", n, err, sum.Events+1)
	}

	cp := &tes.Checkpoint{Seq: n, Hash: head, At: time.Now(), KeyFingerprint: "SHA256:k", PublicKey: []byte("spki"), Signature: bytes.Repeat([]byte{1}, 64)}
	if err := dst.AddCheckpoint(ctx, cp); err != nil || cp.ID != 2 {
		t.Errorf("checkpoint after the copy: id %d, %v; want id 2 (after the copied one)", cp.ID, err)
	}

	// A second copy into the same store is refused before writing.
	if _, err := storecopy.Copy(ctx, src, dst, storecopy.Options{}); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("Copy into a non-empty store = %v, want EINVALID", err)
	}
}

// TestCopyIntoNonEmptyTarget: even one user makes a target non-empty.
func TestCopyIntoNonEmptyTarget(t *testing.T) {
	ctx := context.Background()
	keys := testKeys(t, 1)
	src, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, _ := mustOpen(t)
	if err := dst.CreateUser(ctx, &tes.User{Name: "x", Role: tes.RoleAdmin, PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	_, err = storecopy.Copy(ctx, src, dst, storecopy.Options{})
	if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "not empty") {
		t.Errorf("Copy = %v, want EINVALID saying the target is not empty", err)
	}
}
