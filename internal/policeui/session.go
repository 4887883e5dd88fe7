package policeui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/webui"
)

// Cookie names. The session cookie holds the only copy of the session id;
// the login cookie holds the sign-in form's pre-session CSRF token.
const (
	sessionCookie = "tes_police_session"
	loginCookie   = "tes_police_login_csrf"
)

// session is one signed-in browser. It owns its sender, and so its own
// protocol session and its copy of the password: nothing here is shared
// with another browser, even one of the same user.
type session struct {
	key      [32]byte // SHA-256 of the cookie's id; the id itself is not kept
	user     string
	server   string
	csrf     string
	created  time.Time
	lastSeen time.Time // guarded by sessionStore.mu

	sender *outbox.Sender
	stop   context.CancelFunc
	done   chan struct{}
}

// end stops the session's sender, closing its protocol session, and waits
// for it (at most a few seconds: a dial in progress is abandoned).
func (s *session) end() {
	s.stop()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

// sessionStore keeps the signed-in browsers in memory, keyed by the hash
// of their id. A session whose browser went idle past the timeout is
// removed from the map (its cookie stops working) but its sender runs on
// as an orphan until it has delivered everything or the absolute timeout
// passes, so reports written just before a tablet went to sleep still go
// out.
type sessionStore struct {
	secure  bool // the client is reached over HTTPS (Config.Secure): cookies are __Host- prefixed
	mu      sync.Mutex
	now     func() time.Time
	m       map[[32]byte]*session
	orphans []*session
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{now: now, m: map[[32]byte]*session{}}
}

// randomToken returns 32 random bytes, base64url-encoded without padding.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionKey is what the map keeps of an id: SHA-256 of its 32 raw bytes.
// A cookie that is not 32 bytes of base64url has no key.
func sessionKey(id string) ([32]byte, bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil || len(raw) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256(raw), true
}

// add registers a new session for a sender and returns its cookie id. The
// sender must be running under stop/done.
func (st *sessionStore) add(s *session) string {
	id := randomToken()
	s.key, _ = sessionKey(id)
	s.csrf = randomToken()
	s.created = st.now()
	s.lastSeen = s.created
	st.mu.Lock()
	st.m[s.key] = s
	// An orphan of the same user and server is superseded by this sign-in.
	var stale []*session
	kept := st.orphans[:0]
	for _, o := range st.orphans {
		if o.user == s.user && o.server == s.server {
			stale = append(stale, o)
		} else {
			kept = append(kept, o)
		}
	}
	st.orphans = kept
	st.mu.Unlock()
	for _, o := range stale {
		go o.end()
	}
	return id
}

// get returns the request's live session, or nil. touch marks the session
// used, restarting its idle timeout; the page's background refresh does
// not touch, so an open tab alone does not keep a session alive.
func (st *sessionStore) get(r *http.Request, touch bool) *session {
	c, err := r.Cookie(webui.CookieName(sessionCookie, st.secure || r.TLS != nil))
	if err != nil {
		return nil
	}
	key, ok := sessionKey(c.Value)
	if !ok {
		return nil
	}
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[key]
	if s == nil {
		return nil
	}
	if st.expiredLocked(s, now) {
		st.retireLocked(s)
		return nil
	}
	if touch {
		s.lastSeen = now
	}
	return s
}

func (st *sessionStore) expiredLocked(s *session, now time.Time) bool {
	return now.Sub(s.created) >= AbsoluteTimeout || now.Sub(s.lastSeen) >= IdleTimeout
}

// retireLocked removes an expired session from the map and keeps its
// sender running as an orphan; sweep stops it once its queue is empty.
func (st *sessionStore) retireLocked(s *session) {
	delete(st.m, s.key)
	st.orphans = append(st.orphans, s)
}

// remove signs a session out: it leaves the map and its sender stops.
func (st *sessionStore) remove(s *session) {
	st.mu.Lock()
	delete(st.m, s.key)
	st.mu.Unlock()
	s.end()
}

// sweepOnce retires expired sessions and stops orphans that have nothing
// left to send or outlived the absolute timeout.
func (st *sessionStore) sweepOnce(ctx context.Context, ob *outbox.Outbox) {
	now := st.now()
	st.mu.Lock()
	for _, s := range st.m {
		if st.expiredLocked(s, now) {
			st.retireLocked(s)
		}
	}
	orphans := append([]*session(nil), st.orphans...)
	st.mu.Unlock()
	var done []*session
	for _, o := range orphans {
		counts, err := ob.Counts(ctx, o.user, o.server)
		if err != nil {
			continue
		}
		if counts[outbox.StateQueued]+counts[outbox.StateSent] == 0 || now.Sub(o.created) >= AbsoluteTimeout ||
			o.sender.Status().State == outbox.ConnLoginFailed || o.sender.Status().State == outbox.ConnDeviceRevoked {
			done = append(done, o)
		}
	}
	if len(done) == 0 {
		return
	}
	st.mu.Lock()
	kept := st.orphans[:0]
	for _, o := range st.orphans {
		if !containsSession(done, o) {
			kept = append(kept, o)
		}
	}
	st.orphans = kept
	st.mu.Unlock()
	for _, o := range done {
		o.end()
	}
}

func containsSession(list []*session, s *session) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// closeAll stops every sender, signed in or orphaned.
func (st *sessionStore) closeAll() {
	st.mu.Lock()
	all := append([]*session(nil), st.orphans...)
	for _, s := range st.m {
		all = append(all, s)
	}
	st.m = map[[32]byte]*session{}
	st.orphans = nil
	st.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() { defer wg.Done(); s.end() }()
	}
	wg.Wait()
}

// sweep runs sweepOnce every 30 seconds until ctx ends.
func (ui *UI) sweep(ctx context.Context) {
	defer close(ui.swept)
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ui.sessions.sweepOnce(ctx, ui.ob)
		}
	}
}

// cookie builds a cookie with the client's flags. maxAge < 0 deletes it; 0
// makes a browser-session cookie (the server enforces the timeouts).
func (ui *UI) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: webui.CookieName(name, ui.secure(r)), Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: ui.secure(r), SameSite: http.SameSiteLaxMode}
}

// secure reports whether the browser reaches this client over HTTPS (the
// same rule as sessionStore.get).
func (ui *UI) secure(r *http.Request) bool { return ui.cfg.Secure || r.TLS != nil }

// requestCookie returns the request's cookie of that name (prefixed as
// cookie sets it).
func (ui *UI) requestCookie(r *http.Request, name string) (*http.Cookie, error) {
	return r.Cookie(webui.CookieName(name, ui.secure(r)))
}

// loginToken returns the sign-in form's CSRF token, setting its cookie
// when the browser has none yet.
func (ui *UI) loginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := ui.requestCookie(r, loginCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := randomToken()
	c := ui.cookie(r, loginCookie, t, int((2 * time.Hour).Seconds()))
	c.SameSite = http.SameSiteStrictMode
	http.SetCookie(w, c)
	return t
}

// csrfOK compares the request's token (form field "csrf" or header
// X-CSRF-Token) with the session's in constant time.
func csrfOK(r *http.Request, s *session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

type sessionCtxKey struct{}

func currentSession(r *http.Request) *session {
	s, _ := r.Context().Value(sessionCtxKey{}).(*session)
	return s
}

// signedIn lets through a request with a live session and, on POST, the
// session's CSRF token. Without a session a page request goes to sign-in.
func (ui *UI) signedIn(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := ui.sessions.get(r, true)
		if s == nil {
			http.SetCookie(w, ui.cookie(r, sessionCookie, "", -1))
			target := "/login"
			if _, err := ui.requestCookie(r, sessionCookie); err == nil {
				target += "?msg=expired"
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionCtxKey{}, s))
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !csrfOK(r, s) {
			ui.log.Warn("csrf token missing or wrong", "path", r.URL.Path, "user", s.user)
			ui.renderError(w, r, http.StatusForbidden,
				"This form has expired or did not come from this page, so nothing was saved or sent. Reload the page and try again.")
			return
		}
		next(w, r)
	}
}
