package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var decideTests = []namedTest{
	{"ApproveAddsPointsFromStoredSpeed", testApprove},
	{"ApproveTwiceConflicts", testApproveTwice},
	{"RejectWithReason", testReject},
	{"RejectNeedsKnownReason", testRejectInvalid},
	{"UnknownViolation", testDecideUnknown},
	{"ConcurrentDecisionsOneWins", testDecideConcurrent},
	{"DefaultsToNow", testDecideNow},
}

func mustDecide(t *testing.T, s tes.Store, d tes.Decision) *tes.Decided {
	t.Helper()
	return mustDecideRules(t, s, d, tes.DefaultRules())
}

func mustDecideRules(t *testing.T, s tes.Store, d tes.Decision, rules tes.Rules) *tes.Decided {
	t.Helper()
	out, err := s.Decide(context.Background(), d, rules)
	if err != nil {
		t.Fatalf("Decide(%+v): %v", d, err)
	}
	return out
}

func testApprove(t *testing.T, s tes.Store) {
	id := mustStore(t, s, newReport("AB-123-CD", 87), base)
	at := base.Add(time.Hour)
	got := mustDecide(t, s, tes.Decision{ViolationID: id, Approve: true, By: "alice", At: at})
	v := got.Violation
	if v.ID != id || v.Status != tes.StatusApproved || v.DecidedBy != "alice" || !v.DecidedAt.Equal(us(at)) || v.PointsApplied != 20 {
		t.Errorf("Decided.Violation = %+v, want approved by alice at %v with 20 points", v, us(at))
	}
	if v.Plate != "AB-123-CD" || v.Speed != 87 {
		t.Errorf("Decided.Violation holds %s %d, want the stored plate and speed", v.Plate, v.Speed)
	}
	if got.DriverTotal != 20 {
		t.Errorf("DriverTotal = %d, want 20", got.DriverTotal)
	}
	stored := mustViolation(t, s, id)
	if !equalViolation(stored, v) {
		t.Errorf("stored violation\n%+v\ndiffers from Decided\n%+v", stored, v)
	}
	d, err := s.Driver(context.Background(), "AB-123-CD")
	if err != nil || d.Points != 20 || d.Plate != "AB-123-CD" || !d.UpdatedAt.Equal(us(at)) {
		t.Errorf("Driver = %+v, %v; want 20 points updated at %v", d, err, us(at))
	}
	wantCounts(t, s, 0, 1, 0)

	// The points come from the rules and the stored speed.
	rules := tes.Rules{Bands: []tes.Band{{Min: 120, Max: 0, Points: 7}, {Min: 0, Max: 120, Points: 3}}}
	fast := mustStore(t, s, newReport("AB-123-CD", 131), base)
	got = mustDecideRules(t, s, tes.Decision{ViolationID: fast, Approve: true, By: "alice", At: at}, rules)
	if got.Violation.PointsApplied != 7 || got.DriverTotal != 27 {
		t.Errorf("custom rules: %d points, total %d; want 7 and 27", got.Violation.PointsApplied, got.DriverTotal)
	}

	events := verifyChain(t, s)
	e := findEvent(events, "violation.approved", subject(id))
	if e == nil || e.Actor != "alice" || e.Detail != "points=20 total=20" || !e.At.Equal(us(at)) {
		t.Errorf("approval event = %+v, want violation.approved by alice, points=20 total=20", e)
	}
	if e := findEvent(events, "violation.approved", subject(fast)); e == nil || e.Detail != "points=7 total=27" {
		t.Errorf("second approval event = %+v, want points=7 total=27", e)
	}
}

func testApproveTwice(t *testing.T, s tes.Store) {
	id := mustStore(t, s, newReport("AB-1", 75), base)
	at := base.Add(time.Hour)
	mustDecide(t, s, tes.Decision{ViolationID: id, Approve: true, By: "alice", At: at})
	for _, d := range []tes.Decision{
		{ViolationID: id, Approve: true, By: "bob", At: at.Add(time.Minute)},
		{ViolationID: id, By: "bob", At: at.Add(time.Minute), Reason: tes.ReasonOther, Note: "late"},
	} {
		_, err := s.Decide(context.Background(), d, tes.DefaultRules())
		wantCode(t, err, tes.ECONFLICT, "second decision")
		want := fmt.Sprintf("Violation %d was already approved by alice at %s.", id, us(at).Format(time.RFC3339))
		if msg := tes.ErrorMessage(err); msg != want {
			t.Errorf("conflict message = %q, want %q", msg, want)
		}
	}
	if d, err := s.Driver(context.Background(), "AB-1"); err != nil || d.Points != 20 {
		t.Errorf("Driver = %+v, %v; want the 20 points added once", d, err)
	}
	v := mustViolation(t, s, id)
	if v.Status != tes.StatusApproved || v.DecidedBy != "alice" || v.RejectReason != "" {
		t.Errorf("violation after the refused decisions = %+v, want alice's approval unchanged", v)
	}
	wantCounts(t, s, 0, 1, 0)
	if n := countActions(verifyChain(t, s), "violation.approved"); n != 1 {
		t.Errorf("%d approval events, want 1", n)
	}
}

func countActions(events []*tes.Event, action string) int {
	n := 0
	for _, e := range events {
		if e.Action == action {
			n++
		}
	}
	return n
}

func testReject(t *testing.T, s tes.Store) {
	id := mustStore(t, s, newReport("AB-1", 120), base)
	at := base.Add(2 * time.Hour)
	got := mustDecide(t, s, tes.Decision{ViolationID: id, By: "bob", At: at, Reason: tes.ReasonExemptVehicle, Note: "ambulance on call"})
	v := got.Violation
	if v.Status != tes.StatusRejected || v.DecidedBy != "bob" || !v.DecidedAt.Equal(us(at)) ||
		v.RejectReason != tes.ReasonExemptVehicle || v.RejectNote != "ambulance on call" || v.PointsApplied != 0 {
		t.Errorf("Decided.Violation = %+v, want rejected by bob, exempt_vehicle, with the note and no points", v)
	}
	if stored := mustViolation(t, s, id); !equalViolation(stored, v) {
		t.Errorf("stored\n%+v\ndiffers from Decided\n%+v", stored, v)
	}
	_, err := s.Driver(context.Background(), "AB-1")
	wantCode(t, err, tes.ENOTFOUND, "Driver after a rejection")
	wantCounts(t, s, 0, 0, 1)

	_, err = s.Decide(context.Background(), tes.Decision{ViolationID: id, Approve: true, By: "alice"}, tes.DefaultRules())
	wantCode(t, err, tes.ECONFLICT, "approve after reject")
	want := fmt.Sprintf("Violation %d was already rejected by bob at %s.", id, us(at).Format(time.RFC3339))
	if msg := tes.ErrorMessage(err); msg != want {
		t.Errorf("conflict message = %q, want %q", msg, want)
	}
	e := findEvent(verifyChain(t, s), "violation.rejected", subject(id))
	if e == nil || e.Actor != "bob" || !contains(e.Detail, "reason=exempt_vehicle") || !contains(e.Detail, "ambulance on call") {
		t.Errorf("rejection event = %+v, want violation.rejected by bob with reason and note", e)
	}
}

func testRejectInvalid(t *testing.T, s tes.Store) {
	id := mustStore(t, s, newReport("AB-1", 120), base)
	for _, d := range []tes.Decision{
		{ViolationID: id, By: "bob"},                       // no reason
		{ViolationID: id, By: "bob", Reason: "i_said_so"},  // unknown reason
		{ViolationID: id, Approve: true},                   // nobody
		{ViolationID: id, Reason: tes.ReasonOther, By: ""}, // nobody
	} {
		_, err := s.Decide(context.Background(), d, tes.DefaultRules())
		wantCode(t, err, tes.EINVALID, fmt.Sprintf("Decide(%+v)", d))
	}
	if v := mustViolation(t, s, id); v.Status != tes.StatusPending {
		t.Errorf("status after invalid decisions = %s, want PENDING", v.Status)
	}
}

func testDecideUnknown(t *testing.T, s tes.Store) {
	mustStore(t, s, newReport("AB-1", 120), base)
	for _, approve := range []bool{true, false} {
		_, err := s.Decide(context.Background(), tes.Decision{ViolationID: 999999, Approve: approve, By: "alice", Reason: tes.ReasonOther}, tes.DefaultRules())
		wantCode(t, err, tes.ENOTFOUND, "Decide(unknown id)")
	}
	wantCounts(t, s, 1, 0, 0)
}

func testDecideConcurrent(t *testing.T, s tes.Store) {
	id := mustStore(t, s, newReport("AB-1", 130), base)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d := tes.Decision{ViolationID: id, Approve: i%2 == 0, By: fmt.Sprintf("officer%d", i), At: base.Add(time.Hour), Reason: tes.ReasonOther}
			_, errs[i] = s.Decide(context.Background(), d, tes.DefaultRules())
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch tes.ErrorCode(err) {
		case "":
			winners++
		case tes.ECONFLICT:
		default:
			t.Errorf("officer%d: %v, want success or ECONFLICT", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d decisions succeeded, want exactly 1", winners)
	}
	v := mustViolation(t, s, id)
	d, err := s.Driver(context.Background(), "AB-1")
	switch v.Status {
	case tes.StatusApproved:
		if err != nil || d.Points != 50 {
			t.Errorf("Driver = %+v, %v; want 50 points added once", d, err)
		}
		wantCounts(t, s, 0, 1, 0)
	case tes.StatusRejected:
		wantCode(t, err, tes.ENOTFOUND, "Driver after a rejection")
		wantCounts(t, s, 0, 0, 1)
	default:
		t.Errorf("status = %s after the race", v.Status)
	}
	events := verifyChain(t, s)
	if n := countActions(events, "violation.approved") + countActions(events, "violation.rejected"); n != 1 {
		t.Errorf("%d decision events, want 1", n)
	}
}

func testDecideNow(t *testing.T, s tes.Store) {
	id := mustStore(t, s, newReport("AB-1", 60), base)
	before := time.Now().Add(-time.Second)
	got := mustDecide(t, s, tes.Decision{ViolationID: id, Approve: true, By: "alice"})
	after := time.Now().Add(time.Second)
	if at := got.Violation.DecidedAt; at.Before(before) || at.After(after) {
		t.Errorf("DecidedAt = %v with a zero Decision.At, want about now", at)
	}
	if v := mustViolation(t, s, id); !v.DecidedAt.Equal(got.Violation.DecidedAt) {
		t.Errorf("stored DecidedAt %v, returned %v", v.DecidedAt, got.Violation.DecidedAt)
	}
}
