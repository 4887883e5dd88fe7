package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var usersTests = []namedTest{
	{"CreateAndRead", testUsersCreate},
	{"Update", testUsersUpdate},
	{"ConcurrentUpdatesAreNotLost", testUsersConcurrent},
	{"ChangesAndTheirAuditEventsInOneTransaction", testUsersAudited},
}

// testUsersAudited: an account change and its audit event commit together
// or not at all; an event left without an action is not appended; a new
// password or a disabled account ends the user's web sessions in the same
// transaction; API tokens likewise.
func testUsersAudited(t *testing.T, s tes.Store) {
	ctx := context.Background()
	ev := func(action string) *tes.Event {
		return &tes.Event{At: base, Actor: "admin", Action: action, Subject: "user:dave"}
	}
	if err := s.CreateUser(ctx, &tes.User{Name: "dave", Role: tes.RolePolice, PasswordHash: "h1"}, ev("user.added")); err != nil {
		t.Fatal(err)
	}
	// A name already taken: no user, no event.
	if err := s.CreateUser(ctx, &tes.User{Name: "dave", Role: tes.RolePolice, PasswordHash: "h2"}, ev("user.added.again")); tes.ErrorCode(err) != tes.ECONFLICT {
		t.Fatalf("second CreateUser = %v, want ECONFLICT", err)
	}
	// fn fails: nothing changes, nothing is recorded.
	boom := errors.New("boom")
	if err := s.UpdateUser(ctx, "dave", func(u *tes.User) error { u.Role = tes.RoleAdmin; return boom }, ev("user.role_changed")); !errors.Is(err, boom) {
		t.Fatalf("UpdateUser with a failing fn = %v, want its error", err)
	}
	// An event fn leaves without an action is not appended; one it fills in is.
	quiet, filled := &tes.Event{Actor: "dave"}, &tes.Event{Actor: "dave", Subject: "user:dave"}
	if err := s.UpdateUser(ctx, "dave", func(u *tes.User) error {
		u.FailedLogins++
		filled.Action, filled.Detail = "user.locked", "until=later"
		return nil
	}, quiet, filled); err != nil {
		t.Fatal(err)
	}

	// Web sessions end with a new password, and with disabling.
	newSession := func(b byte) []byte {
		id := make([]byte, 32)
		id[0] = b
		if err := s.CreateWebSession(ctx, &tes.WebSession{IDHash: id, User: "dave", CSRFToken: "c", CreatedAt: base, LastSeen: base}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	gone := func(id []byte) bool {
		_, err := s.WebSession(ctx, id)
		return tes.ErrorCode(err) == tes.ENOTFOUND
	}
	a := newSession(1)
	if err := s.UpdateUser(ctx, "dave", func(u *tes.User) error { u.MustChangePass = true; return nil }); err != nil || gone(a) {
		t.Fatalf("an update that changes neither password nor state ended the session (%v)", err)
	}
	if err := s.UpdateUser(ctx, "dave", func(u *tes.User) error { u.PasswordHash = "h3"; return nil }, ev("user.password_changed")); err != nil || !gone(a) {
		t.Fatalf("a new password left the session alive (%v)", err)
	}
	b := newSession(2)
	if err := s.UpdateUser(ctx, "dave", func(u *tes.User) error { u.Disabled = true; return nil }, ev("user.disabled")); err != nil || !gone(b) {
		t.Fatalf("disabling left the session alive (%v)", err)
	}

	// API tokens: created and deleted with their events; a failed delete records nothing.
	tok := &tes.APIToken{IDHash: digestOf("token-1"), Name: "camera", User: "dave", CreatedAt: base}
	if err := s.CreateAPIToken(ctx, tok, ev("token.created")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIToken(ctx, &tes.APIToken{IDHash: digestOf("token-2"), Name: "x", User: "nobody"}, ev("token.for.nobody")); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Fatalf("token for an unknown user = %v, want ENOTFOUND", err)
	}
	if err := s.DeleteAPIToken(ctx, tok.IDHash, ev("token.revoked")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAPIToken(ctx, tok.IDHash, ev("token.revoked.twice")); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Fatalf("second delete = %v, want ENOTFOUND", err)
	}

	var got []string
	for _, e := range verifyChain(t, s) {
		got = append(got, e.Action)
	}
	want := []string{"user.added", "user.locked", "user.password_changed", "user.disabled", "token.created", "token.revoked"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit chain = %v, want %v", got, want)
	}
	u, err := s.User(ctx, "dave")
	if err != nil || u.Role != tes.RolePolice || u.FailedLogins != 1 || !u.Disabled || u.PasswordHash != "h3" {
		t.Fatalf("dave = %+v, %v", u, err)
	}
}

func testUsersCreate(t *testing.T, s tes.Store) {
	ctx := context.Background()
	if n, err := s.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on a new store = %d, %v; want 0", n, err)
	}
	locked := base.Add(time.Hour)
	in := &tes.User{Name: "carol", Role: tes.RoleOfficer, PasswordHash: "$argon2id$x", MustChangePass: true, FailedLogins: 2,
		LockedUntil: locked, CreatedAt: base, UpdatedAt: base.Add(time.Minute)}
	if err := s.CreateUser(ctx, in); err != nil {
		t.Fatal(err)
	}
	mustCreateUser(t, s, "alice", tes.RoleAdmin)
	mustCreateUser(t, s, "bob", tes.RolePolice)

	u, err := s.User(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "carol" || u.Role != tes.RoleOfficer || u.PasswordHash != "$argon2id$x" || !u.MustChangePass || u.Disabled ||
		u.FailedLogins != 2 || !u.LockedUntil.Equal(us(locked)) || !u.CreatedAt.Equal(us(base)) || !u.UpdatedAt.Equal(us(base.Add(time.Minute))) {
		t.Errorf("User(carol) = %+v, want what was created", u)
	}

	err = s.CreateUser(ctx, &tes.User{Name: "carol", Role: tes.RolePolice, PasswordHash: "other"})
	wantCode(t, err, tes.ECONFLICT, "CreateUser(duplicate)")
	if u, _ := s.User(ctx, "carol"); u.Role != tes.RoleOfficer {
		t.Errorf("duplicate CreateUser changed the user: role %s", u.Role)
	}
	_, err = s.User(ctx, "dave")
	wantCode(t, err, tes.ENOTFOUND, "User(dave)")
	for _, bad := range []*tes.User{{Name: "", Role: tes.RolePolice}, {Name: "eve!", Role: tes.RolePolice}, {Name: "eve", Role: "root"}} {
		wantCode(t, s.CreateUser(ctx, bad), tes.EINVALID, fmt.Sprintf("CreateUser(%q, %q)", bad.Name, bad.Role))
	}

	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if fmt.Sprint(names) != "[alice bob carol]" {
		t.Errorf("Users = %v, want [alice bob carol]", names)
	}
	if n, err := s.CountUsers(ctx); err != nil || n != 3 {
		t.Errorf("CountUsers = %d, %v; want 3", n, err)
	}
}

func testUsersUpdate(t *testing.T, s tes.Store) {
	ctx := context.Background()
	mustCreateUser(t, s, "alice", tes.RoleOfficer)
	lock := base.Add(15 * time.Minute)
	err := s.UpdateUser(ctx, "alice", func(u *tes.User) error {
		u.FailedLogins++
		u.LockedUntil = lock
		u.Role = tes.RoleAdmin
		u.Disabled = true
		u.UpdatedAt = base.Add(time.Minute)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.FailedLogins != 1 || !u.LockedUntil.Equal(us(lock)) || u.Role != tes.RoleAdmin || !u.Disabled || !u.UpdatedAt.Equal(us(base.Add(time.Minute))) {
		t.Errorf("after UpdateUser: %+v", u)
	}

	// Clearing a time stores the zero time.
	if err := s.UpdateUser(ctx, "alice", func(u *tes.User) error { u.LockedUntil = time.Time{}; return nil }); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, "alice"); !u.LockedUntil.IsZero() {
		t.Errorf("LockedUntil = %v, want zero", u.LockedUntil)
	}

	// An error from fn aborts the update and comes back unchanged.
	stop := errors.New("stop")
	err = s.UpdateUser(ctx, "alice", func(u *tes.User) error { u.FailedLogins = 99; return stop })
	if !errors.Is(err, stop) {
		t.Errorf("UpdateUser with a failing fn = %v, want its error", err)
	}
	if u, _ := s.User(ctx, "alice"); u.FailedLogins != 1 {
		t.Errorf("failed update was written: FailedLogins = %d", u.FailedLogins)
	}

	err = s.UpdateUser(ctx, "nobody", func(u *tes.User) error { return nil })
	wantCode(t, err, tes.ENOTFOUND, "UpdateUser(nobody)")
	err = s.UpdateUser(ctx, "alice", func(u *tes.User) error { u.Role = "root"; return nil })
	wantCode(t, err, tes.EINVALID, "UpdateUser to an unknown role")
}

func testUsersConcurrent(t *testing.T, s tes.Store) {
	ctx := context.Background()
	mustCreateUser(t, s, "alice", tes.RoleOfficer)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.UpdateUser(ctx, "alice", func(u *tes.User) error { u.FailedLogins++; return nil })
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if u, _ := s.User(ctx, "alice"); u.FailedLogins != n {
		t.Errorf("FailedLogins = %d after %d concurrent increments", u.FailedLogins, n)
	}
}
