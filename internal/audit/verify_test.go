package audit_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/audit"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/sqlite"
	_ "modernc.org/sqlite"
)

var base = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

var keys = func() *atrest.Keys {
	k, err := atrest.New(bytes.Repeat([]byte{9}, atrest.KeySize))
	if err != nil {
		panic(err)
	}
	return k
}()

type fixture struct {
	path   string
	signer *ca.Signer
}

// newLog writes n events and signs checkpoints after the events in cps.
func newLog(t *testing.T, n int, cps ...int) *fixture {
	t.Helper()
	root, err := ca.New(nil, base)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := root.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{path: filepath.Join(t.TempDir(), "tes.db"), signer: signer}
	db := fx.open(t)
	defer db.Close()
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		e := &tes.Event{At: base.Add(time.Duration(i) * time.Second), Actor: "alice", Action: "test.event",
			Subject: fmt.Sprintf("n:%d", i), Detail: fmt.Sprintf("detail %d", i)}
		if err := db.AppendEvents(ctx, e); err != nil {
			t.Fatal(err)
		}
		for _, c := range cps {
			if c == i {
				if _, err := audit.Sign(ctx, db, signer, 0, base.Add(time.Duration(i)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return fx
}

func (fx *fixture) open(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), fx.path, keys)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// tamper opens the database file as an attacker would: plain SQL, the
// append-only triggers dropped first.
func (fx *fixture) tamper(t *testing.T, stmts ...string) {
	t.Helper()
	raw, err := sql.Open("sqlite", fx.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, s := range append([]string{
		`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`,
		`DROP TRIGGER audit_checkpoints_no_update`, `DROP TRIGGER audit_checkpoints_no_delete`,
	}, stmts...) {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// tamperFn gives an attacker Go code over the raw database.
func (fx *fixture) tamperFn(t *testing.T, fn func(raw *sql.DB)) {
	t.Helper()
	fx.tamper(t)
	raw, err := sql.Open("sqlite", fx.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fn(raw)
}

func (fx *fixture) verify(t *testing.T, trusted ...*x509.Certificate) *audit.Result {
	t.Helper()
	db := fx.open(t)
	defer db.Close()
	if trusted == nil {
		trusted = []*x509.Certificate{fx.signer.Cert}
	}
	res, err := audit.Verify(context.Background(), db, trusted)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantProblem(t *testing.T, res *audit.Result, seq int64, kind string) {
	t.Helper()
	if res.Problem == nil {
		t.Fatalf("the log verifies (%+v); want %s at seq %d", res, kind, seq)
	}
	if res.Problem.Seq != seq || res.Problem.Kind != kind {
		t.Fatalf("problem = %v; want %s at seq %d", res.Problem, kind, seq)
	}
}

// event reads one row for an attacker who recomputes hashes.
func event(t *testing.T, raw *sql.DB, seq int64) *tes.Event {
	t.Helper()
	var e tes.Event
	var at int64
	if err := raw.QueryRow(`SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit WHERE seq = ?`, seq).
		Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
		t.Fatal(err)
	}
	e.At = time.UnixMicro(at).UTC()
	return &e
}

func TestVerifyClean(t *testing.T) {
	fx := newLog(t, 12, 4, 10)
	res := fx.verify(t)
	if !res.OK() || res.Events != 12 || res.LastSeq != 12 || res.Checkpoints != 2 || res.LastCheckpointSeq != 10 || res.Uncovered != 2 {
		t.Fatalf("clean log: %+v %v", res, res.Problem)
	}
}

func TestVerifyEdited(t *testing.T) {
	fx := newLog(t, 12, 10)
	fx.tamper(t, `UPDATE audit SET detail = 'approved by nobody' WHERE seq = 5`)
	wantProblem(t, fx.verify(t), 5, audit.KindEdited)
}

func TestVerifyEditedHashRecomputed(t *testing.T) {
	fx := newLog(t, 12)
	fx.tamperFn(t, func(raw *sql.DB) {
		e := event(t, raw, 5)
		e.Detail = "changed"
		if _, err := raw.Exec(`UPDATE audit SET detail = ?, hash = ? WHERE seq = 5`, e.Detail, tes.ChainHash(e.PrevHash, e)); err != nil {
			t.Fatal(err)
		}
	})
	wantProblem(t, fx.verify(t), 5, audit.KindEdited)
}

func TestVerifyDeleted(t *testing.T) {
	fx := newLog(t, 12, 10)
	fx.tamper(t, `DELETE FROM audit WHERE seq = 5`)
	wantProblem(t, fx.verify(t), 5, audit.KindDeleted)
}

func TestVerifyDeletedAndRenumbered(t *testing.T) {
	fx := newLog(t, 12)
	fx.tamper(t, `DELETE FROM audit WHERE seq = 5`, `UPDATE audit SET seq = seq - 1 WHERE seq > 5`)
	wantProblem(t, fx.verify(t), 5, audit.KindDeleted)
}

func TestVerifyDeletedFirst(t *testing.T) {
	fx := newLog(t, 12)
	fx.tamper(t, `DELETE FROM audit WHERE seq = 1`)
	wantProblem(t, fx.verify(t), 1, audit.KindDeleted)
}

func TestVerifyTruncated(t *testing.T) {
	fx := newLog(t, 12, 12)
	fx.tamper(t, `DELETE FROM audit WHERE seq > 9`)
	wantProblem(t, fx.verify(t), 10, audit.KindDeleted)
}

func TestVerifyReordered(t *testing.T) {
	fx := newLog(t, 12, 10)
	fx.tamper(t, `UPDATE audit SET seq = -5 WHERE seq = 5`, `UPDATE audit SET seq = 5 WHERE seq = 6`, `UPDATE audit SET seq = 6 WHERE seq = -5`)
	wantProblem(t, fx.verify(t), 5, audit.KindReordered)
}

// TestVerifyInserted: a forged entry put in the middle, the entries after
// it renumbered; with a garbage hash and with a carefully linked one.
func TestVerifyInserted(t *testing.T) {
	for _, linked := range []bool{false, true} {
		t.Run(fmt.Sprintf("linked=%v", linked), func(t *testing.T) {
			fx := newLog(t, 12)
			fx.tamperFn(t, func(raw *sql.DB) {
				prev := event(t, raw, 4)
				for _, s := range []string{`UPDATE audit SET seq = seq + 1000 WHERE seq >= 5`, `UPDATE audit SET seq = seq - 999 WHERE seq >= 1000`} {
					if _, err := raw.Exec(s); err != nil {
						t.Fatal(err)
					}
				}
				forged := &tes.Event{Seq: 5, At: prev.At, Actor: "mallory", Action: "violation.approved", Subject: "violation:1", PrevHash: prev.Hash}
				forged.Hash = bytes.Repeat([]byte{1}, 32)
				if linked {
					forged.Hash = tes.ChainHash(prev.Hash, forged)
				}
				if _, err := raw.Exec(`INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (5, ?, ?, ?, ?, '', ?, ?)`,
					forged.At.UnixMicro(), forged.Actor, forged.Action, forged.Subject, forged.PrevHash, forged.Hash); err != nil {
					t.Fatal(err)
				}
			})
			wantProblem(t, fx.verify(t), 5, audit.KindInserted)
		})
	}
}

func TestVerifyInsertedBeforeStart(t *testing.T) {
	fx := newLog(t, 3)
	fx.tamper(t, `INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (0, 0, 'm', 'x', '', '', NULL, randomblob(32))`)
	wantProblem(t, fx.verify(t), 0, audit.KindInserted)
}

// TestVerifyRewritten: the attacker edits seq 6 and recomputes every hash
// after it, so the chain is consistent; the signed checkpoint at seq 10
// shows it, and the checkpoint at seq 4 bounds where.
func TestVerifyRewritten(t *testing.T) {
	fx := newLog(t, 12, 4, 10)
	fx.tamperFn(t, func(raw *sql.DB) {
		prev := event(t, raw, 5).Hash
		for seq := int64(6); seq <= 12; seq++ {
			e := event(t, raw, seq)
			if seq == 6 {
				e.Detail = "rewritten"
			}
			e.PrevHash = prev
			e.Hash = tes.ChainHash(prev, e)
			if _, err := raw.Exec(`UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Detail, e.PrevHash, e.Hash, seq); err != nil {
				t.Fatal(err)
			}
			prev = e.Hash
		}
	})
	res := fx.verify(t)
	wantProblem(t, res, 5, audit.KindRewritten)
	if !strings.Contains(res.Problem.Detail, "from seq 5 to 10") {
		t.Errorf("detail %q does not bound the change to seq 5..10", res.Problem.Detail)
	}
}

func TestVerifyCheckpointForged(t *testing.T) {
	fx := newLog(t, 12, 10)
	fx.tamper(t, `UPDATE audit_checkpoints SET seq = 11`)
	wantProblem(t, fx.verify(t), 11, audit.KindCheckpoint)

	// A checkpoint by a key the verifier does not trust.
	fx = newLog(t, 12, 10)
	other, _ := ca.New(nil, base)
	otherSigner, _ := other.NewSigner()
	res := fx.verify(t, otherSigner.Cert)
	wantProblem(t, res, 10, audit.KindCheckpoint)
	if !strings.Contains(res.Problem.Detail, "not a trusted officer signing key") {
		t.Errorf("detail %q", res.Problem.Detail)
	}
}

// TestCheckpointer: signs only when the head moved.
func TestCheckpointer(t *testing.T) {
	fx := newLog(t, 3)
	db := fx.open(t)
	defer db.Close()
	cp := &audit.Checkpointer{Store: db, Signer: fx.signer}
	ctx := context.Background()
	cp.Final(ctx)
	cp.Final(ctx) // head unchanged: nothing new
	db.AppendEvents(ctx, &tes.Event{Actor: "a", Action: "b"})
	cp.Final(ctx)
	list, err := db.Checkpoints(ctx)
	if err != nil || len(list) != 2 || list[0].Seq != 3 || list[1].Seq != 4 {
		t.Fatalf("checkpoints = %+v, %v; want seq 3 and 4", list, err)
	}
	// A checkpoint of a hash the log does not have is refused.
	c := *list[1]
	c.Hash = bytes.Repeat([]byte{7}, 32)
	if err := db.AddCheckpoint(ctx, &c); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("checkpoint of a foreign hash: %v, want ECONFLICT", err)
	}
}
