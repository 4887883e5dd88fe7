package multinode_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/postgres/pgtest"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/storecopy"
	"github.com/tes-traffic/tes/internal/tes1"
)

// TestStoreCopyRoundTrip moves a single-machine install that has seen real
// traffic to PostgreSQL with `tes store copy`, compares every row of every
// table of both stores, then runs an officer on the copy: the chain goes
// on, old messages are still replays, `tes audit verify` passes.
func TestStoreCopyRoundTrip(t *testing.T) {
	pgtest.ServerURL(t) // skip (or fail in CI) before any work
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "single")
	o := e2e.StartOfficer(t, dir)
	const password = "police-password-1"
	mustAddUser(t, dir, "", "police0", "police", password)
	mustAddUser(t, dir, "", "olga", "officer", "officer-password-1")
	mustRun(t, 0, nil, "device", "add", "--user", "police0", "--data", dir, "--addr", "127.0.0.1:9443")

	cl, err := tes1.Dial(ctx, o.TES1Addr, tes1.ClientConfig{Fingerprint: o.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Login(ctx, "police0", password); err != nil {
		t.Fatal(err)
	}
	var replayPayload, replaySig string
	for m := range 300 {
		r := &tes.Report{ReportID: reportID(99, m%280), Plate: fmt.Sprintf("CP-%02d", m%23), Speed: 45 + m%100, SpeedLimit: 50}
		if m%3 == 0 {
			r.Location = "Ring " + strconv.Itoa(m)
		}
		payload, sig, err := cl.SealReport(r)
		if err != nil {
			t.Fatal(err)
		}
		if status, text, err := cl.Request(ctx, tes1.TypeData, payload, sig); err != nil || status != tes1.StatusOK {
			t.Fatalf("report %d: %s %q %v", m, status, text, err)
		}
		if m == 7 {
			replayPayload, replaySig = payload, sig
		}
	}
	if status, text, _ := cl.Request(ctx, tes1.TypeData, replayPayload, replaySig); text != tes1.ReplyReplay {
		t.Fatalf("replay before the copy: %s %q", status, text)
	}
	cl.Close()
	for id := 1; id <= 30; id++ {
		if id%3 == 0 {
			mustRun(t, 0, nil, "reject", strconv.Itoa(id), "--reason", "plate_unreadable", "--data", dir)
		} else {
			mustRun(t, 0, []string{"USER=olga"}, "approve", strconv.Itoa(id), "--data", dir)
		}
	}
	o.Stop()

	url := pgtest.NewDatabase(t)
	out, errOut := mustRun(t, 0, nil, "store", "copy", "--from", "sqlite:"+filepath.Join(dir, "tes.db"), "--to", url, "--data", dir, "--batch", "64", "--compare")
	for _, want := range []string{"violations", "280", "Audit chain:", "Every row of every table compared equal.", "Copied and verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("tes store copy output lacks %q:\n%s\n%s", want, out, errOut)
		}
	}
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("tes store copy:\n%s", out)
	}
	t.Logf("tes store copy:\n%s", out)

	// Compare again here, in-process, table by table and row by row.
	keys, err := atrest.Load(filepath.Join(dir, "store.key"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := sqlite.Open(ctx, filepath.Join(dir, "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := openStore(t, dir, url)
	counts, err := src.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{storecopy.TableUsers, storecopy.TableViolations, storecopy.TableDrivers, storecopy.TableAudit,
		storecopy.TableSeenDigests, storecopy.TableJoinTokens, storecopy.TableCheckpoints, storecopy.TableClientKeys} {
		if counts[table] == 0 {
			t.Errorf("the source has no %s: the round trip would not show they are kept", table)
		}
	}
	diffs, err := storecopy.Diff(ctx, src, dst, nil, 10)
	if err != nil || len(diffs) > 0 {
		t.Fatalf("the copy differs from its source (%v):\n%s", err, strings.Join(diffs, "\n"))
	}
	for i := range 23 {
		p := fmt.Sprintf("CP-%02d", i)
		a, errA := src.Driver(ctx, p)
		b, errB := dst.Driver(ctx, p)
		if tes.ErrorCode(errA) != tes.ErrorCode(errB) || errA == nil && *a != *b {
			t.Errorf("Driver(%s): %+v %v in the source, %+v %v in the copy", p, a, errA, b, errB)
		}
	}
	nEvents, head, err := storecopy.VerifyChain(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}

	// A second copy into the same database is refused.
	_, errOut = mustRun(t, 1, nil, "store", "copy", "--from", "sqlite:"+filepath.Join(dir, "tes.db"), "--to", url, "--data", dir)
	if !strings.Contains(errOut, "not empty") {
		t.Errorf("second copy: %s", errOut)
	}

	// The single machine's data directory now runs on PostgreSQL.
	o2 := e2e.StartOfficer(t, dir, "--db", url)
	if o2.Fingerprint != o.Fingerprint || o2.AdminPassword != "" {
		t.Fatalf("officer on the copy: key %s (was %s), admin password %q", o2.Fingerprint, o.Fingerprint, o2.AdminPassword)
	}
	cl, err = tes1.Dial(ctx, o2.TES1Addr, tes1.ClientConfig{Fingerprint: o2.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Login(ctx, "police0", password); err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(ctx, &tes.Report{ReportID: reportID(99, 5), Plate: "CP-05", Speed: 50}); err != nil {
		t.Fatalf("resend of a copied report_id: %v", err)
	}
	if err := cl.Send(ctx, &tes.Report{ReportID: reportID(99, 1000), Plate: "AFTER", Speed: 120}); err != nil {
		t.Fatal(err)
	}
	page, _, err := dst.Violations(ctx, tes.ViolationFilter{Plate: "AFTER"})
	if err != nil || len(page) != 1 || page[0].ID <= 280 {
		t.Fatalf("the report after the copy: %+v, %v; want an id above the copied 280", page, err)
	}
	// The resend was a duplicate of the copied row: one new row in all.
	if c, _ := dst.CountByStatus(ctx); c[tes.StatusPending]+c[tes.StatusApproved]+c[tes.StatusRejected] != 281 {
		t.Errorf("CountByStatus after one new report = %v, want 281 in all", c)
	}
	n, _, err := storecopy.VerifyChain(ctx, dst)
	if err != nil || n <= nEvents {
		t.Fatalf("chain after the move: %d events, %v; want more than the %d copied", n, err, nEvents)
	}
	first, err := dst.EventsAfter(ctx, nEvents, 1)
	if err != nil || len(first) != 1 || string(first[0].PrevHash) != string(head) {
		t.Fatalf("the first event on PostgreSQL does not link to the copied head: %+v, %v", first, err)
	}
	out, _ = mustRun(t, 0, nil, "audit", "verify", "--db", url, "--data", dir)
	if !strings.Contains(out, "OK") {
		t.Errorf("tes audit verify on the copy:\n%s", out)
	}
}
