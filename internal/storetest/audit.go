package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var auditTests = []namedTest{
	{"ChainLinksAndVerifies", testAuditChain},
	{"EventsPages", testAuditPages},
}

func testAuditChain(t *testing.T, s tes.Store) {
	ctx := context.Background()
	first := []*tes.Event{
		{At: base, Actor: "alice", Action: "user.added", Subject: "user:bob", Detail: "role=police"},
		{At: base.Add(time.Nanosecond), Actor: "alice", Action: "user.role_changed", Subject: "user:bob", Detail: "role=officer"},
		{Actor: "system", Action: "server.started"}, // zero At: now
	}
	before := time.Now().Add(-time.Second)
	if err := s.AppendEvents(ctx, first...); err != nil {
		t.Fatal(err)
	}
	if first[0].PrevHash != nil {
		t.Errorf("first event of a new store has PrevHash %x, want nil", first[0].PrevHash)
	}
	for i, e := range first {
		if i > 0 && (e.Seq != first[i-1].Seq+1 || string(e.PrevHash) != string(first[i-1].Hash)) {
			t.Errorf("event %d: seq %d prev %x, want seq %d prev %x", i, e.Seq, e.PrevHash, first[i-1].Seq+1, first[i-1].Hash)
		}
		if want := tes.ChainHash(e.PrevHash, e); string(e.Hash) != string(want) {
			t.Errorf("event %d: Hash %x, want ChainHash %x", i, e.Hash, want)
		}
	}
	if !first[0].At.Equal(us(base)) || first[0].At.Location() != time.UTC {
		t.Errorf("At = %v, want %v truncated to microseconds in UTC", first[0].At, us(base))
	}
	if at := first[2].At; at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("zero At became %v, want now", at)
	}

	// The ingest and decision paths append to the same chain.
	id := mustStore(t, s, newReport("AB-1", 80), base)
	mustDecide(t, s, tes.Decision{ViolationID: id, Approve: true, By: "alice", At: base})
	more := &tes.Event{At: base, Actor: "bob", Action: "user.password_changed", Subject: "user:bob"}
	if err := s.AppendEvents(ctx, more); err != nil {
		t.Fatal(err)
	}

	events := verifyChain(t, s)
	if len(events) != 6 {
		t.Fatalf("%d events, want 6", len(events))
	}
	for i, e := range first {
		got := events[i]
		if got.Seq != e.Seq || !got.At.Equal(e.At) || got.Actor != e.Actor || got.Action != e.Action || got.Subject != e.Subject ||
			got.Detail != e.Detail || string(got.Hash) != string(e.Hash) {
			t.Errorf("stored event %d = %+v, appended %+v", i, got, e)
		}
	}
	if events[5].Seq != more.Seq || string(events[5].Hash) != string(more.Hash) || string(more.PrevHash) != string(events[4].Hash) {
		t.Errorf("last appended event %+v does not match the stored chain", more)
	}
	if err := s.AppendEvents(ctx, &tes.Event{Actor: "x"}); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("AppendEvents without an action = %v, want EINVALID", err)
	}
}

func testAuditPages(t *testing.T, s tes.Store) {
	ctx := context.Background()
	var events []*tes.Event
	for i := range 12 {
		events = append(events, &tes.Event{At: base.Add(time.Duration(i) * time.Second), Actor: "alice", Action: "test.event", Subject: "n", Detail: string(rune('a' + i))})
	}
	if err := s.AppendEvents(ctx, events[:5]...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, events[5:]...); err != nil {
		t.Fatal(err)
	}
	newest, err := s.Events(ctx, 0, 3)
	if err != nil || len(newest) != 3 {
		t.Fatalf("Events(0, 3) = %d, %v", len(newest), err)
	}
	for i, e := range newest {
		if e.Seq != events[11-i].Seq {
			t.Errorf("Events(0, 3)[%d].Seq = %d, want %d (newest first)", i, e.Seq, events[11-i].Seq)
		}
	}
	older, err := s.Events(ctx, events[2].Seq, 50)
	if err != nil || len(older) != 2 || older[0].Seq != events[1].Seq || older[1].Seq != events[0].Seq {
		t.Errorf("Events(before %d) = %v, %v; want the two before it", events[2].Seq, older, err)
	}
	all, err := s.Events(ctx, 0, 0)
	if err != nil || len(all) != 12 {
		t.Errorf("Events(0, 0) = %d events, %v; want all 12 (default limit 50)", len(all), err)
	}
	if _, err := s.Events(ctx, 0, 1001); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("Events limit 1001 = %v, want EINVALID", err)
	}
	verifyChain(t, s)
}
