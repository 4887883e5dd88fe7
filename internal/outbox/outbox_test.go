package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
)

// TestEnqueueIsDurableOnReturn copies the outbox's files while it is still
// open (as a crash would leave them) right after Enqueue returns: the copy
// holds the report. With synchronous=FULL (TestPragmas) the same bytes are
// on the disk, not just in the page cache.
func TestEnqueueIsDurableOnReturn(t *testing.T) {
	dir := t.TempDir()
	ob := mustOpen(t, dir)
	e := mustEnqueue(t, ob, "127.0.0.1:9999", "34abc123", 120)
	if e.State != outbox.StateQueued || e.Plate != "34ABC123" || len(e.ReportID) != 36 {
		t.Fatalf("enqueued %+v: want queued, plate normalised, a UUID report_id", e)
	}

	crash := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, outbox.FileName+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crash, outbox.FileName+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ob2 := mustOpen(t, crash)
	got := mustGet(t, ob2, e.ReportID)
	if got.Plate != "34ABC123" || got.Speed != 120 || got.State != outbox.StateQueued {
		t.Fatalf("after a simulated crash: %+v", got)
	}
	if err := ob2.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(filepath.Join(dir, outbox.FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("outbox file: %v, mode %v: want 0600", err, st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Join(dir, outbox.FileName+"-wal")); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("outbox WAL: %v: must be private", err)
	}
}

// TestReopenKeepsEverything closes and reopens the outbox (a restart) and
// finds every report in its state; a report left "sent" by a crash is due
// again at once.
func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, outbox.FileName)
	ctx := context.Background()
	ob, err := outbox.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a := mustEnqueue(t, ob, "s:1", "AAA1", 80)
	b := mustEnqueue(t, ob, "s:1", "BBB2", 90)
	now := time.Now()
	if ok, err := ob.Claim(ctx, b.ID, now, time.Hour); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	ob.Close()

	ob, err = outbox.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	due, err := ob.Due(ctx, policeUser, "s:1", time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0].ReportID != a.ReportID || due[1].ReportID != b.ReportID {
		t.Fatalf("after reopen, due = %v: want both reports, oldest first", due)
	}
	if due[1].State != outbox.StateSent || due[1].Attempts != 1 {
		t.Fatalf("the claimed report after reopen: %+v: want sent, 1 attempt, due again", due[1])
	}
}

// TestStateTransitions walks a report through every state and checks that
// moves from the wrong state change nothing.
func TestStateTransitions(t *testing.T) {
	ctx := context.Background()
	ob := mustOpen(t, t.TempDir())
	e := mustEnqueue(t, ob, "s:1", "AB123", 120)
	now := time.Now()

	// queued: only a claim moves it.
	if err := ob.Acknowledge(ctx, e.ID, now); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Fatalf("acknowledge a queued report: %v, want ECONFLICT", err)
	}
	if err := ob.Refuse(ctx, e.ID, "x"); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Fatalf("refuse a queued report: %v, want ECONFLICT", err)
	}
	if ok, err := ob.Claim(ctx, e.ID, now, time.Minute); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	// A second sender cannot claim it during the lease.
	if ok, err := ob.Claim(ctx, e.ID, now, time.Minute); err != nil || ok {
		t.Fatalf("second claim during the lease: %v %v, want false", ok, err)
	}
	got := mustGet(t, ob, e.ReportID)
	if got.State != outbox.StateSent || got.Attempts != 1 {
		t.Fatalf("after claim: %s, %d attempts", got.State, got.Attempts)
	}

	// sent -> queued (transport failure), with the reason and a backoff.
	next := now.Add(5 * time.Second)
	if err := ob.Retry(ctx, e.ID, "connection lost", next); err != nil {
		t.Fatal(err)
	}
	got = mustGet(t, ob, e.ReportID)
	if got.State != outbox.StateQueued || got.LastError != "connection lost" || !got.NextAttemptAt.Equal(next.Truncate(time.Microsecond)) {
		t.Fatalf("after retry: %+v", got)
	}
	if due, _ := ob.Due(ctx, policeUser, "s:1", now, 10); len(due) != 0 {
		t.Fatalf("a report in backoff is due: %v", due)
	}
	if n, err := ob.RetryNow(ctx, policeUser, "s:1", now); err != nil || n != 1 {
		t.Fatalf("retry now: %d %v", n, err)
	}
	if due, _ := ob.Due(ctx, policeUser, "s:1", now, 10); len(due) != 1 || due[0].ReportID != e.ReportID {
		t.Fatalf("after retry now, due = %v", due)
	}

	// queued -> sent -> acknowledged; the report_id never changes.
	if ok, _ := ob.Claim(ctx, e.ID, now, time.Minute); !ok {
		t.Fatal("claim again failed")
	}
	if err := ob.Acknowledge(ctx, e.ID, now); err != nil {
		t.Fatal(err)
	}
	got = mustGet(t, ob, e.ReportID)
	if got.State != outbox.StateAcknowledged || got.Attempts != 2 || got.ReportID != e.ReportID || got.LastError != "" {
		t.Fatalf("after acknowledge: %+v", got)
	}
	if err := ob.Acknowledge(ctx, e.ID, now); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Fatalf("acknowledge twice: %v, want ECONFLICT", err)
	}
	if ok, _ := ob.Claim(ctx, e.ID, now.Add(time.Hour), time.Minute); ok {
		t.Fatal("an acknowledged report was claimed")
	}
	if ids, _ := ob.Undecided(ctx, policeUser, "s:1", 10); len(ids) != 1 || ids[0] != e.ReportID {
		t.Fatalf("undecided = %v", ids)
	}

	// acknowledged -> approved; PENDING changes nothing.
	if err := ob.Decide(ctx, tes.ReportStatus{ReportID: e.ReportID, Status: tes.StatusPending}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Decide(ctx, tes.ReportStatus{ReportID: e.ReportID, ViolationID: 7, Status: tes.StatusApproved, Points: 50}); err != nil {
		t.Fatal(err)
	}
	got = mustGet(t, ob, e.ReportID)
	if got.State != outbox.StateApproved || got.ViolationID != 7 || got.DecidedPoints != 50 || got.DecidedAt.IsZero() {
		t.Fatalf("after approve: %+v", got)
	}
	if err := ob.Decide(ctx, tes.ReportStatus{ReportID: e.ReportID, Status: tes.StatusRejected}); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Fatalf("decide twice: %v, want ECONFLICT", err)
	}

	// Another report: sent -> refused, never due again.
	r := mustEnqueue(t, ob, "s:1", "XY999", 60)
	ob.Claim(ctx, r.ID, time.Now(), time.Minute)
	if err := ob.Refuse(ctx, r.ID, "Unauthorized"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, ob, r.ReportID); got.State != outbox.StateRefused || got.LastError != "Unauthorized" {
		t.Fatalf("after refuse: %+v", got)
	}
	if due, _ := ob.Due(ctx, policeUser, "s:1", now.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("a refused report is due: %v", due)
	}

	// A rejected one carries its reason.
	j := mustEnqueue(t, ob, "s:1", "TR06", 102)
	ob.Claim(ctx, j.ID, time.Now(), time.Minute)
	ob.Acknowledge(ctx, j.ID, time.Now())
	if err := ob.Decide(ctx, tes.ReportStatus{ReportID: j.ReportID, Status: tes.StatusRejected, RejectReason: tes.ReasonPlateUnreadable}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, ob, j.ReportID); got.State != outbox.StateRejected || got.DecidedReason != tes.ReasonPlateUnreadable {
		t.Fatalf("after reject: %+v", got)
	}

	counts, err := ob.Counts(ctx, policeUser, "s:1")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[outbox.State]int{outbox.StateApproved: 1, outbox.StateRefused: 1, outbox.StateRejected: 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("counts = %v, want %v", counts, want)
	}
	if err := ob.Acknowledge(ctx, 9999, now); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Fatalf("acknowledge a missing report: %v, want ENOTFOUND", err)
	}
}

// TestEnqueueValidates refuses what the officer server would refuse, before
// it is queued, and saves a report_id only once.
func TestEnqueueValidates(t *testing.T) {
	ctx := context.Background()
	ob := mustOpen(t, t.TempDir())
	long := make([]byte, 10<<10)
	for i := range long {
		long[i] = 'A'
	}
	for _, tc := range []struct {
		name string
		r    tes.Report
	}{
		{"empty plate", tes.Report{Plate: "", Speed: 80}},
		{"10 KB plate", tes.Report{Plate: string(long), Speed: 80}},
		{"negative speed", tes.Report{Plate: "AB1", Speed: -1}},
		{"speed over 500", tes.Report{Plate: "AB1", Speed: 501}},
		{"bad report_id", tes.Report{Plate: "AB1", Speed: 80, ReportID: "not-a-uuid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ob.Enqueue(ctx, policeUser, "s:1", &tc.r); tes.ErrorCode(err) != tes.EINVALID {
				t.Fatalf("Enqueue: %v, want EINVALID", err)
			}
		})
	}
	if n, _ := ob.Waiting(ctx); n != 0 {
		t.Fatalf("%d invalid reports were queued", n)
	}

	id := tes.NewReportID()
	first, err := ob.Enqueue(ctx, policeUser, "s:1", &tes.Report{ReportID: id, Plate: "AB1", Speed: 80})
	if err != nil {
		t.Fatal(err)
	}
	again, err := ob.Enqueue(ctx, policeUser, "s:1", &tes.Report{ReportID: id, Plate: "AB1", Speed: 80})
	if tes.ErrorCode(err) != tes.ECONFLICT || again == nil || again.ID != first.ID {
		t.Fatalf("second Enqueue of one report_id: %v, %+v: want ECONFLICT and the first entry", err, again)
	}
	if n, _ := ob.Waiting(ctx); n != 1 {
		t.Fatalf("waiting = %d, want 1", n)
	}
}

// TestConcurrentEnqueue enqueues from many goroutines and two handles on
// one file (two processes): every report is stored once with its own id.
func TestConcurrentEnqueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	handles := []*outbox.Outbox{mustOpen(t, dir), mustOpen(t, dir)}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := handles[w%2].Enqueue(ctx, policeUser, "s:1",
					&tes.Report{Plate: fmt.Sprintf("W%dN%d", w, i), Speed: 60 + i})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := handles[0].List(ctx, policeUser, "s:1", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	plates := map[string]bool{}
	for _, e := range list {
		ids[e.ReportID] = true
		plates[e.Plate] = true
	}
	if len(list) != workers*each || len(ids) != workers*each || len(plates) != workers*each {
		t.Fatalf("%d rows, %d report_ids, %d plates: want %d of each", len(list), len(ids), len(plates), workers*each)
	}
}

// TestPrune deletes finished reports past retention and never an
// undelivered one.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	ob := mustOpen(t, t.TempDir())
	q := mustEnqueue(t, ob, "s:1", "Q1", 80)
	a := mustEnqueue(t, ob, "s:1", "A1", 80)
	ob.Claim(ctx, a.ID, time.Now(), time.Minute)
	ob.Acknowledge(ctx, a.ID, time.Now())
	n, err := ob.Prune(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("prune: %d %v, want 1", n, err)
	}
	if _, err := ob.Get(ctx, a.ReportID); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Fatalf("acknowledged report after prune: %v", err)
	}
	mustGet(t, ob, q.ReportID)
}

// TestBackoff checks the growth, the cap and the jitter band.
func TestBackoff(t *testing.T) {
	const lo, hi = time.Second, time.Minute
	for _, tc := range []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{0, 0.5, 0},
		{1, 0, 500 * time.Millisecond},
		{1, 0.999999, time.Second},
		{2, 0, time.Second},
		{3, 0, 2 * time.Second},
		{4, 1, 8 * time.Second},
		{7, 0, 30 * time.Second},
		{7, 1, time.Minute},
		{8, 0, 30 * time.Second},
		{1000, 0, 30 * time.Second},
		{1000, 1, time.Minute},
	} {
		got := outbox.Backoff(tc.n, lo, hi, tc.jitter)
		diff := got - tc.want
		if diff < -time.Millisecond || diff > time.Millisecond {
			t.Errorf("Backoff(%d, jitter %v) = %v, want %v", tc.n, tc.jitter, got, tc.want)
		}
	}
	for n := 1; n < 20; n++ {
		d := outbox.Backoff(n, lo, hi, 0.3)
		if d <= 0 || d > hi {
			t.Errorf("Backoff(%d) = %v: out of (0, %v]", n, d, hi)
		}
		if n > 1 && d < outbox.Backoff(n-1, lo, hi, 0.3) {
			t.Errorf("Backoff(%d) = %v is less than Backoff(%d)", n, d, n-1)
		}
	}
}

// TestSchemaIsRecorded checks that the migration is recorded, so a newer
// tes can migrate the file and an older one refuses it.
func TestSchemaIsRecorded(t *testing.T) {
	dir := t.TempDir()
	ob := mustOpen(t, dir)
	ob.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil || v != 1 {
		t.Fatalf("schema version %d, %v: want 1", v, err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := outbox.Open(context.Background(), filepath.Join(dir, outbox.FileName)); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatalf("opening a newer outbox: %v, want EINVALID", err)
	}
}
