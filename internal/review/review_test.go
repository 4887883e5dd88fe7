package review_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/review"
	"github.com/tes-traffic/tes/internal/sqlite"
)

func mustReview(t *testing.T) (*review.Service, int64) {
	t.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	keys, _ := atrest.New(master)
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := make([]byte, 32)
	rand.Read(d)
	it := &tes.IngestItem{MessageDigest: d, ReceivedAt: time.Now(),
		Report: &tes.Report{Plate: "AB123", Speed: 85, User: "police1", Suite: tes.SuiteTES1}}
	if err := db.Ingest(context.Background(), []*tes.IngestItem{it}); err != nil {
		t.Fatal(err)
	}
	return review.New(db, tes.DefaultRules(), slog.New(slog.NewTextHandler(io.Discard, nil))), it.ViolationID
}

func TestAuthorization(t *testing.T) {
	s, id := mustReview(t)
	ctx := context.Background()
	for _, actor := range []*tes.User{nil, {Name: "p", Role: tes.RolePolice}, {Name: "o", Role: tes.RoleOfficer, Disabled: true}} {
		if _, err := s.Approve(ctx, actor, id); err == nil {
			t.Errorf("Approve by %+v succeeded", actor)
		}
		if _, err := s.Violation(ctx, actor, id); err == nil {
			t.Errorf("Violation by %+v succeeded", actor)
		}
	}
	if _, err := s.Approve(ctx, &tes.User{Name: "p", Role: tes.RolePolice}, id); tes.ErrorCode(err) != tes.EFORBIDDEN {
		t.Fatalf("police approve: %v", err)
	}
}

func TestRejectValidationAndBulk(t *testing.T) {
	s, id := mustReview(t)
	ctx := context.Background()
	off := &tes.User{Name: "officer1", Role: tes.RoleOfficer}
	if _, err := s.Reject(ctx, off, id, tes.ReasonOther, ""); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatalf("other without a note: %v", err)
	}
	if _, err := s.Reject(ctx, off, id, "because", "x"); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatalf("unknown reason: %v", err)
	}
	if _, err := s.Reject(ctx, off, id, tes.ReasonDuplicate, strings.Repeat("x", review.MaxNote+1)); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatalf("long note: %v", err)
	}
	res, err := s.Bulk(ctx, off, []int64{id, id, 9999}, true, "", "")
	if err != nil || len(res) != 3 {
		t.Fatal(res, err)
	}
	if res[0].Err != nil || res[0].Decided.Violation.PointsApplied != 20 || res[0].Decided.DriverTotal != 20 {
		t.Fatalf("first row: %+v", res[0])
	}
	if tes.ErrorCode(res[1].Err) != tes.ECONFLICT || !strings.Contains(tes.ErrorMessage(res[1].Err), "already approved by officer1") {
		t.Fatalf("second row: %v", res[1].Err)
	}
	if tes.ErrorCode(res[2].Err) != tes.ENOTFOUND {
		t.Fatalf("third row: %v", res[2].Err)
	}
}
