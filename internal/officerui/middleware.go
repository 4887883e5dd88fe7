package officerui

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/webui"
)

// securityHeaders sets the headers every response carries and bounds the
// request body: forms and API bodies are small. The CSP allows only the
// dashboard's own files: no inline script or style, no plug-ins, no
// framing, forms may post only here.
func (ui *UI) securityHeaders(next http.Handler) http.Handler {
	return webui.SecurityHeaders(webui.SecurityOptions{
		CSP:               "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
		PermissionsPolicy: "camera=(), microphone=(), geolocation=()",
		MaxBody:           1 << 20,
		HSTS:              func(*http.Request) bool { return ui.cfg.Secure },
	})(next)
}

// principal is who a request acts for.
type principal struct {
	User    *tes.User
	Session *tes.WebSession // nil when authenticated by an API token
}

type principalKey struct{}

func withPrincipal(r *http.Request, p *principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// current returns the request's principal; the wrappers below guarantee one
// for every handler they wrap.
func current(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// csrfOK compares the request's token (form field "csrf" or header
// X-CSRF-Token) with the session's in constant time.
func csrfOK(r *http.Request, s *tes.WebSession) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if got == "" || s == nil || s.CSRFToken == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRFToken)) == 1
}

// signedIn lets through a request with a live session (any role, even one
// that must change its password) and a valid CSRF token on unsafe methods.
// Without a session a page request is sent to the sign-in page and nothing
// is done.
func (ui *UI) signedIn(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, u, err := ui.loadSession(r)
		if err != nil {
			ui.pageError(w, r, err)
			return
		}
		if s == nil {
			ui.clearSessionCookie(w)
			ui.redirectToLogin(w, r)
			return
		}
		if unsafeMethod(r.Method) && !csrfOK(r, s) {
			ui.log.Warn("csrf token missing or wrong", "path", r.URL.Path, "user", u.Name)
			ui.renderError(w, withPrincipal(r, &principal{User: u, Session: s}), http.StatusForbidden,
				"This form has expired or did not come from the dashboard, so nothing was changed. Reload the page and try again.")
			return
		}
		next(w, withPrincipal(r, &principal{User: u, Session: s}))
	}
}

// reviewer is signedIn for officers and admins whose password is current.
// Police get 403; a user who must change the password is sent to /password.
func (ui *UI) reviewer(next http.HandlerFunc) http.HandlerFunc {
	return ui.signedIn(func(w http.ResponseWriter, r *http.Request) {
		u := current(r).User
		if u.MustChangePass {
			http.Redirect(w, r, "/password", http.StatusSeeOther)
			return
		}
		if !u.Role.CanReview() {
			ui.renderError(w, r, http.StatusForbidden,
				"Your account has the police role, which may send reports but not review them. Sign in with an officer account.")
			return
		}
		next(w, r)
	})
}

// admin is reviewer for admins only.
func (ui *UI) admin(next http.HandlerFunc) http.HandlerFunc {
	return ui.reviewer(func(w http.ResponseWriter, r *http.Request) {
		if current(r).User.Role != tes.RoleAdmin {
			ui.renderError(w, r, http.StatusForbidden, "Only administrators may manage users and API tokens.")
			return
		}
		next(w, r)
	})
}

// redirectToLogin sends a page request to /login, remembering where a GET
// was going so that the user lands there after signing in.
func (ui *UI) redirectToLogin(w http.ResponseWriter, r *http.Request) {
	target := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// localPath accepts only same-site paths as a post-login destination, so
// that ?next= cannot send a user to another site.
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return "/dashboard"
	}
	if u, err := url.Parse(p); err != nil || u.Host != "" || u.Scheme != "" {
		return "/dashboard"
	}
	return p
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// api authenticates an API request by bearer token or by session (with the
// CSRF header or field on unsafe methods) and requires a reviewer. Failures
// are JSON: 401 without valid credentials, 403 for the wrong role or a
// missing CSRF token.
func (ui *UI) api(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p principal
		if authz := r.Header.Get("Authorization"); authz != "" {
			scheme, tok, _ := strings.Cut(authz, " ")
			if !strings.EqualFold(scheme, "Bearer") || tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tes"`)
				ui.apiError(w, r, tes.Errorf(tes.EUNAUTHORIZED, "Use an Authorization: Bearer <token> header or sign in."))
				return
			}
			u, err := ui.auth.AuthenticateToken(r.Context(), strings.TrimSpace(tok))
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tes", error="invalid_token"`)
				ui.apiError(w, r, err)
				return
			}
			p.User = u
		} else {
			s, u, err := ui.loadSession(r)
			if err != nil {
				ui.apiError(w, r, err)
				return
			}
			if s == nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tes"`)
				ui.apiError(w, r, tes.Errorf(tes.EUNAUTHORIZED, "Sign in or send an API token."))
				return
			}
			if unsafeMethod(r.Method) && !csrfOK(r, s) {
				ui.apiError(w, r, tes.Errorf(tes.EFORBIDDEN, "Missing or wrong X-CSRF-Token header: nothing was changed."))
				return
			}
			if u.MustChangePass {
				ui.apiError(w, r, tes.Errorf(tes.EFORBIDDEN, "Change your password on the dashboard first."))
				return
			}
			p.User, p.Session = u, s
		}
		if !p.User.Role.CanReview() {
			ui.apiError(w, r, tes.Errorf(tes.EFORBIDDEN, "Only officers and admins may use the review API."))
			return
		}
		next(w, withPrincipal(r, &p))
	}
}
