package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

// DeviceBackend is a store with devices and audit checkpoints.
type DeviceBackend interface {
	tes.Store
	tes.DeviceStore
	tes.CheckpointStore
}

// RunDevices runs the contract tests of tes.DeviceStore and
// tes.CheckpointStore against stores made by open (a new, empty store per
// subtest, as for Run). Backends that implement both call it next to Run:
//
//	storetest.RunDevices(t, func(t *testing.T) storetest.DeviceBackend { return mustOpen(t) })
//
// It pins down: a join token is redeemed at most once, also by concurrent
// enrolments; expiry is checked at the enrolment time with the expiry
// itself already expired; every state change appends its audit event in
// the same transaction; a revocation is final; checkpoints are guarded on
// their event being in the log.
func RunDevices(t *testing.T, open func(t *testing.T) DeviceBackend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s DeviceBackend)
	}{
		{"TokenLifecycle", testTokenLifecycle},
		{"EnrollOnce", testEnrollOnce},
		{"EnrollRefusals", testEnrollRefusals},
		{"Revoke", testRevoke},
		{"Checkpoints", testCheckpoints},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func mustDeviceUser(t *testing.T, s tes.Store, name string) {
	t.Helper()
	if err := s.CreateUser(context.Background(), &tes.User{Name: name, Role: tes.RolePolice, PasswordHash: "-"}); err != nil {
		t.Fatal(err)
	}
}

func joinToken(id, user string, expires time.Time) *tes.JoinToken {
	return &tes.JoinToken{ID: id, Verifier: bytes.Repeat([]byte{1}, 32), User: user, CreatedBy: "admin", CreatedAt: base, ExpiresAt: expires}
}

func device(id, user string) *tes.Device {
	return &tes.Device{ID: id, User: user, KeyFingerprint: "SHA256:key-of-" + id, Cert: []byte("certificate of " + id), EnrolledAt: base.Add(time.Minute)}
}

// lastEvent returns the newest audit event.
func lastEvent(t *testing.T, s tes.Store) *tes.Event {
	t.Helper()
	ev, err := s.Events(context.Background(), 0, 1)
	if err != nil || len(ev) != 1 {
		t.Fatalf("Events: %v, %v", ev, err)
	}
	return ev[0]
}

func testTokenLifecycle(t *testing.T, s DeviceBackend) {
	ctx := context.Background()
	mustDeviceUser(t, s, "unit7")
	tok := joinToken("0123456789abcdef", "unit7", base.Add(time.Hour+time.Nanosecond))
	if err := s.CreateJoinToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if !tok.ExpiresAt.Equal(us(base.Add(time.Hour))) {
		t.Errorf("ExpiresAt = %v, want microseconds", tok.ExpiresAt)
	}
	if e := lastEvent(t, s); e.Action != "device.added" || e.Subject != "device:0123456789abcdef" || e.Actor != "admin" {
		t.Errorf("event = %+v", e)
	}
	got, err := s.JoinToken(ctx, tok.ID)
	if err != nil || got.User != "unit7" || !bytes.Equal(got.Verifier, tok.Verifier) || !got.ExpiresAt.Equal(tok.ExpiresAt) || !got.UsedAt.IsZero() {
		t.Fatalf("JoinToken = %+v, %v", got, err)
	}
	if err := s.CreateJoinToken(ctx, joinToken(tok.ID, "unit7", base.Add(time.Hour))); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("same ID again: %v, want ECONFLICT", err)
	}
	if err := s.CreateJoinToken(ctx, joinToken("1123456789abcdef", "nobody", base.Add(time.Hour))); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("unknown user: %v, want ENOTFOUND", err)
	}
	if err := s.CreateJoinToken(ctx, joinToken("short", "unit7", base.Add(time.Hour))); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("short ID: %v, want EINVALID", err)
	}
	if _, err := s.JoinToken(ctx, "ffffffffffffffff"); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("unknown token: %v, want ENOTFOUND", err)
	}

	d := device(tok.ID, "unit7")
	if err := s.EnrollDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(t, s); e.Action != "device.enrolled" || e.Actor != "unit7" || e.Subject != "device:"+tok.ID {
		t.Errorf("event = %+v", e)
	}
	got, _ = s.JoinToken(ctx, tok.ID)
	if !got.UsedAt.Equal(us(d.EnrolledAt)) {
		t.Errorf("token UsedAt = %v, want %v", got.UsedAt, d.EnrolledAt)
	}
	dev, err := s.Device(ctx, tok.ID)
	if err != nil || dev.User != "unit7" || !bytes.Equal(dev.Cert, d.Cert) || dev.KeyFingerprint != d.KeyFingerprint || dev.Revoked() {
		t.Fatalf("Device = %+v, %v", dev, err)
	}
	list, err := s.Devices(ctx)
	if err != nil || len(list) != 1 || list[0].ID != tok.ID {
		t.Fatalf("Devices = %v, %v", list, err)
	}
	toks, err := s.JoinTokens(ctx)
	if err != nil || len(toks) != 1 {
		t.Fatalf("JoinTokens = %v, %v", toks, err)
	}
	if _, err := s.Device(ctx, "ffffffffffffffff"); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("unknown device: %v, want ENOTFOUND", err)
	}
	verifyChain(t, s)
}

// testEnrollOnce: many concurrent enrolments with one token; exactly one wins.
func testEnrollOnce(t *testing.T, s DeviceBackend) {
	ctx := context.Background()
	mustDeviceUser(t, s, "unit7")
	if err := s.CreateJoinToken(ctx, joinToken("0123456789abcdef", "unit7", base.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := device("0123456789abcdef", "unit7")
			d.KeyFingerprint = fmt.Sprintf("SHA256:key-%d", i)
			errs[i] = s.EnrollDevice(ctx, d)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch tes.ErrorCode(err) {
		case "":
			won++
		case tes.ECONFLICT:
		default:
			t.Errorf("concurrent enrolment: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d enrolments succeeded with one token, want 1", won)
	}
}

func testEnrollRefusals(t *testing.T, s DeviceBackend) {
	ctx := context.Background()
	mustDeviceUser(t, s, "unit7")
	mustDeviceUser(t, s, "unit8")
	exp := base.Add(time.Hour)
	for _, id := range []string{"000000000000000a", "000000000000000b", "000000000000000c"} {
		if err := s.CreateJoinToken(ctx, joinToken(id, "unit7", exp)); err != nil {
			t.Fatal(err)
		}
	}
	late := device("000000000000000a", "unit7")
	late.EnrolledAt = exp // expiry is exclusive
	if err := s.EnrollDevice(ctx, late); tes.ErrorCode(err) != tes.EUNAUTHORIZED {
		t.Errorf("at the expiry: %v, want EUNAUTHORIZED", err)
	}
	if err := s.EnrollDevice(ctx, device("000000000000000b", "unit8")); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("another user: %v, want EINVALID", err)
	}
	if err := s.EnrollDevice(ctx, device("fffffffffffffff0", "unit7")); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("unknown token: %v, want ENOTFOUND", err)
	}
	if err := s.EnrollDevice(ctx, device("000000000000000b", "unit7")); err != nil {
		t.Fatal(err)
	}
	dup := device("000000000000000c", "unit7")
	dup.KeyFingerprint = "SHA256:key-of-000000000000000b"
	if err := s.EnrollDevice(ctx, dup); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("a key enrolled twice: %v, want ECONFLICT", err)
	}
	if tok, _ := s.JoinToken(ctx, "000000000000000c"); !tok.UsedAt.IsZero() {
		t.Error("a refused enrolment used the token")
	}
}

func testRevoke(t *testing.T, s DeviceBackend) {
	ctx := context.Background()
	mustDeviceUser(t, s, "unit7")
	for _, id := range []string{"000000000000000a", "000000000000000b"} {
		if err := s.CreateJoinToken(ctx, joinToken(id, "unit7", base.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EnrollDevice(ctx, device("000000000000000a", "unit7")); err != nil {
		t.Fatal(err)
	}
	at := base.Add(2 * time.Minute)
	if err := s.RevokeDevice(ctx, "000000000000000a", "admin", at); err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(t, s); e.Action != "device.revoked" || e.Actor != "admin" || e.Subject != "device:000000000000000a" {
		t.Errorf("event = %+v", e)
	}
	d, err := s.Device(ctx, "000000000000000a")
	if err != nil || !d.Revoked() || d.RevokedBy != "admin" || !d.RevokedAt.Equal(us(at)) {
		t.Fatalf("revoked device = %+v, %v", d, err)
	}
	if err := s.RevokeDevice(ctx, "000000000000000a", "admin", at); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("second revocation: %v, want ECONFLICT", err)
	}
	// Revoking a device that has not enrolled yet cancels its token.
	if err := s.RevokeDevice(ctx, "000000000000000b", "admin", at); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.JoinToken(ctx, "000000000000000b"); tok.RevokedAt.IsZero() {
		t.Error("the token was not cancelled")
	}
	if err := s.EnrollDevice(ctx, device("000000000000000b", "unit7")); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("enrolment with a cancelled token: %v, want ECONFLICT", err)
	}
	if err := s.RevokeDevice(ctx, "000000000000000b", "admin", at); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("cancelling twice: %v, want ECONFLICT", err)
	}
	if err := s.RevokeDevice(ctx, "fffffffffffffff0", "admin", at); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("unknown device: %v, want ENOTFOUND", err)
	}
	verifyChain(t, s)
}

func testCheckpoints(t *testing.T, s DeviceBackend) {
	ctx := context.Background()
	if seq, hash, err := s.AuditHead(ctx); err != nil || seq != 0 || hash != nil {
		t.Fatalf("AuditHead of an empty log = %d, %x, %v", seq, hash, err)
	}
	var events []*tes.Event
	for i := range 5 {
		events = append(events, &tes.Event{At: base, Actor: "a", Action: "x", Detail: fmt.Sprint(i)})
	}
	if err := s.AppendEvents(ctx, events...); err != nil {
		t.Fatal(err)
	}
	seq, hash, err := s.AuditHead(ctx)
	if err != nil || seq != events[4].Seq || !bytes.Equal(hash, events[4].Hash) {
		t.Fatalf("AuditHead = %d, %x, %v", seq, hash, err)
	}
	c := &tes.Checkpoint{Seq: seq, Hash: hash, At: base.Add(time.Nanosecond), KeyFingerprint: "SHA256:k", PublicKey: []byte("spki"), Signature: bytes.Repeat([]byte{2}, 64)}
	if err := s.AddCheckpoint(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || !c.At.Equal(us(base)) {
		t.Errorf("checkpoint = %+v", c)
	}
	bad := *c
	bad.Hash = bytes.Repeat([]byte{3}, 32)
	if err := s.AddCheckpoint(ctx, &bad); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Errorf("checkpoint of a hash not in the log: %v, want ECONFLICT", err)
	}
	bad = *c
	bad.Signature = nil
	if err := s.AddCheckpoint(ctx, &bad); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("checkpoint without a signature: %v, want EINVALID", err)
	}
	list, err := s.Checkpoints(ctx)
	if err != nil || len(list) != 1 || list[0].Seq != seq || !bytes.Equal(list[0].Signature, c.Signature) {
		t.Fatalf("Checkpoints = %+v, %v", list, err)
	}
	page, err := s.EventsAfter(ctx, events[1].Seq, 2)
	if err != nil || len(page) != 2 || page[0].Seq != events[2].Seq || page[1].Seq != events[3].Seq {
		t.Fatalf("EventsAfter = %v, %v", page, err)
	}
	if _, err := s.EventsAfter(ctx, 0, 0); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("EventsAfter limit 0: %v, want EINVALID", err)
	}
}
