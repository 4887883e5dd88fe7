package tlssuite_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

const (
	police1Password  = "pw-police-1-long"
	officer1Password = "pw-officer-1-long"
)

// authFunc lets a test bind the authenticator after the server is built
// (the auth service needs the env's store).
type authFunc func(ctx context.Context, name, pw string) (*tes.User, error)

func (f authFunc) Authenticate(ctx context.Context, name, pw string) (*tes.User, error) {
	return f(ctx, name, pw)
}

// newLoginEnv is an env whose server checks LOGIN with the real auth
// service (argon2id, throttling kept in the store) on the env's store.
func newLoginEnv(t *testing.T) (*env, *auth.Service) {
	t.Helper()
	var svc *auth.Service
	e := newEnv(t, func(c *tlssuite.Config) {
		c.Auth = authFunc(func(ctx context.Context, name, pw string) (*tes.User, error) { return svc.Authenticate(ctx, name, pw) })
	})
	svc = auth.New(e.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.Now = e.clock.Now
	ctx := context.Background()
	for name, pw := range map[string]string{"police1": police1Password, "officer1": officer1Password} {
		if err := svc.SetPassword(ctx, "test", name, pw, false); err != nil {
			t.Fatal(err)
		}
	}
	return e, svc
}

func replyText(err error) string {
	if re, ok := err.(*tes1.ReplyError); ok {
		return re.Text
	}
	if err == nil {
		return "OK"
	}
	return "not a reply: " + err.Error()
}

// TestLogin: a person proves their password on the device's connection;
// the answers are TES/1's texts, and a device cannot be used to try
// another account's password.
func TestLogin(t *testing.T) {
	e, _ := newLoginEnv(t)
	dev := e.mustEnroll()
	c := e.mustDial(dev)
	ctx := context.Background()

	for _, tc := range []struct {
		name, user, pw, want string
	}{
		{"the device's user, right password", "police1", police1Password, "OK"},
		{"the device's user, wrong password", "police1", "not-the-password", tes1.ReplyBadLogin},
		{"another user with that user's right password", "officer1", officer1Password, tes1.ReplyUnauthorized},
		{"an unknown user", "nobody", "whatever-password", tes1.ReplyUnauthorized},
		{"the device's user again", "police1", police1Password, "OK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replyText(c.Login(ctx, tc.user, tc.pw)); got != tc.want {
				t.Fatalf("Login(%s) = %s, want %s", tc.user, got, tc.want)
			}
		})
	}
	// Refused for another user before any password check: officer1's
	// account counted no failure.
	if u, err := e.store.User(ctx, "officer1"); err != nil || u.FailedLogins != 0 {
		t.Fatalf("officer1: %+v, %v: a LOGIN as another user must not reach the password check", u, err)
	}
	if !e.waitRefusal(tes1.ReplyUnauthorized + " (login as officer1)") {
		t.Fatalf("the refused LOGIN as officer1 was not reported: %v", e.refusals())
	}
	// The connection still carries reports after failed LOGINs.
	if err := c.Send(ctx, newReport("LOGIN1", 101)); err != nil {
		t.Fatalf("Send after LOGINs: %v", err)
	}
}

// TestLoginThrottled: the auth service's throttling applies to LOGIN over
// TLS: after repeated failures even the right password is answered "Too
// Many Attempts" until the lock passes.
func TestLoginThrottled(t *testing.T) {
	e, _ := newLoginEnv(t)
	c := e.mustDial(e.mustEnroll())
	ctx := context.Background()
	for i := 0; i < auth.FreeFailures; i++ {
		if got := replyText(c.Login(ctx, "police1", "wrong-password")); got != tes1.ReplyBadLogin {
			t.Fatalf("failure %d: %s, want %s", i+1, got, tes1.ReplyBadLogin)
		}
	}
	if got := replyText(c.Login(ctx, "police1", police1Password)); got != tes1.ReplyTooManyAttempts {
		t.Fatalf("right password while locked: %s, want %s", got, tes1.ReplyTooManyAttempts)
	}
	e.clock.Advance(auth.MaxLock + time.Second)
	if got := replyText(c.Login(ctx, "police1", police1Password)); got != "OK" {
		t.Fatalf("right password after the lock: %s, want OK", got)
	}
}

// TestLoginMalformed: LOGIN payloads are decoded strictly.
func TestLoginMalformed(t *testing.T) {
	e, _ := newLoginEnv(t)
	c := e.mustDial(e.mustEnroll())
	for _, payload := range []string{
		`not json`,
		`{"username":"police1","password":"` + police1Password + `","role":"admin"}`,
		`{"username":"police1","password":"` + police1Password + `"} {}`,
		`{"password":"` + police1Password + `"}`,
		`{"username":"police1","password":7}`,
	} {
		status, text, err := c.Request(context.Background(), tes1.TypeLogin, payload, "")
		if err != nil || status != tes1.StatusError || text != tes1.ReplyMalformed {
			t.Errorf("LOGIN %s: %s %q %v, want ERROR %q", payload, status, text, err, tes1.ReplyMalformed)
		}
	}
	if u, _ := e.store.User(context.Background(), "police1"); u.FailedLogins != 0 {
		t.Fatalf("malformed LOGINs counted %d failed sign-ins", u.FailedLogins)
	}
}

// TestLoginWithoutAuthenticator: a server built without one does not know
// LOGIN, and reports still need none.
func TestLoginWithoutAuthenticator(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial(e.mustEnroll())
	if got := replyText(c.Login(context.Background(), "police1", police1Password)); got != tes1.ReplyUnknownType {
		t.Fatalf("LOGIN without an authenticator: %s, want %s", got, tes1.ReplyUnknownType)
	}
	if err := c.Send(context.Background(), newReport("NOLOGIN1", 99)); err != nil {
		t.Fatalf("DATA without LOGIN: %v", err)
	}
}

// TestServerCertificate: the client exposes the certificate the server
// showed, which chains to the device's CA.
func TestServerCertificate(t *testing.T) {
	e := newEnv(t)
	dev := e.mustEnroll()
	c := e.mustDial(dev)
	cert := c.ServerCertificate()
	if cert == nil || cert.CheckSignatureFrom(dev.CA) != nil {
		t.Fatalf("server certificate %v does not chain to the device's CA", cert)
	}
}
