package officerui

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/webui"
)

// flashes are the success messages a redirect may ask for with ?msg=. Only
// these fixed texts can be shown, so a link cannot put words on the page.
var flashes = map[string]string{
	"signedout": "You have signed out.",
	"password":  "Your password has been changed.",
	"approved":  "The violation was approved.",
	"rejected":  "The violation was rejected.",
	"added":     "The user was added.",
	"role":      "The role was changed.",
	"disabled":  "The account was disabled and signed out everywhere.",
	"enabled":   "The account was enabled.",
	"revoked":   "The API token was revoked.",
}

func flash(r *http.Request) string { return flashes[r.URL.Query().Get("msg")] }

type loginData struct {
	Token        string
	Name         string
	Next         string
	FreeFailures int // wrong passwords before a lock
}

// loginPage shows the sign-in form, or sends a signed-in user on.
func (ui *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if s, u, err := ui.loadSession(r); err == nil && s != nil {
		if u.MustChangePass {
			http.Redirect(w, r, "/password", http.StatusSeeOther)
		} else {
			http.Redirect(w, r, next, http.StatusSeeOther)
		}
		return
	}
	ui.render(w, r, http.StatusOK, "login", &view{Flash: flash(r), D: loginData{Token: ui.loginToken(w, r), Next: next, FreeFailures: auth.FreeFailures}})
}

// loginSubmit checks the form's CSRF token against the pre-session cookie,
// then the credentials (auth.Service throttles and locks), then starts a new
// session under a new id.
func (ui *UI) loginSubmit(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("username"))
	pw := r.PostFormValue("password")
	next := localPath(r.PostFormValue("next"))
	data := loginData{Name: name, Next: next, FreeFailures: auth.FreeFailures}

	c, err := r.Cookie(webui.CookieName(loginCookie, ui.cfg.Secure))
	got := r.PostFormValue("csrf")
	if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) != 1 {
		data.Token = ui.loginToken(w, r)
		ui.render(w, r, http.StatusForbidden, "login", &view{
			Error: "The sign-in form had expired, so you were not signed in. Please enter your details again.", D: data})
		return
	}
	data.Token = c.Value
	if name == "" || pw == "" {
		ui.render(w, r, http.StatusBadRequest, "login", &view{Error: "Enter your user name and password.", D: data})
		return
	}
	u, err := ui.auth.Authenticate(r.Context(), name, pw)
	if err != nil {
		if code := tes.ErrorCode(err); code == tes.EUNAUTHORIZED || code == tes.ERATELIMIT {
			ui.log.Info("sign-in refused", "code", code, "remote", r.RemoteAddr)
		}
		ui.render(w, r, httpStatus(err), "login", &view{Error: ui.errorText(r, err), D: data})
		return
	}
	if _, err := ui.startSession(r.Context(), w, r, u); err != nil {
		ui.render(w, r, httpStatus(err), "login", &view{Error: ui.errorText(r, err), D: data})
		return
	}
	ui.auth.Audit(r.Context(), u.Name, "user.signed_in", "user:"+u.Name, "ui=officer")
	if u.MustChangePass {
		http.Redirect(w, r, "/password", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout deletes the session row and the cookie.
func (ui *UI) logout(w http.ResponseWriter, r *http.Request) {
	p := current(r)
	if err := ui.store.DeleteWebSession(r.Context(), p.Session.IDHash); err != nil && tes.ErrorCode(err) != tes.ENOTFOUND {
		ui.pageError(w, r, err)
		return
	}
	ui.clearSessionCookie(w)
	ui.auth.Audit(r.Context(), p.User.Name, "user.signed_out", "user:"+p.User.Name, "ui=officer")
	http.Redirect(w, r, "/login?msg=signedout", http.StatusSeeOther)
}

type passwordData struct {
	Forced bool
}

// passwordPage shows the change-password form; for a generated or reset
// password it says the change is required.
func (ui *UI) passwordPage(w http.ResponseWriter, r *http.Request) {
	ui.render(w, r, http.StatusOK, "password", &view{Nav: "password", Flash: flash(r), D: passwordData{Forced: current(r).User.MustChangePass}})
}

// passwordSubmit changes the signed-in user's password. The current password
// is checked through Authenticate (so guessing it is throttled like a
// sign-in); the change signs the user out everywhere, and a new session is
// started for this browser.
func (ui *UI) passwordSubmit(w http.ResponseWriter, r *http.Request) {
	u := current(r).User
	cur, pw, again := r.PostFormValue("current"), r.PostFormValue("new"), r.PostFormValue("confirm")
	fail := func(status int, msg string) {
		ui.render(w, r, status, "password", &view{Nav: "password", Error: msg, D: passwordData{Forced: u.MustChangePass}})
	}
	if cur == "" || pw == "" {
		fail(http.StatusBadRequest, "Enter your current password and a new one.")
		return
	}
	if pw != again {
		fail(http.StatusBadRequest, "The two new passwords are not the same.")
		return
	}
	if pw == cur {
		fail(http.StatusBadRequest, "The new password must be different from the current one.")
		return
	}
	if err := tes.ValidatePassword(pw); err != nil {
		fail(httpStatus(err), ui.errorText(r, err))
		return
	}
	if _, err := ui.auth.Authenticate(r.Context(), u.Name, cur); err != nil {
		if tes.ErrorCode(err) == tes.EUNAUTHORIZED {
			fail(http.StatusBadRequest, "Your current password is not right.")
			return
		}
		fail(httpStatus(err), ui.errorText(r, err))
		return
	}
	if err := ui.auth.SetPassword(r.Context(), u.Name, u.Name, pw, false); err != nil {
		fail(httpStatus(err), ui.errorText(r, err))
		return
	}
	u.MustChangePass = false
	if _, err := ui.startSession(r.Context(), w, r, u); err != nil {
		ui.pageError(w, r, err)
		return
	}
	if u.Role.CanReview() {
		http.Redirect(w, r, "/dashboard?msg=password", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/password?msg=password", http.StatusSeeOther)
}
