package auth_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/sqlite"
)

func mustService(t *testing.T) (*auth.Service, *sqlite.DB, *time.Time) {
	t.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	keys, _ := atrest.New(master)
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := auth.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Now = func() time.Time { return now }
	return s, db, &now
}

func TestAuthenticate(t *testing.T) {
	s, _, _ := mustService(t)
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, "t", "alice", tes.RoleOfficer, "alice-password", false); err != nil {
		t.Fatal(err)
	}
	u, err := s.Authenticate(ctx, "alice", "alice-password")
	if err != nil || u.Name != "alice" || u.Role != tes.RoleOfficer {
		t.Fatalf("Authenticate = %+v, %v", u, err)
	}
	for _, tc := range []struct{ name, pw string }{{"alice", "wrong-password"}, {"nobody", "alice-password"}, {"alice", ""}} {
		if _, err := s.Authenticate(ctx, tc.name, tc.pw); err != auth.ErrInvalidCredentials {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrInvalidCredentials", tc.name, tc.pw, err)
		}
	}
	// Disabled: the same answer as a wrong password.
	if err := s.SetDisabled(ctx, "t", "alice", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", "alice-password"); err != auth.ErrInvalidCredentials {
		t.Fatalf("disabled user: %v", err)
	}
}

func TestThrottling(t *testing.T) {
	s, db, now := mustService(t)
	ctx := context.Background()
	s.CreateUser(ctx, "t", "bob", tes.RolePolice, "bob-password", false)
	for i := 0; i < auth.FreeFailures; i++ {
		if _, err := s.Authenticate(ctx, "bob", "bad-password"); err != auth.ErrInvalidCredentials {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	// Locked now, even with the right password.
	if _, err := s.Authenticate(ctx, "bob", "bob-password"); tes.ErrorCode(err) != tes.ERATELIMIT {
		t.Fatalf("after %d failures: %v, want ERATELIMIT", auth.FreeFailures, err)
	}
	*now = now.Add(auth.BaseLock + time.Second)
	if _, err := s.Authenticate(ctx, "bob", "bob-password"); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
	u, _ := db.User(ctx, "bob")
	if u.FailedLogins != 0 {
		t.Fatalf("success left %d failures counted", u.FailedLogins)
	}
	// Locks grow with further failures, up to MaxLock.
	for i := 0; i < 20; i++ {
		s.Authenticate(ctx, "bob", "bad-password")
		*now = now.Add(auth.MaxLock + time.Second)
	}
	u, _ = db.User(ctx, "bob")
	if d := u.LockedUntil.Sub(now.Add(-auth.MaxLock - time.Second)); d > auth.MaxLock {
		t.Fatalf("lock of %v exceeds MaxLock", d)
	}
}

func TestEnsureAdminAndPasswordChange(t *testing.T) {
	s, db, _ := mustService(t)
	ctx := context.Background()
	pw, err := s.EnsureAdmin(ctx)
	if err != nil || len(pw) != 20 {
		t.Fatalf("EnsureAdmin = %q, %v", pw, err)
	}
	u, err := s.Authenticate(ctx, "admin", pw)
	if err != nil || !u.MustChangePass || u.Role != tes.RoleAdmin {
		t.Fatalf("admin = %+v, %v", u, err)
	}
	if again, err := s.EnsureAdmin(ctx); again != "" || err != nil {
		t.Fatalf("second EnsureAdmin = %q, %v: must create nothing", again, err)
	}
	if err := s.SetPassword(ctx, "admin", "admin", "short", false); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatalf("short password: %v", err)
	}
	db.CreateWebSession(ctx, &tes.WebSession{IDHash: make([]byte, 32), User: "admin", CSRFToken: "x", CreatedAt: time.Now(), LastSeen: time.Now()})
	if err := s.SetPassword(ctx, "admin", "admin", "a-new-long-password", false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WebSession(ctx, make([]byte, 32)); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Fatalf("password change kept the web session: %v", err)
	}
	if u, err := s.Authenticate(ctx, "admin", "a-new-long-password"); err != nil || u.MustChangePass {
		t.Fatalf("after change: %+v %v", u, err)
	}
	ev, _ := db.Events(ctx, 0, 10)
	if len(ev) < 2 || ev[0].Action != "user.password_changed" {
		t.Fatalf("audit events: %+v", ev)
	}
}
