package officerui_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/tes-traffic/tes"
)

// TestUsersAdmin: only admins manage accounts; each change goes through
// auth.Service, takes effect at once and is in the audit log under the
// admin's name.
func TestUsersAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	olga := e.login("olga")
	wantStatus(t, olga.get("/users"), http.StatusForbidden)
	wantStatus(t, olga.post("/users", url.Values{"name": {"eve"}, "role": {"admin"}, "password": {"eve password 1"}}, true), http.StatusForbidden)
	wantStatus(t, olga.post("/users/pete/role", url.Values{"role": {"admin"}}, true), http.StatusForbidden)
	if _, err := e.store.User(ctx, "eve"); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Fatal("an officer added a user")
	}

	ada := e.login("ada")
	// Add with a chosen password and a forced change.
	r := ada.post("/users", url.Values{"name": {"nina"}, "role": {"officer"}, "password": {"nina's first password"}, "must_change": {"1"}}, true)
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, ada.get(r.location()), "The user was added.", "nina")
	if u, err := e.store.User(ctx, "nina"); err != nil || u.Role != tes.RoleOfficer || !u.MustChangePass {
		t.Fatalf("nina: %+v %v", u, err)
	}
	// Add with a generated password, shown once.
	r = ada.post("/users", url.Values{"name": {"omar"}, "role": {"officer"}}, true)
	wantStatus(t, r, http.StatusOK)
	m := secretRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no generated password shown:\n%s", r.body)
	}
	omar := e.client()
	wantStatus(t, omar.tryLogin("omar", m[1]), http.StatusSeeOther)
	if loc := omar.get("/dashboard").location(); loc != "/password" {
		t.Errorf("a generated password does not force a change: %q", loc)
	}
	// Bad input and duplicates are 400/409 with the form kept.
	r = ada.post("/users", url.Values{"name": {"nina"}, "role": {"officer"}, "password": {"whatever long"}}, true)
	wantStatus(t, r, http.StatusConflict)
	r = ada.post("/users", url.Values{"name": {"x y"}, "role": {"officer"}, "password": {"whatever long"}}, true)
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, `value="x y"`)
	wantStatus(t, ada.post("/users", url.Values{"name": {"zed"}, "role": {"king"}, "password": {"whatever long"}}, true), http.StatusBadRequest)
	wantStatus(t, ada.post("/users", url.Values{"name": {"zed"}, "role": {"officer"}, "password": {"short"}}, true), http.StatusBadRequest)

	// Disable signs olga out and refuses her sign-in; enable lets her back.
	wantStatus(t, ada.post("/users/olga/disable", nil, true), http.StatusSeeOther)
	if r := olga.get("/dashboard"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("a disabled user's session still works: %d", r.StatusCode)
	}
	wantStatus(t, e.client().tryLogin("olga", testPassword), http.StatusUnauthorized)
	wantStatus(t, ada.post("/users/olga/enable", nil, true), http.StatusSeeOther)
	wantStatus(t, e.client().tryLogin("olga", testPassword), http.StatusSeeOther)

	// Reset: a new temporary password, shown once; the old one is dead.
	pete := e.login("pete")
	r = ada.post("/users/pete/reset", nil, true)
	wantStatus(t, r, http.StatusOK)
	m = secretRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatal("no temporary password shown")
	}
	wantStatus(t, pete.get("/password"), http.StatusSeeOther) // signed out everywhere
	wantStatus(t, e.client().tryLogin("pete", testPassword), http.StatusUnauthorized)
	p2 := e.client()
	r = p2.tryLogin("pete", m[1])
	if r.StatusCode != http.StatusSeeOther || r.location() != "/password" {
		t.Errorf("sign-in with the reset password: %d %q", r.StatusCode, r.location())
	}

	// Change role.
	wantStatus(t, ada.post("/users/pete/role", url.Values{"role": {"officer"}}, true), http.StatusSeeOther)
	if u, _ := e.store.User(ctx, "pete"); u.Role != tes.RoleOfficer {
		t.Errorf("pete's role %s", u.Role)
	}
	wantStatus(t, ada.post("/users/pete/role", url.Values{"role": {"emperor"}}, true), http.StatusBadRequest)
	wantStatus(t, ada.post("/users/nobody/disable", nil, true), http.StatusNotFound)

	// An admin cannot lock themself out.
	for _, p := range []string{"/users/ada/disable", "/users/ada/reset"} {
		wantStatus(t, ada.post(p, nil, true), http.StatusBadRequest)
	}
	wantStatus(t, ada.post("/users/ada/role", url.Values{"role": {"officer"}}, true), http.StatusBadRequest)
	if u, _ := e.store.User(ctx, "ada"); u.Role != tes.RoleAdmin || u.Disabled {
		t.Errorf("ada changed herself: %+v", u)
	}

	evs, err := e.store.Events(ctx, 0, 200)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"user.added": false, "user.disabled": false, "user.enabled": false, "user.password_changed": false, "user.role_changed": false}
	for _, ev := range evs {
		if _, ok := want[ev.Action]; ok && ev.Actor == "ada" {
			want[ev.Action] = true
		}
	}
	for a, ok := range want {
		if !ok {
			t.Errorf("no %s event by ada in the audit log", a)
		}
	}
}
