package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/postgres"
	"github.com/tes-traffic/tes/internal/review"
	"github.com/tes-traffic/tes/internal/storecopy"
)

// twoNodes opens two stores on one database, each with its own pool: what
// two officer processes see. Nothing but the database is shared.
func twoNodes(t *testing.T) (*postgres.DB, *postgres.DB) {
	t.Helper()
	a, u := mustOpen(t)
	return a, mustOpenURL(t, u, testKeys(t, 1))
}

// TestNodesShareGuarantees runs ingest batches, appends and decisions on
// two stores at once, with replays and duplicate report_ids crossing
// between them, and checks that the database alone kept every guarantee.
func TestNodesShareGuarantees(t *testing.T) {
	a, b := twoNodes(t)
	nodes := []*postgres.DB{a, b}
	ctx := context.Background()
	const workers, batches, perBatch, uniqueIDs = 8, 15, 40, 1000
	digest := func(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

	// Every worker sends reports whose report_ids are drawn from one pool
	// of uniqueIDs, so the same id arrives on both nodes, within batches
	// and across them; every third item replays the digest of the item
	// before it, sometimes on the other node.
	type sent struct {
		rid     string
		outcome tes.IngestOutcome
		id      int64
		replay  bool
	}
	results := make([][]sent, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bi := range batches {
				var items []*tes.IngestItem
				var meta []sent
				for k := range perBatch {
					n := (w*batches*perBatch + bi*perBatch + k) * 7919 % uniqueIDs
					r := report(fmt.Sprintf("NODE-%02d", n%20), 50+n%80)
					r.ReportID = fmt.Sprintf("%08x-0000-7000-8000-%012x", n, n)
					d := digest(fmt.Sprint("worker ", w, " batch ", bi, " item ", k))
					replay := k%3 == 2
					if replay {
						d = digest(fmt.Sprint("worker ", w, " batch ", bi, " item ", k-1))
					}
					items = append(items, &tes.IngestItem{MessageDigest: d, Report: r, ReceivedAt: time.Now()})
					meta = append(meta, sent{rid: r.ReportID, replay: replay})
				}
				// A replay sent to the other node in a later batch.
				if bi > 0 {
					items = append(items, &tes.IngestItem{MessageDigest: digest(fmt.Sprint("worker ", w, " batch ", bi-1, " item ", 0)),
						Report: report("NODE-00", 60), ReceivedAt: time.Now()})
					meta = append(meta, sent{replay: true})
				}
				node := nodes[(w+bi)%2]
				if err := node.Ingest(ctx, items); err != nil {
					errs <- err
					return
				}
				if err := node.AppendEvents(ctx, &tes.Event{Actor: "system", Action: "test.tick", Subject: fmt.Sprint("worker:", w)}); err != nil {
					errs <- err
					return
				}
				for i, it := range items {
					meta[i].outcome, meta[i].id = it.Outcome, it.ViolationID
				}
				results[w] = append(results[w], meta...)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Each report_id is stored once, and every item that named it got
	// that one row's id; every replay was refused.
	stored := map[string]int64{}
	for _, rs := range results {
		for _, s := range rs {
			if s.replay {
				if s.outcome != tes.OutcomeReplay {
					t.Fatalf("a replayed digest got %v", s.outcome)
				}
				continue
			}
			switch s.outcome {
			case tes.OutcomeStored:
				if prev, dup := stored[s.rid]; dup {
					t.Fatalf("report_id %s stored twice: %d and %d", s.rid, prev, s.id)
				}
				stored[s.rid] = s.id
			case tes.OutcomeDuplicate:
			default:
				t.Fatalf("report %s: outcome %v", s.rid, s.outcome)
			}
		}
	}
	for _, rs := range results {
		for _, s := range rs {
			if s.outcome == tes.OutcomeDuplicate && stored[s.rid] != s.id {
				t.Fatalf("duplicate of %s answered with id %d, stored as %d", s.rid, s.id, stored[s.rid])
			}
		}
	}
	counts, err := b.CountByStatus(ctx)
	if err != nil || counts[tes.StatusPending] != len(stored) {
		t.Fatalf("CountByStatus = %v, %v; want %d pending (the unique report_ids)", counts, err, len(stored))
	}

	// Decisions from both nodes at once on the same violations, two per
	// plate so that driver totals race too: one decision per violation
	// wins, totals are the sum of what was approved.
	var ids []int64
	for _, id := range stored {
		ids = append(ids, id)
		if len(ids) == 120 {
			break
		}
	}
	type outcome struct {
		d   *tes.Decided
		err error
	}
	outs := make([][2]outcome, len(ids))
	for i, id := range ids {
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := tes.Decision{ViolationID: id, Approve: i%5 != 0 || k == 0, By: fmt.Sprintf("officer-%c", 'a'+k), Reason: tes.ReasonOther, Note: "n"}
				outs[i][k].d, outs[i][k].err = nodes[k].Decide(ctx, d, tes.DefaultRules())
			}()
		}
	}
	wg.Wait()
	wantPoints := map[string]int{}
	approved := 0
	for i := range ids {
		wins := 0
		for k := range 2 {
			o := outs[i][k]
			switch tes.ErrorCode(o.err) {
			case "":
				wins++
				if v := o.d.Violation; v.Status == tes.StatusApproved {
					wantPoints[v.Plate] += v.PointsApplied
					approved++
				}
			case tes.ECONFLICT:
			default:
				t.Fatalf("decision %d/%d: %v", i, k, o.err)
			}
		}
		if wins != 1 {
			t.Fatalf("violation %d: %d decisions won, want 1", ids[i], wins)
		}
	}
	for plate, want := range wantPoints {
		d, err := a.Driver(ctx, plate)
		if err != nil || d.Points != want {
			t.Errorf("Driver(%s) = %+v, %v; want %d points", plate, d, err, want)
		}
	}
	counts, _ = a.CountByStatus(ctx)
	if counts[tes.StatusApproved] != approved || counts[tes.StatusPending]+counts[tes.StatusApproved]+counts[tes.StatusRejected] != len(stored) {
		t.Errorf("CountByStatus = %v; want %d approved of %d", counts, approved, len(stored))
	}

	// One chain, no fork, no gap: stored reports + ticks + decisions.
	n, _, err := storecopy.VerifyChain(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(stored) + workers*batches + len(ids)); n != want {
		t.Errorf("%d audit events, want %d", n, want)
	}
	for _, db := range nodes {
		if err := db.IntegrityCheck(ctx); err != nil {
			t.Error(err)
		}
	}
}

// TestTwoOfficersApproveAtOnce: two officers press approve on the same
// violation on two nodes at the same moment, through the review service
// as the dashboard and `tes approve` do. The points are applied once and
// the officer who lost is told who decided first.
func TestTwoOfficersApproveAtOnce(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svcs := []*review.Service{review.New(a, tes.DefaultRules(), quiet), review.New(b, tes.DefaultRules(), quiet)}
	officers := []*tes.User{{Name: "olga", Role: tes.RoleOfficer}, {Name: "omar", Role: tes.RoleOfficer}}
	const rounds = 25
	loserMsg := regexp.MustCompile(`^Violation \d+ was already approved by (olga|omar) at \d{4}-\d\d-\d\dT`)
	total := 0
	for round := range rounds {
		it := item(report("RACE-1", 85)) // 20 points each
		mustIngest(t, a, it)
		start := make(chan struct{})
		var wg sync.WaitGroup
		res := make([]*tes.Decided, 2)
		errs := make([]error, 2)
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res[k], errs[k] = svcs[k].Approve(ctx, officers[k], it.ViolationID)
			}()
		}
		close(start)
		wg.Wait()
		win := -1
		for k := range 2 {
			if errs[k] == nil {
				if win >= 0 {
					t.Fatalf("round %d: both approvals succeeded", round)
				}
				win = k
			}
		}
		if win < 0 {
			t.Fatalf("round %d: no approval succeeded: %v", round, errs)
		}
		lose := 1 - win
		total += 20
		if res[win].DriverTotal != total {
			t.Errorf("round %d: DriverTotal %d, want %d", round, res[win].DriverTotal, total)
		}
		msg := tes.ErrorMessage(errs[lose])
		m := loserMsg.FindStringSubmatch(msg)
		if tes.ErrorCode(errs[lose]) != tes.ECONFLICT || m == nil || m[1] != officers[win].Name {
			t.Errorf("round %d: the second officer got %v; want ECONFLICT naming %s", round, errs[lose], officers[win].Name)
		}
	}
	d, err := b.Driver(ctx, "RACE-1")
	if err != nil || d.Points != 20*rounds {
		t.Errorf("Driver = %+v, %v; want %d points (each approval applied once)", d, err, 20*rounds)
	}
}
