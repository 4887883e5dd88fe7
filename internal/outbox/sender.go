package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// ConnState is what a Sender's protocol session is doing.
type ConnState string

// The connection states a Sender reports.
const (
	ConnConnecting  ConnState = "connecting"   // dialling, checking the key, signing in
	ConnOnline      ConnState = "online"       // signed in; reports go out at once
	ConnOffline     ConnState = "offline"      // the server is unreachable; retrying with backoff
	ConnKeyChanged  ConnState = "key-changed"  // the server shows another key than the pinned one: nothing is sent
	ConnLoginFailed ConnState = "login-failed" // the server refused the stored credentials: sign in again
	ConnStopped     ConnState = "stopped"      // signed out or shut down
	// ConnNoDowngrade: this client is enrolled for the server's host and
	// the TLS suite does not answer; TES/1 is not tried (no silent
	// downgrade). Retrying the TLS suite with backoff.
	ConnNoDowngrade ConnState = "no-downgrade"
	// ConnDeviceRevoked: the server refuses this client's device
	// certificate (revoked, or enrolled elsewhere): nothing is sent until
	// an admin enrols the client again.
	ConnDeviceRevoked ConnState = "device-revoked"
)

// Support says whether the server answers STATUS (report decisions). The
// original Python server does not.
type Support string

// The answers to "does the server tell decisions?".
const (
	SupportUnknown Support = ""
	SupportYes     Support = "yes"
	SupportNo      Support = "no"
)

// Status is a snapshot of a Sender, for the status panel.
type Status struct {
	State         ConnState
	Since         time.Time // when State was entered
	Fingerprint   string    // the server key of the last session ("SHA256:...")
	FirstUse      bool      // that key was pinned by this sender (trust on first use)
	Suite         ConnInfo  // the last session's suite, key and device (zero before the first)
	LastMessage   string    // the last reply or event, e.g. "OK: Message Queued for Processing (34ABC123)"
	LastMessageAt time.Time
	LastError     string             // why the last attempt failed, for people
	NextAttempt   time.Time          // offline: when the next connection attempt is due
	Changed       *pins.ChangedError // key-changed: both fingerprints and the pins file
	Decisions     Support
}

// SenderConfig configures a Sender. Outbox, Server and User are required,
// and Pins unless Dial is set.
type SenderConfig struct {
	Outbox *Outbox
	Server string // host:port of the officer's TES/1 suite; the outbox key and the pin's name
	User   string
	// Password signs in again after a reconnect, on suites that need it
	// (Loginer: TES/1). It is kept in memory only, for the sender's life,
	// and wiped when it stops: never written to disk.
	Password string
	Pins     *pins.File
	// Dial opens a session: which suite, and whether TES/1 may stand in
	// for the TLS suite, is decided there (NewDialer). nil means TES/1 to
	// Server, checking the key against Pins.
	Dial DialFunc
	// Conn, if set, is a session already open (and, on TES/1, signed in
	// as User): the web sign-in's. The sender takes it over and closes it
	// when it stops.
	Conn Conn
	// Client is Conn for a TES/1 client.
	Client *tes1.Client
	Log    *slog.Logger

	Timeout      time.Duration // per connect and per request; default 15 s
	MinBackoff   time.Duration // default DefaultMinBackoff
	MaxBackoff   time.Duration // default DefaultMaxBackoff
	PollInterval time.Duration // how often decisions are asked for (and the session kept alive); default 15 s
	StatusWait   time.Duration // how long to wait for a STATUS answer before deciding the server has none; default 5 s
	Lease        time.Duration // how long a claimed report is left to this sender; default 2 min
	Jitter       func() float64
	Now          func() time.Time
}

// Sender delivers one user's queued reports to one server over its own
// protocol session, and asks the server what became of them. Run it in the
// background (the web UI, one per browser session) or call Drain once
// (`tes report --outbox`).
type Sender struct {
	cfg      SenderConfig
	ob       *Outbox
	log      *slog.Logger
	password []byte
	kick     chan struct{}

	mu sync.Mutex
	c  Conn // written by the loop under mu; read under mu by interrupt
	st Status

	// Loop state, touched only by the goroutine in Run or Drain.
	failures  int
	retryAt   time.Time
	nextPoll  time.Time
	decisions Support
	// preferAt: a session that fell back to TES/1 is dropped at this time
	// so that the next connect tries the TLS suite again; zero otherwise.
	preferAt time.Time
}

// NewSender returns a sender for cfg; nothing happens until Run or Drain.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Outbox == nil || cfg.Server == "" || cfg.User == "" || cfg.Pins == nil && cfg.Dial == nil {
		return nil, errors.New("outbox: SenderConfig needs Outbox, Server, User, and Pins or Dial")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 15 * time.Second
	}
	if cfg.StatusWait <= 0 {
		cfg.StatusWait = 5 * time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = max(2*time.Minute, 2*cfg.Timeout)
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{cfg: cfg, ob: cfg.Outbox, password: []byte(cfg.Password), kick: make(chan struct{}, 1),
		log: cfg.Log.With("server", cfg.Server, "user", cfg.User)}
	s.cfg.Password = ""
	if s.cfg.Dial == nil {
		s.cfg.Dial = NewDialer(DialConfig{Server: cfg.Server, Pins: cfg.Pins, Timeout: cfg.Timeout, StatusWait: cfg.StatusWait})
	}
	if cfg.Conn == nil && cfg.Client != nil {
		cfg.Conn = NewTES1Conn(cfg.Client, cfg.StatusWait)
	}
	s.cfg.Conn, s.cfg.Client = nil, nil
	s.st = Status{State: ConnConnecting, Since: cfg.Now()}
	if cfg.Conn != nil {
		s.c = cfg.Conn
		s.st = Status{State: ConnOnline, Since: cfg.Now()}
		s.setInfo(cfg.Conn.Info())
		if s.st.Suite.Warning != "" {
			s.preferAt = cfg.Now().Add(s.cfg.MaxBackoff)
		}
	}
	return s, nil
}

// setInfo records the session's suite and key; the caller holds mu or owns s.
func (s *Sender) setInfo(info ConnInfo) {
	s.st.Suite = info
	s.st.Fingerprint, s.st.FirstUse = info.Fingerprint, s.st.FirstUse || info.FirstUse
}

// User returns the user the sender signs in as.
func (s *Sender) User() string { return s.cfg.User }

// Server returns the server the sender delivers to.
func (s *Sender) Server() string { return s.cfg.Server }

// Status returns a snapshot of the sender's state.
func (s *Sender) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Kick asks a running sender to retry now: a new report was queued, or the
// network is back. It never blocks.
func (s *Sender) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run delivers reports until ctx is cancelled, then closes the session and
// wipes the password. It keeps the session open (reconnecting with
// exponential backoff and jitter when it drops), sends every due report
// as soon as it is queued, and every PollInterval asks the server for the
// decisions on acknowledged reports, which also keeps the session alive.
// A changed server key stops all sending until the pin is forgotten (it is
// re-checked every MaxBackoff, sending nothing, not even the password); a
// refused sign-in stops the sender until the user signs in again; a
// refused device stops it for good (ConnDeviceRevoked). An unreachable
// TLS suite is retried like an unreachable server, never replaced by
// TES/1 unless the DialFunc allows it.
func (s *Sender) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()
	defer s.shutdown()
	if s.c != nil {
		s.online(ctx)
	}
	for ctx.Err() == nil {
		wait := s.step(ctx)
		t := time.NewTimer(max(wait, 5*time.Millisecond))
		select {
		case <-ctx.Done():
		case <-s.kick:
			s.retryNow(ctx)
		case <-t.C:
		}
		t.Stop()
	}
}

// Drain sends every undelivered report of the sender's user for its server
// now, over one session (reconnecting once if it breaks), and returns nil
// when none is left to send; refused reports are recorded and do not stop
// it. Otherwise it returns why it stopped (the server is unreachable or
// busy, the key changed, the sign-in was refused); what was not sent stays
// queued for a later run. Call Close afterwards.
func (s *Sender) Drain(ctx context.Context) error {
	if _, err := s.ob.RetryNow(ctx, s.cfg.User, s.cfg.Server, s.now()); err != nil {
		return err
	}
	reconnected := false
	for {
		due, err := s.ob.Due(ctx, s.cfg.User, s.cfg.Server, s.now(), 50)
		if err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		if s.c == nil {
			if err := s.connect(ctx); err != nil {
				s.fail(err)
				return err
			}
			s.online(ctx)
		}
		for _, e := range due {
			err := s.sendOne(ctx, e)
			var busy *busyError
			if errors.As(err, &busy) {
				return fmt.Errorf("the server is busy (%s)", busy.text)
			} else if err != nil {
				s.disconnect()
				if reconnected || ctx.Err() != nil {
					s.fail(err)
					return err
				}
				reconnected = true
				break
			}
		}
	}
}

// Close closes the session of a sender that is not running (after Drain)
// and wipes the password. A running sender is stopped by cancelling Run's
// context.
func (s *Sender) Close() error {
	s.shutdown()
	return nil
}

func (s *Sender) shutdown() {
	s.disconnect()
	clear(s.password)
	s.mu.Lock()
	s.st.State, s.st.Since = ConnStopped, s.now()
	s.mu.Unlock()
}

// interrupt closes the connection so that a read blocked in the loop
// returns at once when the sender is stopped.
func (s *Sender) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		s.c.Close()
	}
}

func (s *Sender) now() time.Time { return s.cfg.Now() }

// step does what is due now and returns how long to wait before the next
// step.
func (s *Sender) step(ctx context.Context) time.Duration {
	if s.stopped() {
		return time.Hour
	}
	if s.c == nil {
		if d := s.retryAt.Sub(s.now()); d > 0 {
			return d
		}
		if err := s.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			s.fail(err)
			return s.retryAt.Sub(s.now())
		}
		s.online(ctx)
	}
	if err := s.sendDue(ctx); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		s.disconnect()
		s.fail(err)
		return s.retryAt.Sub(s.now())
	}
	if !s.now().Before(s.nextPoll) {
		if err := s.poll(ctx); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			s.disconnect()
			s.fail(err)
			return s.retryAt.Sub(s.now())
		}
	}
	if s.c == nil { // the STATUS probe found an original server: reconnect now
		return 0
	}
	if !s.preferAt.IsZero() && !s.now().Before(s.preferAt) {
		// A fallback session: try the preferred suite again.
		s.disconnect()
		s.retryAt = time.Time{}
		return 0
	}
	wait := s.nextPoll.Sub(s.now())
	if !s.preferAt.IsZero() {
		wait = min(wait, s.preferAt.Sub(s.now()))
	}
	if t, ok, err := s.ob.NextDue(ctx, s.cfg.User, s.cfg.Server); err == nil && ok {
		wait = min(wait, t.Sub(s.now()))
	}
	return wait
}

// retryNow handles a kick: connect at once and make every queued report due.
func (s *Sender) retryNow(ctx context.Context) {
	if s.stopped() {
		// Nothing is tried; a report queued since says why it waits.
		now := s.now()
		if _, err := s.ob.Postpone(ctx, s.cfg.User, s.cfg.Server, s.Status().LastError, now, now); err != nil && ctx.Err() == nil {
			s.log.Error("outbox postpone", "err", err)
		}
		return
	}
	s.retryAt = time.Time{}
	if _, err := s.ob.RetryNow(ctx, s.cfg.User, s.cfg.Server, s.now()); err != nil && ctx.Err() == nil {
		s.log.Error("outbox retry now", "err", err)
	}
}

// stopped reports whether the sender has stopped trying until someone acts:
// the sign-in or the device was refused.
func (s *Sender) stopped() bool {
	st := s.Status().State
	return st == ConnLoginFailed || st == ConnDeviceRevoked
}

// connect dials (the DialFunc checks the server's key or certificate
// before anything else is sent) and, on a suite that needs it, signs in.
func (s *Sender) connect(ctx context.Context) error {
	// A retry keeps showing why the last attempt failed until one succeeds.
	if st := s.Status().State; st != ConnOffline && st != ConnKeyChanged && st != ConnNoDowngrade {
		s.setState(ConnConnecting, nil)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, err := s.cfg.Dial(dctx)
	if err != nil {
		return err
	}
	if l, ok := c.(Loginer); ok {
		if len(s.password) == 0 {
			c.Close()
			return &loginError{err: errors.New("no password"), text: tes1.ReplyBadLogin}
		}
		if err := l.Login(dctx, s.cfg.User, string(s.password)); err != nil {
			c.Close()
			var re *tes1.ReplyError
			if errors.As(err, &re) {
				return &loginError{err: err, text: re.Text}
			}
			return err
		}
	}
	info := c.Info()
	s.mu.Lock()
	if ctx.Err() != nil {
		s.mu.Unlock()
		c.Close()
		return ctx.Err()
	}
	s.c = c
	s.setInfo(info)
	s.mu.Unlock()
	s.preferAt = time.Time{}
	if info.Warning != "" {
		s.preferAt = s.now().Add(s.cfg.MaxBackoff)
	}
	if info.FirstUse {
		s.log.Info("pinned the server key on first use", "fingerprint", info.Fingerprint)
	}
	if info.Warning != "" {
		s.log.Warn("connected over the legacy suite", "suite", info.Suite, "warning", info.Warning)
	}
	return nil
}

// online is entered after every successful sign-in: reports waiting for a
// backoff become due at once ("retry now on reconnect") and decisions are
// asked for at once.
func (s *Sender) online(ctx context.Context) {
	s.failures = 0
	s.nextPoll = s.now()
	s.setState(ConnOnline, nil)
	if n, err := s.ob.RetryNow(ctx, s.cfg.User, s.cfg.Server, s.now()); err != nil {
		s.log.Error("outbox retry now", "err", err)
	} else if n > 0 {
		s.log.Info("connected; sending queued reports", "queued", n)
	}
}

func (s *Sender) disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// fail records a failed connection or session: the state (offline,
// key-changed, login-failed), the next attempt after a backoff, and the
// reason on every report that was due.
func (s *Sender) fail(err error) {
	s.failures++
	state := ConnOffline
	var changed *pins.ChangedError
	var le *loginError
	var down *DowngradeRefusedError
	switch {
	case errors.As(err, &changed):
		state = ConnKeyChanged
		s.failures = max(s.failures, 64) // re-check once every MaxBackoff
	case errors.As(err, &le) && le.fatal():
		state = ConnLoginFailed
	case errors.Is(err, tlssuite.ErrDeviceRefused):
		state = ConnDeviceRevoked
	case errors.As(err, &down):
		state = ConnNoDowngrade
	}
	now := s.now()
	s.retryAt = now.Add(Backoff(s.failures, s.cfg.MinBackoff, s.cfg.MaxBackoff, s.cfg.Jitter()))
	msg := Describe(err)
	s.mu.Lock()
	if s.st.State != state {
		s.st.Since = now
	}
	s.st.State, s.st.LastError, s.st.NextAttempt, s.st.Changed = state, msg, s.retryAt, changed
	s.mu.Unlock()
	// Background context: the reason is recorded even while stopping.
	bctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, perr := s.ob.Postpone(bctx, s.cfg.User, s.cfg.Server, msg, now, s.retryAt); perr != nil {
		s.log.Error("outbox postpone", "err", perr)
	}
	s.log.Warn("not connected", "state", state, "err", err, "retry_in", s.retryAt.Sub(now).Round(time.Millisecond))
}

func (s *Sender) setState(state ConnState, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.State != state {
		s.st.Since = s.now()
	}
	s.st.State = state
	if state == ConnOnline {
		s.st.LastError, s.st.Changed, s.st.NextAttempt = "", nil, time.Time{}
	}
	if err != nil {
		s.st.LastError = Describe(err)
	}
}

func (s *Sender) message(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.LastMessage, s.st.LastMessageAt = fmt.Sprintf(format, args...), s.now()
}

// sendDue sends every due report, oldest first. It returns a transport
// error (the caller drops the session); a busy server ends the round
// without one, the reports it refused to take being due again later.
func (s *Sender) sendDue(ctx context.Context) error {
	for ctx.Err() == nil {
		due, err := s.ob.Due(ctx, s.cfg.User, s.cfg.Server, s.now(), 50)
		if err != nil {
			s.log.Error("outbox due", "err", err)
			return nil
		}
		if len(due) == 0 {
			return nil
		}
		for _, e := range due {
			err := s.sendOne(ctx, e)
			var busy *busyError
			if errors.As(err, &busy) {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	return nil
}

// busyError is an ERROR reply that asks the client to come back later:
// the report was not stored and is sent again after a backoff.
type busyError struct{ text string }

func (e *busyError) Error() string { return "server busy: " + e.text }

// transientReply reports whether an ERROR reply means "not now" rather
// than "never": the report is kept queued.
func transientReply(text string) bool {
	return text == tes1.ReplyBusy || text == tes1.ReplyUnavailable || text == tes1.ReplyShuttingDown
}

// sendOne claims e, sends it and records the outcome. Outcomes are written
// with a context that outlives ctx, so an acknowledgement received while
// stopping is not lost.
func (s *Sender) sendOne(ctx context.Context, e *Entry) error {
	now := s.now()
	ok, err := s.ob.Claim(ctx, e.ID, now, s.cfg.Lease)
	if err != nil || !ok {
		return nil
	}
	attempts := e.Attempts + 1
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	err = s.c.Send(rctx, e.Report())
	cancel()
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer bcancel()
	var re *tes1.ReplyError
	switch {
	case err == nil:
		if aerr := s.ob.Acknowledge(bctx, e.ID, s.now()); aerr != nil {
			s.log.Error("outbox acknowledge", "report_id", e.ReportID, "err", aerr)
		}
		s.message("OK: %s (%s, %d km/h)", tes1.ReplyQueued, e.Plate, e.Speed)
		s.log.Info("report acknowledged", "report_id", e.ReportID, "attempts", attempts)
		return nil
	case errors.As(err, &re) && transientReply(re.Text):
		next := s.now().Add(Backoff(attempts, s.cfg.MinBackoff, s.cfg.MaxBackoff, s.cfg.Jitter()))
		if rerr := s.ob.Retry(bctx, e.ID, "The server asked to retry later: "+re.Text, next); rerr != nil {
			s.log.Error("outbox retry", "report_id", e.ReportID, "err", rerr)
		}
		s.message("ERROR: %s", re.Text)
		if re.Text == tes1.ReplyShuttingDown {
			return err
		}
		return &busyError{text: re.Text}
	case errors.As(err, &re):
		if rerr := s.ob.Refuse(bctx, e.ID, re.Text); rerr != nil {
			s.log.Error("outbox refuse", "report_id", e.ReportID, "err", rerr)
		}
		s.message("ERROR: %s (%s)", re.Text, e.Plate)
		s.log.Warn("report refused by the server", "report_id", e.ReportID, "reply", re.Text)
		return nil
	}
	// The connection broke: the server may or may not have stored it. Due
	// again now; the caller's backoff postpones it, and the resend carries
	// the same report_id, so the server stores it at most once.
	if rerr := s.ob.Retry(bctx, e.ID, Describe(err), s.now()); rerr != nil {
		s.log.Error("outbox retry", "report_id", e.ReportID, "err", rerr)
	}
	return err
}

// poll asks the server what became of acknowledged reports. The request
// doubles as a keep-alive that finds a dead session before a report does.
// Against a server without STATUS (the original) it stops asking.
func (s *Sender) poll(ctx context.Context) error {
	s.nextPoll = s.now().Add(s.cfg.PollInterval)
	if s.decisions == SupportNo {
		return nil
	}
	ids, err := s.ob.Undecided(ctx, s.cfg.User, s.cfg.Server, tes1.MaxStatusIDs)
	if err != nil {
		s.log.Error("outbox undecided", "err", err)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	list, err := s.c.Statuses(rctx, ids)
	cancel()
	var re *tes1.ReplyError
	switch {
	case errors.Is(err, tes1.ErrStatusUnsupported):
		s.decisions = SupportNo
		s.mu.Lock()
		s.st.Decisions = SupportNo
		s.mu.Unlock()
		s.log.Info("the server does not tell decisions (an original TES server?); not asking again")
		s.disconnect() // Statuses may have closed it; sign in again at once
		s.retryAt = time.Time{}
		return nil
	case errors.As(err, &re):
		s.log.Warn("status request refused", "reply", re.Text)
		return nil
	case err != nil:
		return err
	}
	s.decisions = SupportYes
	s.mu.Lock()
	s.st.Decisions = SupportYes
	s.mu.Unlock()
	for _, st := range list {
		if st.Status == tes.StatusPending {
			continue
		}
		if err := s.ob.Decide(ctx, st); err != nil && tes.ErrorCode(err) != tes.ECONFLICT {
			s.log.Error("outbox decide", "report_id", st.ReportID, "err", err)
		} else if err == nil {
			if e, err := s.ob.Get(ctx, st.ReportID); err == nil {
				s.message("Decision: %s %s", e.Plate, strings.ToLower(string(st.Status)))
			}
		}
	}
	return nil
}

// loginError is a sign-in the server answered with ERROR.
type loginError struct {
	err  error
	text string
}

func (e *loginError) Error() string { return "sign-in refused: " + e.text }
func (e *loginError) Unwrap() error { return e.err }

// fatal reports whether retrying the sign-in is pointless or harmful (it
// would count towards locking the account).
func (e *loginError) fatal() bool {
	return e.text == tes1.ReplyBadLogin || e.text == tes1.ReplyTooManyAttempts || e.text == tes1.ReplyUnauthorized
}

// Describe turns a sending error into a sentence for the people who see
// the status panel or the command's output.
func Describe(err error) string {
	var changed *pins.ChangedError
	var le *loginError
	var re *tes1.ReplyError
	var down *DowngradeRefusedError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &changed):
		return "The officer server's key has CHANGED since it was pinned. Nothing is sent to it until an administrator checks the new key and re-pins it."
	case errors.Is(err, tlssuite.ErrDeviceRefused):
		return "Device revoked: ask an admin to enrol this client again. The officer server refuses this client's device certificate, so nothing is sent; reports stay queued on this device."
	case errors.As(err, &down):
		return "TLS suite unreachable (" + shortNetError(down.Err) + "); not falling back to TES/1 (the legacy suite) — use --allow-legacy to permit it. Reports stay queued on this device."
	case errors.As(err, &le):
		switch le.text {
		case tes1.ReplyBadLogin:
			return "The server refused the sign-in: wrong user name or password. Sign in again."
		case tes1.ReplyTooManyAttempts:
			return "The server refused the sign-in: too many failed attempts. Wait a while, then sign in again."
		}
		return "The server refused the sign-in: " + le.text
	case errors.As(err, &re):
		return "The server answered: " + re.Text
	case errors.Is(err, syscall.ECONNREFUSED):
		return "The officer server is unreachable (connection refused). Reports stay queued on this device."
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return "The connection to the officer server was lost. Reports stay queued on this device."
	case errors.As(err, &ne) && ne.Timeout():
		return "The officer server did not answer in time. Reports stay queued on this device."
	case errors.As(err, &ne):
		return "The officer server is unreachable (" + shortNetError(err) + "). Reports stay queued on this device."
	}
	return "Sending failed: " + err.Error()
}

// shortNetError keeps the last part of a net error ("no route to host").
func shortNetError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
