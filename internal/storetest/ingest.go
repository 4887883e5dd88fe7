package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var ingestTests = []namedTest{
	{"StoredReportReadsBack", testIngestStored},
	{"EmptyBatch", testIngestEmpty},
	{"DuplicateReportIDAcrossBatches", testIngestDuplicateAcross},
	{"DuplicateReportIDWithinBatch", testIngestDuplicateWithin},
	{"ReportsWithoutReportID", testIngestNoReportID},
	{"ReplayedMessageDigest", testIngestReplayedMessage},
	{"ReplayedSessionDigest", testIngestReplayedSession},
	{"TLSReportsWithoutDigest", testIngestTLSNoDigest},
	{"CancelledContextWritesNothing", testIngestCancelled},
	{"InvalidItemWritesNothing", testIngestInvalidItem},
	{"PublicKeyStoredOnce", testIngestPublicKeys},
	{"AuditEventPerStoredReport", testIngestAudit},
	{"ViolationNotFound", testViolationNotFound},
	{"LargeMixedBatch", testIngestLargeMixed},
}

func testIngestStored(t *testing.T, s tes.Store) {
	r := newReport("AB-123-CD", 87)
	r.ReportID = reportID(1)
	r.Suite = tes.SuiteTLS
	r.Evidence.DeviceID = "cam-0042"
	it := reportItem(r, base)
	mustIngest(t, s, it)
	if it.Outcome != tes.OutcomeStored || it.ViolationID <= 0 {
		t.Fatalf("outcome = %v, id %d; want stored with an id", it.Outcome, it.ViolationID)
	}

	v := mustViolation(t, s, it.ViolationID)
	want := tes.Violation{
		ID: it.ViolationID, ReportID: r.ReportID, Plate: "AB-123-CD", Speed: 87, SpeedLimit: 50,
		Location: r.Location, ObservedAt: us(r.ObservedAt), ReceivedAt: us(base),
		ReportedBy: "unit7", Suite: tes.SuiteTLS, Evidence: r.Evidence, SigVerified: true, Status: tes.StatusPending,
	}
	if got := *v; !equalViolation(&got, &want) {
		t.Errorf("Violation(%d) =\n%+v\nwant\n%+v", it.ViolationID, got, want)
	}
	if v.ReceivedAt.Location() != time.UTC {
		t.Errorf("ReceivedAt is in %v, want UTC", v.ReceivedAt.Location())
	}
	wantCounts(t, s, 1, 0, 0)

	// Optional fields left empty come back empty.
	bare := &tes.Report{Plate: "ZZ 1", Speed: 0, User: "unit8", Suite: tes.SuiteTES1}
	id := mustStore(t, s, bare, base.Add(time.Second))
	v = mustViolation(t, s, id)
	if v.Location != "" || !v.ObservedAt.IsZero() || v.ReportID != "" || v.SpeedLimit != 0 || v.SigVerified ||
		v.Evidence.Signed != nil || v.Evidence.PublicKey != nil || v.Evidence.KeyFingerprint != "" {
		t.Errorf("bare report read back as %+v, want empty optional fields", v)
	}
	if id <= it.ViolationID {
		t.Errorf("second id %d is not above the first %d", id, it.ViolationID)
	}
}

func equalViolation(a, b *tes.Violation) bool {
	return a.ID == b.ID && a.ReportID == b.ReportID && a.Plate == b.Plate && a.Speed == b.Speed &&
		a.SpeedLimit == b.SpeedLimit && a.Location == b.Location && a.ObservedAt.Equal(b.ObservedAt) &&
		a.ReceivedAt.Equal(b.ReceivedAt) && a.ReportedBy == b.ReportedBy && a.Suite == b.Suite &&
		bytes.Equal(a.Evidence.Signed, b.Evidence.Signed) && bytes.Equal(a.Evidence.Signature, b.Evidence.Signature) &&
		a.Evidence.KeyFingerprint == b.Evidence.KeyFingerprint && bytes.Equal(a.Evidence.PublicKey, b.Evidence.PublicKey) &&
		a.Evidence.DeviceID == b.Evidence.DeviceID && a.SigVerified == b.SigVerified && a.Status == b.Status &&
		a.DecidedBy == b.DecidedBy && a.DecidedAt.Equal(b.DecidedAt) && a.RejectReason == b.RejectReason &&
		a.RejectNote == b.RejectNote && a.PointsApplied == b.PointsApplied
}

func testIngestEmpty(t *testing.T, s tes.Store) {
	if err := s.Ingest(context.Background(), nil); err != nil {
		t.Fatalf("Ingest(nil) = %v", err)
	}
	wantCounts(t, s, 0, 0, 0)
}

func testIngestDuplicateAcross(t *testing.T, s tes.Store) {
	r := newReport("AB-1", 90)
	r.ReportID = reportID(7)
	first := reportItem(r, base)
	mustIngest(t, s, first)

	// A resend: the same report_id in a new DATA message (new digest).
	again := newReport("AB-1", 90)
	again.ReportID = reportID(7)
	second := reportItem(again, base.Add(time.Second))
	other := reportItem(newReport("AB-2", 91), base.Add(time.Second))
	mustIngest(t, s, second, other)
	if second.Outcome != tes.OutcomeDuplicate || second.ViolationID != first.ViolationID {
		t.Errorf("resend: outcome %v id %d, want duplicate of %d", second.Outcome, second.ViolationID, first.ViolationID)
	}
	if other.Outcome != tes.OutcomeStored {
		t.Errorf("other report in the batch: outcome %v, want stored", other.Outcome)
	}
	wantCounts(t, s, 2, 0, 0)
}

func testIngestDuplicateWithin(t *testing.T, s tes.Store) {
	a, b := newReport("AB-1", 90), newReport("AB-1", 90)
	a.ReportID, b.ReportID = reportID(8), reportID(8)
	ia, ib := reportItem(a, base), reportItem(b, base)
	mustIngest(t, s, ia, ib)
	if ia.Outcome != tes.OutcomeStored {
		t.Fatalf("first: outcome %v, want stored", ia.Outcome)
	}
	if ib.Outcome != tes.OutcomeDuplicate || ib.ViolationID != ia.ViolationID {
		t.Errorf("second in the same batch: outcome %v id %d, want duplicate of %d", ib.Outcome, ib.ViolationID, ia.ViolationID)
	}
	wantCounts(t, s, 1, 0, 0)
}

func testIngestNoReportID(t *testing.T, s tes.Store) {
	a, b := reportItem(newReport("AB-1", 90), base), reportItem(newReport("AB-1", 90), base)
	mustIngest(t, s, a, b)
	if a.Outcome != tes.OutcomeStored || b.Outcome != tes.OutcomeStored || a.ViolationID == b.ViolationID {
		t.Errorf("two reports without report_id: %v/%d and %v/%d, want two stored rows", a.Outcome, a.ViolationID, b.Outcome, b.ViolationID)
	}
	if v := mustViolation(t, s, a.ViolationID); v.ReportID != "" {
		t.Errorf("ReportID = %q, want empty", v.ReportID)
	}
}

func testIngestReplayedMessage(t *testing.T, s tes.Store) {
	first := reportItem(newReport("AB-1", 90), base)
	mustIngest(t, s, first)

	// The same DATA message again, across batches: refused, nothing new.
	replay := &tes.IngestItem{MessageDigest: bytes.Clone(first.MessageDigest), Report: newReport("AB-1", 90), ReceivedAt: base.Add(time.Second)}
	mustIngest(t, s, replay)
	if replay.Outcome != tes.OutcomeReplay || replay.ViolationID != 0 {
		t.Errorf("replayed message: outcome %v id %d, want replay with no id", replay.Outcome, replay.ViolationID)
	}

	// Twice within one batch: the second is the replay.
	d := newDigest()
	x := &tes.IngestItem{MessageDigest: d, Report: newReport("AB-2", 91), ReceivedAt: base}
	y := &tes.IngestItem{MessageDigest: bytes.Clone(d), Report: newReport("AB-2", 91), ReceivedAt: base}
	mustIngest(t, s, x, y)
	if x.Outcome != tes.OutcomeStored || y.Outcome != tes.OutcomeReplay {
		t.Errorf("same digest twice in a batch: %v then %v, want stored then replay", x.Outcome, y.Outcome)
	}

	// A replay carrying a report_id already stored is still a replay: the
	// digest is checked first.
	r := newReport("AB-3", 92)
	r.ReportID = reportID(9)
	z := reportItem(r, base)
	mustIngest(t, s, z)
	r2 := newReport("AB-3", 92)
	r2.ReportID = reportID(9)
	zz := &tes.IngestItem{MessageDigest: bytes.Clone(z.MessageDigest), Report: r2, ReceivedAt: base}
	mustIngest(t, s, zz)
	if zz.Outcome != tes.OutcomeReplay {
		t.Errorf("replay with a stored report_id: outcome %v, want replay", zz.Outcome)
	}
	wantCounts(t, s, 3, 0, 0)
}

func testIngestReplayedSession(t *testing.T, s tes.Store) {
	d := digestOf("encrypted_key of session 1")
	a := &tes.IngestItem{SessionDigest: d, ReceivedAt: base}
	mustIngest(t, s, a)
	if a.Outcome != tes.OutcomeStored {
		t.Fatalf("new session: outcome %v, want stored", a.Outcome)
	}
	b := &tes.IngestItem{SessionDigest: bytes.Clone(d), ReceivedAt: base.Add(time.Hour)}
	mustIngest(t, s, b)
	if b.Outcome != tes.OutcomeReplay {
		t.Errorf("replayed session across batches: outcome %v, want replay", b.Outcome)
	}
	d2 := digestOf("encrypted_key of session 2")
	c := &tes.IngestItem{SessionDigest: d2}
	e := &tes.IngestItem{SessionDigest: bytes.Clone(d2)}
	rep := reportItem(newReport("AB-1", 60), base)
	mustIngest(t, s, c, rep, e)
	if c.Outcome != tes.OutcomeStored || e.Outcome != tes.OutcomeReplay || rep.Outcome != tes.OutcomeStored {
		t.Errorf("session, report, same session in one batch: %v, %v, %v; want stored, stored, replay", c.Outcome, rep.Outcome, e.Outcome)
	}
	// A batch of claims alone (PostgreSQL commits it as one statement): a
	// new claim, its copy, a claim stored earlier, another new one.
	d3, d4 := digestOf("encrypted_key of session 3"), digestOf("encrypted_key of session 4")
	claims := []*tes.IngestItem{{SessionDigest: d3}, {SessionDigest: bytes.Clone(d3)}, {SessionDigest: bytes.Clone(d)}, {SessionDigest: d4}}
	mustIngest(t, s, claims...)
	want := []tes.IngestOutcome{tes.OutcomeStored, tes.OutcomeReplay, tes.OutcomeReplay, tes.OutcomeStored}
	for i, it := range claims {
		if it.Outcome != want[i] {
			t.Errorf("claims alone, item %d: outcome %v, want %v", i, it.Outcome, want[i])
		}
	}
	again := &tes.IngestItem{SessionDigest: bytes.Clone(d4)}
	mustIngest(t, s, again)
	if again.Outcome != tes.OutcomeReplay {
		t.Errorf("a claim from a batch of claims alone, again: outcome %v, want replay", again.Outcome)
	}
	// Session claims are not violations.
	wantCounts(t, s, 1, 0, 0)
}

func testIngestCancelled(t *testing.T, s tes.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := newReport("AB-1", 90)
	r.ReportID = reportID(3)
	items := []*tes.IngestItem{
		reportItem(r, base),
		{SessionDigest: digestOf("session"), ReceivedAt: base},
		reportItem(newReport("AB-2", 95), base),
	}
	if err := s.Ingest(ctx, items); err == nil {
		t.Fatal("Ingest with a cancelled context succeeded")
	}
	for i, it := range items {
		if it.Outcome != tes.OutcomeNone || it.ViolationID != 0 {
			t.Errorf("item %d: outcome %v id %d after a failed Ingest, want none", i, it.Outcome, it.ViolationID)
		}
	}
	wantCounts(t, s, 0, 0, 0)
	page, _, err := s.Violations(context.Background(), tes.ViolationFilter{})
	if err != nil || len(page) != 0 {
		t.Fatalf("Violations after a failed Ingest = %d rows, %v; want none", len(page), err)
	}
	// Nothing was written, so no digest was used up: the same items go in.
	mustIngest(t, s, items...)
	for i, it := range items {
		if it.Outcome != tes.OutcomeStored {
			t.Errorf("item %d retried: outcome %v, want stored (its digest must not have been recorded)", i, it.Outcome)
		}
	}
	wantCounts(t, s, 2, 0, 0)
}

func testIngestInvalidItem(t *testing.T, s tes.Store) {
	good := reportItem(newReport("AB-1", 90), base)
	session := &tes.IngestItem{SessionDigest: digestOf("s"), ReceivedAt: base}
	bad := []struct {
		name string
		item *tes.IngestItem
	}{
		{"TES/1 report without message digest", &tes.IngestItem{Report: newReport("AB-2", 90)}},
		{"TLS report with a short message digest", &tes.IngestItem{Report: tlsReport("AB-3", 90, ""), MessageDigest: []byte("short")}},
		{"neither report nor session", &tes.IngestItem{ReceivedAt: base}},
		{"short session digest", &tes.IngestItem{SessionDigest: []byte("short")}},
	}
	for _, b := range bad {
		if err := s.Ingest(context.Background(), []*tes.IngestItem{good, session, b.item}); err == nil {
			t.Errorf("%s: Ingest succeeded, want an error", b.name)
		}
		if good.Outcome != tes.OutcomeNone || session.Outcome != tes.OutcomeNone {
			t.Errorf("%s: outcomes set on a failed Ingest", b.name)
		}
	}
	wantCounts(t, s, 0, 0, 0)
	mustIngest(t, s, good, session)
	if good.Outcome != tes.OutcomeStored || session.Outcome != tes.OutcomeStored {
		t.Errorf("after failed batches: %v, %v; want both stored (nothing was written before)", good.Outcome, session.Outcome)
	}
}

func testIngestPublicKeys(t *testing.T, s tes.Store) {
	var items []*tes.IngestItem
	for i := range 5 {
		items = append(items, reportItem(newReport("AB-1", 60+i), base))
	}
	other := newReport("AB-2", 70)
	other.Evidence.KeyFingerprint = "SHA256:unit9-key"
	other.Evidence.PublicKey = []byte("SPKI DER of unit9's key")
	items = append(items, reportItem(other, base))
	mustIngest(t, s, items...)
	later := reportItem(newReport("AB-3", 99), base)
	mustIngest(t, s, later)
	items = append(items, later)
	for i, it := range items {
		v := mustViolation(t, s, it.ViolationID)
		if v.Evidence.KeyFingerprint != it.Report.Evidence.KeyFingerprint || !bytes.Equal(v.Evidence.PublicKey, it.Report.Evidence.PublicKey) {
			t.Errorf("report %d: key %q/%q, want %q/%q", i, v.Evidence.KeyFingerprint, v.Evidence.PublicKey,
				it.Report.Evidence.KeyFingerprint, it.Report.Evidence.PublicKey)
		}
	}
}

func testIngestAudit(t *testing.T, s tes.Store) {
	r := newReport("AB-123-CD", 87)
	r.ReportID = reportID(1)
	a := reportItem(r, base)
	dup := newReport("AB-123-CD", 87)
	dup.ReportID = reportID(1)
	b := reportItem(dup, base)
	c := &tes.IngestItem{SessionDigest: digestOf("s"), ReceivedAt: base}
	mustIngest(t, s, a, b, c)
	events := verifyChain(t, s)
	if len(events) != 1 {
		t.Fatalf("%d audit events after one stored report, a duplicate and a session, want 1", len(events))
	}
	e := events[0]
	if e.Action != "report.accepted" || e.Subject != subject(a.ViolationID) || e.Actor != "unit7" {
		t.Errorf("event = %s %s by %s, want report.accepted %s by unit7", e.Action, e.Subject, e.Actor, subject(a.ViolationID))
	}
	if !contains(e.Detail, "suite=tes1") || !contains(e.Detail, "speed=87") || !contains(e.Detail, "plate_key=") {
		t.Errorf("detail = %q, want suite, plate_key and speed", e.Detail)
	}
	if contains(e.Detail, "AB-123-CD") {
		t.Errorf("detail %q holds the plate in clear", e.Detail)
	}
}

func testViolationNotFound(t *testing.T, s tes.Store) {
	_, err := s.Violation(context.Background(), 424242)
	wantCode(t, err, tes.ENOTFOUND, "Violation(424242)")
}

// testIngestLargeMixed commits batches larger than a store's statement
// chunks, with replays, resends and session claims at many positions, and
// checks every outcome against the rule: items are taken in order, a digest
// seen before is a replay, a report_id seen before is a duplicate of the
// first.
func testIngestLargeMixed(t *testing.T, s tes.Store) {
	seenDigest := map[string]bool{}
	firstOfID := map[string]*tes.IngestItem{}
	var all []*tes.IngestItem
	stored := 0
	for batch := range 3 {
		var items []*tes.IngestItem
		for i := range 150 + 37*batch {
			var it *tes.IngestItem
			switch {
			case i%13 == 5: // a session claim
				it = &tes.IngestItem{SessionDigest: newDigest(), ReceivedAt: base}
			case i%7 == 3 && len(all)+len(items) > 0: // a replay of an earlier message, this batch or before
				prev := append(all, items...)[(i*31)%(len(all)+len(items))]
				r := newReport("RP-1", 70)
				if prev.Report == nil {
					it = &tes.IngestItem{SessionDigest: bytes.Clone(prev.SessionDigest), ReceivedAt: base}
				} else {
					it = &tes.IngestItem{MessageDigest: bytes.Clone(prev.MessageDigest), Report: r, ReceivedAt: base}
				}
			case i%11 == 2: // a resend of report_id 1000+i/22 (new digest)
				r := newReport(fmt.Sprintf("RS-%d", i/22), 80)
				r.ReportID = reportID(1000 + i/22)
				it = reportItem(r, base)
			default:
				r := newReport(fmt.Sprintf("MX-%d-%d", batch, i), 60+i%100)
				if i%2 == 0 {
					r.ReportID = reportID(10000 + batch*1000 + i)
				}
				it = reportItem(r, base)
			}
			items = append(items, it)
		}
		mustIngest(t, s, items...)
		for i, it := range items {
			d := string(it.MessageDigest)
			if it.Report == nil {
				d = string(it.SessionDigest)
			}
			want := tes.OutcomeStored
			switch {
			case seenDigest[d]:
				want = tes.OutcomeReplay
			case it.Report != nil && it.Report.ReportID != "" && firstOfID[it.Report.ReportID] != nil:
				want = tes.OutcomeDuplicate
			}
			seenDigest[d] = true
			if it.Outcome != want {
				t.Fatalf("batch %d item %d: outcome %v, want %v", batch, i, it.Outcome, want)
			}
			switch {
			case want == tes.OutcomeDuplicate:
				if first := firstOfID[it.Report.ReportID]; it.ViolationID != first.ViolationID {
					t.Fatalf("batch %d item %d: duplicate of %d, want of %d", batch, i, it.ViolationID, first.ViolationID)
				}
			case want == tes.OutcomeStored && it.Report != nil:
				stored++
				if it.Report.ReportID != "" {
					firstOfID[it.Report.ReportID] = it
				}
				if v := mustViolation(t, s, it.ViolationID); v.Plate != it.Report.Plate || v.Speed != it.Report.Speed {
					t.Fatalf("batch %d item %d: violation %d reads back as %s %d, want %s %d", batch, i, it.ViolationID,
						v.Plate, v.Speed, it.Report.Plate, it.Report.Speed)
				}
			}
		}
		all = append(all, items...)
	}
	wantCounts(t, s, stored, 0, 0)
	if events := verifyChain(t, s); len(events) != stored {
		t.Fatalf("%d audit events for %d stored reports", len(events), stored)
	}
}

// tlsReport is a TLS-suite report with report_id rid ("" for none).
func tlsReport(plate string, speed int, rid string) *tes.Report {
	r := newReport(plate, speed)
	r.Suite, r.ReportID, r.Evidence.DeviceID = tes.SuiteTLS, rid, "cam-1"
	return r
}

// testIngestTLSNoDigest: a TLS-suite report needs no message digest (the
// transport refuses replays); its resends are still duplicates by
// report_id, within a batch and across batches, next to TES/1 reports
// with digests.
func testIngestTLSNoDigest(t *testing.T, s tes.Store) {
	noDigest := func(r *tes.Report) *tes.IngestItem { return &tes.IngestItem{Report: r, ReceivedAt: base} }
	a := noDigest(tlsReport("TL-1", 90, reportID(1)))
	b := noDigest(tlsReport("TL-2", 91, reportID(2)))
	aAgain := noDigest(tlsReport("TL-1", 90, reportID(1)))
	bare1, bare2 := noDigest(tlsReport("TL-3", 92, "")), noDigest(tlsReport("TL-3", 92, ""))
	legacy := reportItem(newReport("L-1", 93), base)
	legacyReplay := &tes.IngestItem{MessageDigest: legacy.MessageDigest, Report: newReport("L-1", 93), ReceivedAt: base}
	mustIngest(t, s, a, legacy, b, aAgain, bare1, bare2, legacyReplay)
	for _, c := range []struct {
		name string
		it   *tes.IngestItem
		want tes.IngestOutcome
	}{
		{"first TLS report", a, tes.OutcomeStored},
		{"second TLS report", b, tes.OutcomeStored},
		{"TLS resend in the batch", aAgain, tes.OutcomeDuplicate},
		{"TLS report without report_id", bare1, tes.OutcomeStored},
		{"another TLS report without report_id", bare2, tes.OutcomeStored},
		{"TES/1 report", legacy, tes.OutcomeStored},
		{"TES/1 replay in the batch", legacyReplay, tes.OutcomeReplay},
	} {
		if c.it.Outcome != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.it.Outcome, c.want)
		}
	}
	if aAgain.ViolationID != a.ViolationID {
		t.Errorf("resend names violation %d, want %d", aAgain.ViolationID, a.ViolationID)
	}
	later := noDigest(tlsReport("TL-2", 91, reportID(2)))
	mustIngest(t, s, later)
	if later.Outcome != tes.OutcomeDuplicate || later.ViolationID != b.ViolationID {
		t.Errorf("TLS resend in a later batch: %v %d, want duplicate of %d", later.Outcome, later.ViolationID, b.ViolationID)
	}
	wantCounts(t, s, 5, 0, 0)
}
