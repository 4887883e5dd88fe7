package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

const deviceSynopsis = `add --user NAME [--ttl 24h] [--addr HOST:PORT] | list | revoke ID | ca   [--data DIR]`

// runDevice manages the devices enrolled for the TLS suite.
func runDevice(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stderr, "Usage: tes device "+deviceSynopsis)
		if len(args) == 0 {
			return exitError{2, ""}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags(env, "device "+sub, deviceSynopsis)
	sc := storeFlags(fs, env)
	user := fs.String("user", "", "add: the police or admin account the device will report as")
	ttl := fs.Duration("ttl", enroll.DefaultTTL, "add: how long the join token stays valid (1m to 720h)")
	addr := fs.String("addr", env.Getenv("TES_TLS_ADDR"), "add: the TLS suite's address as devices reach it, put in the token (default: the running officer's, else this host's name and :9443) (env TES_TLS_ADDR)")
	var pos []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	need := map[string]int{"add": 0, "list": 0, "revoke": 1, "ca": 0}
	if n, ok := need[sub]; !ok {
		return exitError{2, fmt.Sprintf("unknown subcommand %q: use %s", sub, deviceSynopsis)}
	} else if len(pos) != n {
		return exitError{2, fmt.Sprintf("%s takes %d argument(s): tes device %s", sub, n, deviceSynopsis)}
	}
	if sub == "ca" {
		c, err := ca.LoadCert(sc.DataDir)
		if err != nil {
			return fmt.Errorf("no CA in %s (start `tes officer --data %s` once to create it): %w", sc.DataDir, sc.DataDir, err)
		}
		fmt.Fprintf(env.Stdout, "CA hash: %s\nSubject: %s\nValid:   %s to %s\n%s", ca.Hash(c), c.Subject.CommonName,
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		return nil
	}
	store, err := openStoreCmd(ctx, sc)
	if err != nil {
		return err
	}
	defer store.Close()
	devices, ok := store.(tes.DeviceStore)
	if !ok {
		return errors.New("this store does not keep devices")
	}
	actor := cliActor(env, "").Name
	switch sub {
	case "add":
		if *user == "" {
			return exitError{2, "--user is required: the account the device will report as"}
		}
		root, err := ca.Load(sc.DataDir)
		if err != nil {
			return fmt.Errorf("no CA in %s (start `tes officer --data %s` once to create it): %w", sc.DataDir, sc.DataDir, err)
		}
		a, note := *addr, ""
		if a == "" {
			a, note = tlsAddrHint(sc.DataDir)
		}
		svc := &enroll.Service{Devices: devices, Users: store, CA: root}
		tok, err := svc.Create(ctx, *user, actor, *ttl, a)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Device %s for user %s. Join token (single use, valid until %s):\n\n  %s\n\n",
			tok.ID, *user, tok.Expires.Local().Format("2006-01-02 15:04 MST"), tok)
		fmt.Fprintf(env.Stdout, "On the device run:  tes report --join TOKEN ...   or   tes police --join TOKEN\n")
		fmt.Fprintf(env.Stdout, "It checks the server's CA (%s) before sending anything.\n", tok.CAHash)
		if note != "" {
			fmt.Fprintln(env.Stderr, note)
		}
	case "list":
		list, err := devices.Devices(ctx)
		if err != nil {
			return err
		}
		tokens, err := devices.JoinTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tSTATE\tKEY\tSINCE")
		for _, d := range list {
			state, since := "active", d.EnrolledAt
			if d.Revoked() {
				state, since = "revoked by "+d.RevokedBy, d.RevokedAt
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.User, state, d.KeyFingerprint, since.Local().Format("2006-01-02 15:04"))
		}
		now := time.Now()
		for _, t := range tokens {
			if !t.UsedAt.IsZero() {
				continue // listed as a device
			}
			state, since := "waiting to enrol until "+t.ExpiresAt.Local().Format("2006-01-02 15:04"), t.CreatedAt
			switch {
			case !t.RevokedAt.IsZero():
				state, since = "cancelled", t.RevokedAt
			case !now.Before(t.ExpiresAt):
				state, since = "token expired", t.ExpiresAt
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, state, "-", since.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "revoke":
		if err := devices.RevokeDevice(ctx, pos[0], actor, time.Time{}); err != nil {
			if tes.ErrorCode(err) == tes.ECONFLICT {
				return exitError{3, userMessage(err)}
			}
			return err
		}
		fmt.Fprintf(env.Stdout, "Revoked device %s: the TLS suite refuses it from its next request on.\n", pos[0])
	}
	return nil
}

// tlsAddrHint guesses the TLS suite's address for a join token: the running
// officer's (from its runtime file), with this host's name for a wildcard
// address; else this host's name and :9443. The note says so.
func tlsAddrHint(dataDir string) (addr, note string) {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	var rt officer.Runtime
	b, err := os.ReadFile(filepath.Join(dataDir, officer.RuntimeFile))
	if err != nil || json.Unmarshal(b, &rt) != nil || rt.TLS == "" {
		return net.JoinHostPort(host, "9443"), "Note: no running officer found; the token names " + net.JoinHostPort(host, "9443") + " (pass --addr HOST:PORT to name another)."
	}
	h, port, err := net.SplitHostPort(rt.TLS)
	if err != nil {
		return rt.TLS, ""
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() || h == "" {
		return net.JoinHostPort(host, port), "Note: the officer listens on all addresses; the token names " + net.JoinHostPort(host, port) + " (pass --addr HOST:PORT to name another)."
	}
	return rt.TLS, ""
}

// defaultDeviceDir is where `tes report` keeps its device enrolment:
// $TES_DEVICE_DIR, else ~/.config/tes/device.
func defaultDeviceDir(env *Env) string {
	if v := env.Getenv("TES_DEVICE_DIR"); v != "" {
		return v
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "tes", "device")
}

// tlsFlags are `tes report`'s TLS-suite flags.
type tlsFlags struct {
	join, server, dir *string
	tls, allowLegacy  *bool
}

func addTLSFlags(fs *flag.FlagSet, env *Env) *tlsFlags {
	return &tlsFlags{
		join:        fs.String("join", env.Getenv("TES_JOIN"), "enrol this client as a device with a join token (tes device add), then report over the TLS suite (env TES_JOIN)"),
		server:      fs.String("tls-server", env.Getenv("TES_TLS_SERVER"), "the TLS suite's address, when not the one in the join token or the enrolment (env TES_TLS_SERVER)"),
		dir:         fs.String("device", defaultDeviceDir(env), "directory of this client's device enrolment (env TES_DEVICE_DIR)"),
		tls:         fs.Bool("tls", false, "report over the TLS suite with the enrolled device (no password)"),
		allowLegacy: fs.Bool("allow-legacy", false, "when this client is enrolled for the server's host but the TLS suite does not answer, fall back to TES/1 instead of refusing"),
	}
}

// enrolledFor returns the device enrolled for host(tes1Server), or nil.
func (f *tlsFlags) enrolledFor(tes1Server string) *tlssuite.Device {
	dev, err := tlssuite.LoadDevice(*f.dir)
	if err != nil {
		return nil
	}
	h, _, err := net.SplitHostPort(tes1Server)
	if err != nil {
		h = tes1Server
	}
	if dev.Host() != "" && dev.Host() == tlssuite.HostOf(h) {
		return dev
	}
	return nil
}

// wanted reports whether the TLS suite will be tried (then no --user and
// no password are needed).
func (f *tlsFlags) wanted(tes1Server string) bool {
	return *f.join != "" || *f.tls || f.enrolledFor(tes1Server) != nil
}

// dial decides the suite. It returns a TLS-suite client; or nil to use
// TES/1 (no enrolment for this host, or --allow-legacy after a loud
// warning); or an error, refusing to fall back to TES/1 silently when this
// client is enrolled for the server's host: a man-in-the-middle that blocks
// the TLS port must not be able to downgrade it.
func (f *tlsFlags) dial(ctx context.Context, env *Env, tes1Server, user string, timeout time.Duration) (*tlssuite.Client, error) {
	opt := tlssuite.Options{Addr: *f.server, Timeout: timeout}
	var dev *tlssuite.Device
	switch {
	case *f.join != "":
		d, err := tlssuite.EnrollWith(ctx, *f.join, *f.dir, opt)
		if err != nil {
			return nil, fmt.Errorf("enrol: %w", err)
		}
		fmt.Fprintf(env.Stderr, "Enrolled as device %s of user %s at %s (CA %s); enrolment in %s\n", d.ID, d.User, d.Addr, d.CAHash, d.Dir)
		dev = d
	case *f.tls:
		d, err := tlssuite.LoadDevice(*f.dir)
		if err != nil {
			return nil, fmt.Errorf("%w: enrol first with --join TOKEN (tes device add on the officer)", err)
		}
		dev = d
	default:
		if dev = f.enrolledFor(tes1Server); dev == nil {
			return nil, nil
		}
	}
	c, err := tlssuite.DialWith(ctx, dev, opt)
	if err == nil {
		fmt.Fprintf(env.Stderr, "Reporting over the TLS suite at %s as device %s (user %s)\n", c.Device().Addr, dev.ID, dev.User)
		return c, nil
	}
	if errors.Is(err, tlssuite.ErrDeviceRefused) {
		return nil, fmt.Errorf("%w. Nothing was sent; ask the officer (tes device list) and enrol again with a new join token if it was revoked", err)
	}
	if *f.join != "" || *f.tls || !*f.allowLegacy {
		return nil, fmt.Errorf("the TLS suite at %s failed: %w. Nothing was sent. This client is enrolled for %s (device %s), so it does not fall back to TES/1: "+
			"a man-in-the-middle may be blocking the TLS port. If you know the TLS suite is down and accept TES/1's weaker protection, pass --allow-legacy", dev.Addr, err, dev.Host(), dev.ID)
	}
	fmt.Fprintf(env.Stderr, "WARNING: the TLS suite at %s failed (%v); falling back to TES/1 (DES, self-asserted keys) at %s because of --allow-legacy\n", dev.Addr, err, tes1Server)
	if user == "" {
		return nil, exitError{2, "--user is required for TES/1 (a police or admin account)"}
	}
	return nil, nil
}

// sendTLS sends reports over c, reconnecting once on a broken connection (a
// resent report keeps its report_id, so it is stored once).
func sendTLS(ctx context.Context, env *Env, c *tlssuite.Client, reports []*tes.Report, lines []int) error {
	dev := c.Device()
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	t := &tally{env: env, lines: lines, total: len(reports)}
	for i, r := range reports {
		err := c.Send(ctx, r)
		var re *tes1.ReplyError
		if err != nil && !errors.As(err, &re) && tes.ErrorCode(err) != tes.EINVALID && ctx.Err() == nil { // a broken connection
			c.Close()
			nc, derr := tlssuite.Dial(ctx, "", dev)
			if c, err = nc, derr; err == nil {
				err = c.Send(ctx, r)
			}
		}
		if err == nil {
			t.ok(i, r, ", signed by device "+dev.ID)
			continue
		}
		t.fail(i, r, err)
		if c == nil || errors.Is(err, tlssuite.ErrDeviceRefused) {
			t.giveUp(i)
			break
		}
	}
	return t.result()
}
