package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/policeui"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// Exit code of `tes report --outbox` when reports are safely queued but
// not yet delivered (EX_TEMPFAIL): run again later.
const exitQueued = 75

const policeSynopsis = "[--server HOST:PORT] [--http ADDR] [--data DIR] [--pins FILE] [--join TOKEN] [--tls-server HOST:PORT] [--allow-legacy]\n       tes police pins list | forget HOST:PORT  [--data DIR] [--pins FILE]"

// policeOptions configure one police web client.
type policeOptions struct {
	server string // the sign-in form's default officer server
	http   string // listen address
	data   string // outbox and pins
	pins   string // default DATA/known_servers
	log    *slog.Logger

	// The TLS suite: DATA/device holds the enrolment.
	join        string // a join token to enrol with first
	tlsServer   string // overrides the TLS suite's address
	allowLegacy bool   // an enrolled client may fall back to TES/1 when the TLS suite does not answer
	out         io.Writer
}

func addPoliceDataFlags(fs *flag.FlagSet, env *Env, o *policeOptions) {
	fs.StringVar(&o.data, "data", envOr(env, "TES_POLICE_DATA", "tes-police"), "data directory: the outbox of reports, the pinned server keys and the device enrolment in DATA/device (env TES_POLICE_DATA)")
	fs.StringVar(&o.pins, "pins", "", "known-servers file (default DATA/known_servers)")
}

// deviceDir is where the police client keeps its device enrolment: the
// Ed25519 key is made there and never leaves it.
func (o *policeOptions) deviceDir() string { return filepath.Join(o.data, "device") }

func (o *policeOptions) pinsFile() string {
	if o.pins != "" {
		return o.pins
	}
	return filepath.Join(o.data, "known_servers")
}

// runPolice runs the police web client, or `tes police pins ...`.
func runPolice(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && args[0] == "pins" {
		return runPolicePins(env, args[1:])
	}
	fs := newFlags(env, "police", policeSynopsis)
	var o policeOptions
	fs.StringVar(&o.server, "server", envOr(env, "TES_SERVER", "127.0.0.1:9999"), "officer server's TES/1 address, the sign-in form's default (env TES_SERVER)")
	fs.StringVar(&o.http, "http", envOr(env, "TES_POLICE_HTTP", ":5000"), "address of the web client (env TES_POLICE_HTTP)")
	addPoliceDataFlags(fs, env, &o)
	fs.StringVar(&o.join, "join", env.Getenv("TES_JOIN"), "enrol this client as a device with a join token (tes device add --user NAME); from then on it reports to that server's host over the TLS suite (env TES_JOIN)")
	fs.StringVar(&o.tlsServer, "tls-server", env.Getenv("TES_TLS_SERVER"), "the TLS suite's address, when not the one in the join token or the enrolment (env TES_TLS_SERVER)")
	fs.BoolVar(&o.allowLegacy, "allow-legacy", false, "when this client is enrolled for the server's host but the TLS suite does not answer, fall back to TES/1 (with a warning) instead of keeping reports queued")
	logFormat := fs.String("log-format", envOr(env, "TES_LOG_FORMAT", "text"), "log format: text or json")
	logLevel := fs.String("log-level", envOr(env, "TES_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Sprintf("unexpected argument %q (see --help)", fs.Arg(0))}
	}
	if o.http == "" {
		return exitError{2, "--http is empty: give the address to serve the web client on, e.g. :5000"}
	}
	log, err := newLogger(env.Stderr, *logFormat, *logLevel)
	if err != nil {
		return exitError{2, err.Error()}
	}
	o.log, o.out = log, env.Stdout
	p, err := startPolice(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Police client on %s (officer server %s; outbox in %s)\n", browserURL(p.addr.String()), o.server, p.ob.Path())
	if d := p.device; d != nil {
		fmt.Fprintf(env.Stdout, "Device %s of user %s: sign-ins to %s use the TLS suite at %s (CA %s)", d.ID, d.User, d.Host(), d.Addr, d.CAHash)
		if o.allowLegacy {
			fmt.Fprintln(env.Stdout, "; --allow-legacy: falls back to TES/1 with a warning when it does not answer")
		} else {
			fmt.Fprintln(env.Stdout, "; never falls back to TES/1")
		}
	}
	fmt.Fprintln(env.Stdout, "Passwords are kept in memory only: after a restart, queued reports are sent when their officer signs in again.")
	return p.wait()
}

// runningPolice is a police web client serving until its context ends.
type runningPolice struct {
	addr   net.Addr
	ob     *outbox.Outbox
	device *tlssuite.Device // nil: not enrolled
	done   chan error
}

// policeDevice enrols the client with o.join when given (a restart with
// the token of the enrolment already made is no error) and loads the
// enrolment in DATA/device; nil when there is none.
func policeDevice(ctx context.Context, o policeOptions) (*tlssuite.Device, error) {
	dir := o.deviceDir()
	if o.join != "" {
		tok, err := enroll.Parse(o.join)
		if err != nil {
			return nil, exitError{2, "--join: " + err.Error()}
		}
		if dev, err := tlssuite.LoadDevice(dir); err == nil {
			if dev.ID != tok.ID {
				return nil, exitError{2, fmt.Sprintf("%s already holds the enrolment of device %s (user %s); remove that directory to enrol this client again, or drop --join", dir, dev.ID, dev.User)}
			}
			o.log.Info("already enrolled with this join token", "device", dev.ID)
		} else if !errors.Is(err, tlssuite.ErrNotEnrolled) {
			return nil, err
		} else {
			dev, err := tlssuite.EnrollWith(ctx, o.join, dir, tlssuite.Options{Addr: o.tlsServer})
			if err != nil {
				return nil, fmt.Errorf("enrol with the join token: %w", err)
			}
			o.log.Info("enrolled as a device", "device", dev.ID, "user", dev.User, "tls", dev.Addr, "ca", dev.CAHash, "dir", dir)
			if o.out != nil {
				fmt.Fprintf(o.out, "Enrolled as device %s of user %s at %s (CA %s); enrolment in %s\n", dev.ID, dev.User, dev.Addr, dev.CAHash, dir)
			}
		}
	}
	dev, err := tlssuite.LoadDevice(dir)
	if errors.Is(err, tlssuite.ErrNotEnrolled) {
		if o.allowLegacy {
			o.log.Warn("--allow-legacy has no effect: this client is not enrolled as a device", "dir", dir)
		}
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("device enrolment: %w", err)
	}
	return dev, nil
}

// startPolice opens the outbox, prunes finished reports past retention,
// binds the listener and serves until ctx is cancelled; then it signs
// every session out (closing the protocol sessions) and closes the outbox.
func startPolice(ctx context.Context, o policeOptions) (*runningPolice, error) {
	dev, err := policeDevice(ctx, o)
	if err != nil {
		return nil, err
	}
	ob, err := outbox.Open(ctx, filepath.Join(o.data, outbox.FileName))
	if err != nil {
		return nil, err
	}
	if n, err := ob.Prune(ctx, time.Now().Add(-outbox.DefaultRetention)); err != nil {
		o.log.Warn("prune the outbox", "err", err)
	} else if n > 0 {
		o.log.Info("pruned finished reports past retention", "reports", n, "retention", outbox.DefaultRetention)
	}
	ui, err := policeui.New(policeui.Config{Outbox: ob, Pins: pins.Open(o.pinsFile()), DefaultServer: o.server, Log: o.log,
		Device: dev, TLSAddr: o.tlsServer, AllowLegacy: o.allowLegacy})
	if err != nil {
		ob.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		ui.Close()
		ob.Close()
		return nil, fmt.Errorf("listen for the police client on %s: %w (pick another --http)", o.http, err)
	}
	hs := &http.Server{Handler: ui.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelWarn)}
	p := &runningPolice{addr: ln.Addr(), ob: ob, device: dev, done: make(chan error, 1)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	go func() {
		var err error
		select {
		case <-ctx.Done():
		case err = <-served:
			o.log.Error("police client stopped serving", "err", err)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		hs.Shutdown(sctx)
		cancel()
		ui.Close()
		ob.Close()
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		p.done <- err
	}()
	return p, nil
}

// wait blocks until the client has stopped and closed its outbox.
func (p *runningPolice) wait() error { return <-p.done }

// runPolicePins lists the police client's pinned server keys or forgets
// one, so that the next connection pins the key the server now shows.
func runPolicePins(env *Env, args []string) error {
	fs := newFlags(env, "police pins", "list | forget HOST:PORT  [--data DIR] [--pins FILE]")
	var o policeOptions
	addPoliceDataFlags(fs, env, &o)
	var pos []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	p := pins.Open(o.pinsFile())
	switch {
	case len(pos) == 1 && pos[0] == "list":
		list, err := p.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tFINGERPRINT\tFIRST SEEN")
		for _, x := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Server, x.Fingerprint, x.FirstSeen.Local().Format(time.RFC3339))
		}
		return tw.Flush()
	case len(pos) == 2 && pos[0] == "forget":
		if err := p.Forget(pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Forgot the key of %s in %s. The police client pins the key the server shows at its next attempt (within a minute), then sends the reports queued for it.\n", pos[1], p.Path)
		return nil
	}
	return exitError{2, "usage: tes police pins list | tes police pins forget HOST:PORT  [--data DIR] [--pins FILE]"}
}

// sendViaOutbox is `tes report --outbox DIR`: the reports are committed to
// the outbox first, then the outbox is drained, sending with them whatever
// earlier runs left queued for this user and server. It succeeds only when
// every report of this run was acknowledged; reports that could not be
// sent stay queued for a later run (exit 75), refused ones are reported
// (exit 1).
func sendViaOutbox(ctx context.Context, env *Env, dir, server, user, password, pinsFile string, timeout time.Duration,
	dial outbox.DialFunc, reports []*tes.Report, lines []int) error {
	ob, err := outbox.Open(ctx, filepath.Join(dir, outbox.FileName))
	if err != nil {
		return err
	}
	defer ob.Close()
	earlier, err := ob.Due(ctx, user, server, time.Now().Add(100*365*24*time.Hour), 1_000_000)
	if err != nil {
		return err
	}
	entries := make([]*outbox.Entry, 0, len(reports))
	for _, r := range reports {
		e, err := ob.Enqueue(ctx, user, server, r)
		if tes.ErrorCode(err) == tes.ECONFLICT && e != nil && e.User == user && e.Server == server {
			err = nil // the same report_id again (a CSV sent twice): it is in the outbox once
		}
		if err != nil {
			return fmt.Errorf("queue %s: %w (%d report(s) were queued before it)", r.Plate, err, len(entries))
		}
		entries = append(entries, e)
	}

	s, err := outbox.NewSender(outbox.SenderConfig{Outbox: ob, Server: server, User: user, Password: password,
		Pins: pins.Open(pinsFile), Timeout: timeout, Dial: dial,
		Log: slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return err
	}
	derr := s.Drain(ctx)
	st := s.Status()
	s.Close()
	if st.FirstUse {
		fmt.Fprintf(env.Stderr, "Pinned the key of %s: %s (in %s)\n", server, st.Fingerprint, pinsFile)
	}

	queued, refused := 0, 0
	for i, e := range entries {
		where := ""
		if lines[i] > 0 {
			where = fmt.Sprintf("line %d: ", lines[i])
		}
		got, err := ob.Get(ctx, e.ReportID)
		if err != nil {
			return err
		}
		switch {
		case got.State.Pending():
			queued++
			fmt.Fprintf(env.Stderr, "QUEUED %s%s %d km/h (report %s)\n", where, got.Plate, got.Speed, got.ReportID)
		case got.State == outbox.StateRefused:
			refused++
			fmt.Fprintf(env.Stderr, "FAILED %s%s %d km/h: refused by the server: %s\n", where, got.Plate, got.Speed, got.LastError)
		default:
			fmt.Fprintf(env.Stdout, "ok %s%s %d km/h (report %s)\n", where, got.Plate, got.Speed, got.ReportID)
		}
	}
	delivered := 0
	for _, e := range earlier {
		if got, err := ob.Get(ctx, e.ReportID); err == nil && !got.State.Pending() && got.State != outbox.StateRefused {
			delivered++
		}
	}
	if delivered > 0 {
		fmt.Fprintf(env.Stdout, "also delivered %d report(s) queued by an earlier run\n", delivered)
	}
	if derr != nil {
		var changed *pins.ChangedError
		if errors.As(derr, &changed) {
			fmt.Fprintln(env.Stderr, changed.Error())
		} else {
			fmt.Fprintln(env.Stderr, "Not sent: "+outbox.Describe(derr))
		}
	}
	waiting, err := ob.Due(ctx, user, server, time.Now().Add(100*365*24*time.Hour), 1_000_000)
	if err != nil {
		return err
	}
	switch {
	case refused > 0:
		return exitError{1, fmt.Sprintf("%d of %d report(s) were refused by the server; %d report(s) remain queued in %s", refused, len(entries), len(waiting), dir)}
	case queued > 0:
		return exitError{exitQueued, fmt.Sprintf("%d of %d report(s) were NOT delivered yet and remain queued in %s (%d in all for %s at %s); they are safe, and a later run of tes report --outbox %s will deliver them",
			queued, len(entries), dir, len(waiting), user, server, dir)}
	}
	if len(entries) > 1 {
		fmt.Fprintf(env.Stdout, "all %d reports acknowledged\n", len(entries))
	}
	return nil
}
