// Package review is the officers' service: reading the queue and deciding
// violations. The dashboard, the JSON API and the `tes approve|reject`
// commands all go through it, so every path has the same authorization,
// validation and approve-once guard.
package review

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// MaxNote bounds the free text of a rejection.
const MaxNote = 1000

// Service decides violations.
type Service struct {
	Store tes.ViolationStore
	Rules tes.Rules
	Log   *slog.Logger
	Now   func() time.Time
}

// New returns a Service with the given rules.
func New(store tes.ViolationStore, rules tes.Rules, log *slog.Logger) *Service {
	return &Service{Store: store, Rules: rules, Log: log, Now: time.Now}
}

func mayReview(actor *tes.User) error {
	if actor == nil {
		return tes.Errorf(tes.EUNAUTHORIZED, "Sign in first.")
	}
	if !actor.Role.CanReview() || actor.Disabled {
		return tes.Errorf(tes.EFORBIDDEN, "Only officers and admins may review violations.")
	}
	return nil
}

// Approve approves a pending violation and adds the rules' points, computed
// from the stored speed, to the driver's record. A violation that is no
// longer pending gives ECONFLICT saying who decided it and when.
func (s *Service) Approve(ctx context.Context, actor *tes.User, id int64) (*tes.Decided, error) {
	if err := mayReview(actor); err != nil {
		return nil, err
	}
	d, err := s.Store.Decide(ctx, tes.Decision{ViolationID: id, Approve: true, By: actor.Name, At: s.Now()}, s.Rules)
	if err == nil {
		s.Log.Info("violation approved", "id", id, "by", actor.Name, "points", d.Violation.PointsApplied)
	}
	return d, err
}

// Reject rejects a pending violation with a coded reason and optional note.
func (s *Service) Reject(ctx context.Context, actor *tes.User, id int64, reason tes.RejectReason, note string) (*tes.Decided, error) {
	if err := mayReview(actor); err != nil {
		return nil, err
	}
	if _, err := tes.ParseRejectReason(string(reason)); err != nil {
		return nil, err
	}
	note = strings.TrimSpace(note)
	if len(note) > MaxNote {
		return nil, tes.Errorf(tes.EINVALID, "The note is too long: at most %d bytes.", MaxNote)
	}
	if reason == tes.ReasonOther && note == "" {
		return nil, tes.Errorf(tes.EINVALID, "Say why in the note when the reason is \"other\".")
	}
	d, err := s.Store.Decide(ctx, tes.Decision{ViolationID: id, By: actor.Name, At: s.Now(), Reason: reason, Note: note}, s.Rules)
	if err == nil {
		s.Log.Info("violation rejected", "id", id, "by", actor.Name, "reason", reason)
	}
	return d, err
}

// BulkResult is the outcome of one row of a bulk decision.
type BulkResult struct {
	ID      int64
	Decided *tes.Decided // nil on error
	Err     error
}

// Bulk approves (reason "") or rejects each id in turn with the same guard
// as a single decision; one row's failure does not stop the others.
func (s *Service) Bulk(ctx context.Context, actor *tes.User, ids []int64, approve bool, reason tes.RejectReason, note string) ([]BulkResult, error) {
	if err := mayReview(actor); err != nil {
		return nil, err
	}
	if len(ids) > 500 {
		return nil, tes.Errorf(tes.EINVALID, "Select at most 500 rows at a time.")
	}
	out := make([]BulkResult, 0, len(ids))
	for _, id := range ids {
		var r BulkResult
		r.ID = id
		if approve {
			r.Decided, r.Err = s.Approve(ctx, actor, id)
		} else {
			r.Decided, r.Err = s.Reject(ctx, actor, id, reason, note)
		}
		out = append(out, r)
	}
	return out, nil
}

// Violation returns one violation for a reviewer.
func (s *Service) Violation(ctx context.Context, actor *tes.User, id int64) (*tes.Violation, error) {
	if err := mayReview(actor); err != nil {
		return nil, err
	}
	return s.Store.Violation(ctx, id)
}

// Violations returns one page of the queue for a reviewer.
func (s *Service) Violations(ctx context.Context, actor *tes.User, f tes.ViolationFilter) ([]*tes.Violation, *tes.Cursor, error) {
	if err := mayReview(actor); err != nil {
		return nil, nil, err
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, nil, tes.Errorf(tes.EINVALID, "The page size must be 1 to 1000.")
	}
	return s.Store.Violations(ctx, f)
}

// Points returns what the rules give v.
func (s *Service) Points(v *tes.Violation) int { return s.Rules.Points(v.Speed, v.SpeedLimit) }
