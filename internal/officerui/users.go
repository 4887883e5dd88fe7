package officerui

import (
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/password"
)

type userRow struct {
	*tes.User
	Locked bool
	Self   bool
}

type tokenRow struct {
	ID        string // hex of the token's hash: identifies it, reveals nothing
	Short     string
	Name      string
	User      string
	CreatedAt time.Time
	LastUsed  time.Time
}

// secret is a password or token shown once, right after it was made.
type secret struct {
	What  string // "temporary password", "API token"
	For   string
	Value string
}

type userForm struct {
	Name       string
	Role       string
	MustChange bool
	TokenName  string
	TokenUser  string
}

type usersData struct {
	Users  []userRow
	Tokens []tokenRow
	Secret *secret
	Form   userForm
}

// usersPage lists the accounts and API tokens with the forms to change them.
func (ui *UI) usersPage(w http.ResponseWriter, r *http.Request) {
	ui.showUsers(w, r, http.StatusOK, &view{Flash: flash(r)}, usersData{Form: userForm{Role: string(tes.RoleOfficer), MustChange: true}})
}

func (ui *UI) showUsers(w http.ResponseWriter, r *http.Request, status int, v *view, d usersData) {
	ctx := r.Context()
	users, err := ui.store.Users(ctx)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	now := ui.now()
	me := current(r).User.Name
	for _, u := range users {
		d.Users = append(d.Users, userRow{User: u, Locked: now.Before(u.LockedUntil), Self: u.Name == me})
	}
	tokens, err := ui.store.APITokens(ctx)
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	for _, t := range tokens {
		id := hex.EncodeToString(t.IDHash)
		d.Tokens = append(d.Tokens, tokenRow{ID: id, Short: id[:min(12, len(id))], Name: t.Name, User: t.User, CreatedAt: t.CreatedAt, LastUsed: t.LastUsed})
	}
	v.Nav = "users"
	v.D = &d
	ui.render(w, r, status, "users", v)
}

// usersFailed shows the users page with err and the forms refilled.
func (ui *UI) usersFailed(w http.ResponseWriter, r *http.Request, err error, f userForm) {
	ui.showUsers(w, r, httpStatus(err), &view{Error: ui.errorText(r, err)}, usersData{Form: f})
}

// userAdd creates an account. A blank password makes a random one, shown
// once; either way the user can be made to choose a new one at first
// sign-in.
func (ui *UI) userAdd(w http.ResponseWriter, r *http.Request) {
	f := userForm{
		Name:       strings.TrimSpace(r.PostFormValue("name")),
		Role:       r.PostFormValue("role"),
		MustChange: r.PostFormValue("must_change") == "1",
	}
	role, err := tes.ParseRole(f.Role)
	if err != nil {
		ui.usersFailed(w, r, err, f)
		return
	}
	pw := r.PostFormValue("password")
	generated := pw == ""
	if generated {
		pw = password.Generate()
		f.MustChange = true
	}
	if _, err := ui.auth.CreateUser(r.Context(), current(r).User.Name, f.Name, role, pw, f.MustChange); err != nil {
		ui.usersFailed(w, r, err, f)
		return
	}
	if generated {
		ui.showUsers(w, r, http.StatusOK, &view{Flash: "The user was added."},
			usersData{Secret: &secret{What: "temporary password", For: f.Name, Value: pw}, Form: userForm{Role: string(tes.RoleOfficer), MustChange: true}})
		return
	}
	http.Redirect(w, r, "/users?msg=added", http.StatusSeeOther)
}

// notSelf refuses an admin's change to their own account that could lock
// every admin out (disable, demote).
func notSelf(r *http.Request, name, what string) error {
	if current(r).User.Name == name {
		return tes.Errorf(tes.EINVALID, "You cannot %s your own account: ask another administrator.", what)
	}
	return nil
}

// userRole changes an account's role.
func (ui *UI) userRole(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	role, err := tes.ParseRole(r.PostFormValue("role"))
	if err == nil {
		err = notSelf(r, name, "change the role of")
	}
	if err == nil {
		err = ui.auth.SetRole(r.Context(), current(r).User.Name, name, role)
	}
	if err != nil {
		ui.usersFailed(w, r, err, userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	http.Redirect(w, r, "/users?msg=role", http.StatusSeeOther)
}

// userDisable disables an account and signs it out everywhere.
func (ui *UI) userDisable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := notSelf(r, name, "disable")
	if err == nil {
		err = ui.auth.SetDisabled(r.Context(), current(r).User.Name, name, true)
	}
	if err != nil {
		ui.usersFailed(w, r, err, userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	http.Redirect(w, r, "/users?msg=disabled", http.StatusSeeOther)
}

// userEnable enables a disabled account.
func (ui *UI) userEnable(w http.ResponseWriter, r *http.Request) {
	if err := ui.auth.SetDisabled(r.Context(), current(r).User.Name, r.PathValue("name"), false); err != nil {
		ui.usersFailed(w, r, err, userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	http.Redirect(w, r, "/users?msg=enabled", http.StatusSeeOther)
}

// userReset sets a random temporary password, shown once, which the user
// must change at the next sign-in; the account is signed out everywhere.
func (ui *UI) userReset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == current(r).User.Name {
		ui.usersFailed(w, r, tes.Errorf(tes.EINVALID, "To change your own password, use Change password."), userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	pw := password.Generate()
	if err := ui.auth.SetPassword(r.Context(), current(r).User.Name, name, pw, true); err != nil {
		ui.usersFailed(w, r, err, userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	ui.showUsers(w, r, http.StatusOK, &view{Flash: "The password was reset; the account was signed out everywhere."},
		usersData{Secret: &secret{What: "temporary password", For: name, Value: pw}, Form: userForm{Role: string(tes.RoleOfficer), MustChange: true}})
}

// tokenCreate issues an API token and shows it once.
func (ui *UI) tokenCreate(w http.ResponseWriter, r *http.Request) {
	f := userForm{Role: string(tes.RoleOfficer), MustChange: true,
		TokenName: strings.TrimSpace(r.PostFormValue("token_name")), TokenUser: r.PostFormValue("token_user")}
	raw, _, err := ui.auth.CreateAPIToken(r.Context(), current(r).User.Name, f.TokenName, f.TokenUser)
	if err != nil {
		ui.usersFailed(w, r, err, f)
		return
	}
	ui.showUsers(w, r, http.StatusOK, &view{Flash: "The API token was created."},
		usersData{Secret: &secret{What: "API token", For: f.TokenName + " (acts as " + f.TokenUser + ")", Value: raw}, Form: userForm{Role: string(tes.RoleOfficer), MustChange: true}})
}

// tokenRevoke deletes an API token.
func (ui *UI) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	id, err := hex.DecodeString(r.PathValue("id"))
	if err != nil || len(id) != 32 {
		ui.usersFailed(w, r, tes.Errorf(tes.ENOTFOUND, "There is no such API token."), userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	if err := ui.auth.RevokeAPIToken(r.Context(), current(r).User.Name, id); err != nil {
		ui.usersFailed(w, r, err, userForm{Role: string(tes.RoleOfficer), MustChange: true})
		return
	}
	http.Redirect(w, r, "/users?msg=revoked", http.StatusSeeOther)
}
