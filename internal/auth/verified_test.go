package auth

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
	"github.com/tes-traffic/tes/internal/password"
	"github.com/tes-traffic/tes/internal/sqlite"
)

// countVerify replaces verifyPassword with a counting wrapper for the test.
func countVerify(t *testing.T) *int {
	n := new(int)
	verifyPassword = func(pw, h string) (bool, bool, error) { *n++; return password.Verify(pw, h) }
	t.Cleanup(func() { verifyPassword = password.Verify })
	return n
}

func cachedService(t *testing.T, ttl time.Duration, max int) (*Service, *sqlite.DB, *time.Time) {
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
	s := New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Now = func() time.Time { return now }
	s.CacheVerified(ttl, max)
	return s, db, &now
}

func TestVerifiedCache(t *testing.T) {
	ctx := context.Background()
	s, db, now := cachedService(t, time.Minute, 100)
	for _, name := range []string{"alice", "bob"} {
		if _, err := s.CreateUser(ctx, "t", name, tes.RolePolice, name+"-password", false); err != nil {
			t.Fatal(err)
		}
	}
	calls := countVerify(t)
	login := func(name, pw string) error { _, err := s.Authenticate(ctx, name, pw); return err }
	step := func(what string, err error, wantOK bool, wantCalls int) {
		t.Helper()
		if (err == nil) != wantOK {
			t.Fatalf("%s: err = %v, want ok=%t", what, err, wantOK)
		}
		if *calls != wantCalls {
			t.Fatalf("%s: %d argon2id checks so far, want %d", what, *calls, wantCalls)
		}
	}

	step("first sign-in", login("alice", "alice-password"), true, 1)
	step("repeat sign-in is cached", login("alice", "alice-password"), true, 1)
	step("a wrong password always pays argon2id", login("alice", "alice-passwore"), false, 2)
	step("and does not spoil the entry", login("alice", "alice-password"), true, 2)
	step("another user's password is not alice's", login("bob", "alice-password"), false, 3)
	step("bob's first sign-in", login("bob", "bob-password"), true, 4)

	// A password changed by another node (straight in the store, not through
	// this service) ends the entry: the stored hash differs.
	h, _ := password.Hash("alice-new-password")
	if err := db.UpdateUser(ctx, "alice", func(u *tes.User) error { u.PasswordHash = h; return nil }); err != nil {
		t.Fatal(err)
	}
	step("old password after a change elsewhere", login("alice", "alice-password"), false, 5)
	step("new password", login("alice", "alice-new-password"), true, 6)
	step("new password cached", login("alice", "alice-new-password"), true, 6)

	// Disabled accounts are refused even with a cached password, and the
	// refusal costs a full check like any other.
	if err := db.UpdateUser(ctx, "alice", func(u *tes.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	step("disabled", login("alice", "alice-new-password"), false, 7)
	if err := s.SetDisabled(ctx, "t", "alice", false); err != nil {
		t.Fatal(err)
	}
	step("re-enabled: verified again", login("alice", "alice-new-password"), true, 8)

	// A locked account is refused before any check.
	if err := db.UpdateUser(ctx, "alice", func(u *tes.User) error { u.LockedUntil = now.Add(time.Minute); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := login("alice", "alice-new-password"); tes.ErrorCode(err) != tes.ERATELIMIT {
		t.Fatalf("locked: %v", err)
	}
	*now = now.Add(2 * time.Minute)
	step("after the lock and the ttl: verified again", login("alice", "alice-new-password"), true, 9)

	// SetPassword through the service forgets the entry at once.
	if err := s.SetPassword(ctx, "t", "bob", "bob-other-password", false); err != nil {
		t.Fatal(err)
	}
	step("bob's old password", login("bob", "bob-password"), false, 10)
}

func TestVerifiedCacheBoundAndOff(t *testing.T) {
	c := newVerifiedCache(time.Minute, 2)
	now := time.Now()
	c.remember("a", "h", "p", now)
	c.remember("b", "h", "p", now)
	c.remember("c", "h", "p", now)
	if len(c.m) != 2 || !c.check("c", "h", "p", now) {
		t.Fatalf("cache holds %d entries (want 2, with the newest)", len(c.m))
	}
	if c.check("c", "h", "p", now.Add(time.Minute)) {
		t.Fatal("an entry is used at its expiry")
	}
	// The MAC separates the fields: ("ab","c") is not ("a","bc").
	if c.mac("ab", "h", "c") == c.mac("a", "h", "bc") {
		t.Fatal("mac inputs are ambiguous")
	}
	var off *verifiedCache = newVerifiedCache(0, 10)
	off.remember("a", "h", "p", now)
	if off != nil || off.check("a", "h", "p", now) {
		t.Fatal("ttl 0 must turn the cache off")
	}
}
