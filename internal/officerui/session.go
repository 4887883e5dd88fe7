package officerui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/webui"
)

// Cookie names. The session cookie holds the only copy of the session id;
// the login cookie holds the pre-session CSRF token of the sign-in form.
const (
	sessionCookie = "tes_session"
	loginCookie   = "tes_login_csrf"
)

// randomToken returns 32 random bytes, base64url-encoded without padding.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionHash is what the store keeps of a session id: SHA-256 of the raw
// 32 bytes. A cookie that is not 32 bytes of base64url has no hash.
func sessionHash(id string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) != 32 {
		return nil, false
	}
	h := sha256.Sum256(raw)
	return h[:], true
}

// startSession creates a fresh session for u and sets its cookie. Any
// session the request already carried is deleted first, so an id planted
// before sign-in (session fixation) never becomes authenticated.
func (ui *UI) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, u *tes.User) (*tes.WebSession, error) {
	ui.endSession(ctx, r)
	id := randomToken()
	h, _ := sessionHash(id)
	now := ui.now()
	s := &tes.WebSession{IDHash: h, User: u.Name, CSRFToken: randomToken(), CreatedAt: now, LastSeen: now}
	if err := ui.store.CreateWebSession(ctx, s); err != nil {
		return nil, err
	}
	http.SetCookie(w, ui.cookie(sessionCookie, id, "/", 0))
	return s, nil
}

// endSession deletes the session the request carries, if any.
func (ui *UI) endSession(ctx context.Context, r *http.Request) {
	c, err := r.Cookie(webui.CookieName(sessionCookie, ui.cfg.Secure))
	if err != nil {
		return
	}
	if h, ok := sessionHash(c.Value); ok {
		if err := ui.store.DeleteWebSession(ctx, h); err != nil && tes.ErrorCode(err) != tes.ENOTFOUND {
			ui.log.Warn("delete web session", "err", err)
		}
	}
}

// loadSession returns the request's live session and its user, or nil, nil
// when there is none: no cookie, an unknown id, an expired session (which is
// deleted) or a deleted or disabled account. Only store failures are errors.
func (ui *UI) loadSession(r *http.Request) (*tes.WebSession, *tes.User, error) {
	c, err := r.Cookie(webui.CookieName(sessionCookie, ui.cfg.Secure))
	if err != nil {
		return nil, nil, nil
	}
	h, ok := sessionHash(c.Value)
	if !ok {
		return nil, nil, nil
	}
	ctx := r.Context()
	s, err := ui.store.WebSession(ctx, h)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	now := ui.now()
	if now.Sub(s.CreatedAt) >= AbsoluteTimeout || now.Sub(s.LastSeen) >= IdleTimeout {
		if err := ui.store.DeleteWebSession(ctx, h); err != nil && tes.ErrorCode(err) != tes.ENOTFOUND {
			return nil, nil, err
		}
		return nil, nil, nil
	}
	u, err := ui.store.User(ctx, s.User)
	if tes.ErrorCode(err) == tes.ENOTFOUND {
		_ = ui.store.DeleteWebSession(ctx, h)
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	if u.Disabled {
		_ = ui.store.DeleteWebSession(ctx, h)
		return nil, nil, nil
	}
	if now.Sub(s.LastSeen) >= touchInterval {
		err := ui.store.TouchWebSession(ctx, h, now)
		if tes.ErrorCode(err) == tes.ENOTFOUND {
			return nil, nil, nil // signed out meanwhile, in another tab
		} else if err != nil {
			return nil, nil, err
		}
		s.LastSeen = now
	}
	return s, u, nil
}

// cookie builds a cookie with the dashboard's flags. maxAge < 0 deletes it;
// 0 makes a browser-session cookie (the server enforces the timeouts).
func (ui *UI) cookie(name, value, path string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     webui.CookieName(name, ui.cfg.Secure),
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   ui.cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// clearSessionCookie tells the browser to forget the session cookie.
func (ui *UI) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, ui.cookie(sessionCookie, "", "/", -1))
}

// loginToken returns the sign-in form's CSRF token, setting its cookie when
// the browser has none yet.
func (ui *UI) loginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(webui.CookieName(loginCookie, ui.cfg.Secure)); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := randomToken()
	c := ui.cookie(loginCookie, t, "/", int((2 * time.Hour).Seconds()))
	c.SameSite = http.SameSiteStrictMode
	http.SetCookie(w, c)
	return t
}
