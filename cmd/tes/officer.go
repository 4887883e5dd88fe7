package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/tes-traffic/tes/internal/gctune"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/officerui"
	"github.com/tes-traffic/tes/internal/postgres"
)

// storeFlags adds --data, --db and --store-key-file, defaulting from
// TES_DATA, TES_DB and TES_STORE_KEY_FILE.
func storeFlags(fs *flag.FlagSet, env *Env) *officer.StoreConfig {
	c := &officer.StoreConfig{}
	fs.StringVar(&c.DataDir, "data", envOr(env, "TES_DATA", "tes-data"), "data directory: database, keys, initial admin password (env TES_DATA)")
	fs.StringVar(&c.DB, "db", env.Getenv("TES_DB"), "database: empty for SQLite in the data directory, sqlite:PATH, or postgres://USER@HOST/DB shared by several nodes (env TES_DB)")
	fs.StringVar(&c.KeyFile, "store-key-file", env.Getenv("TES_STORE_KEY_FILE"), "at-rest key file (default DATA/store.key, created at first start) (env TES_STORE_KEY_FILE)")
	return c
}

type officerFlags struct {
	store                            *officer.StoreConfig
	listen, http                     string
	logFormat, logLevel              string
	maxConns, maxPerIP, maxHandshake int
	handshakeTimeout, idleTimeout    time.Duration
	loginCacheTTL                    time.Duration
	replaceIdentity                  bool
	httpSecure                       bool
	threshold                        int
	metricsAllow                     string
	listenTLS                        string
	legacy                           bool
	gcHeadroom                       uint64
}

func addOfficerFlags(fs *flag.FlagSet, env *Env) *officerFlags {
	f := &officerFlags{store: storeFlags(fs, env)}
	fs.StringVar(&f.listen, "listen", envOr(env, "TES_LISTEN", ":9999"), "TES/1 address for police clients (env TES_LISTEN)")
	fs.StringVar(&f.http, "http", envOr(env, "TES_HTTP", ":5001"), "dashboard and /healthz address (env TES_HTTP)")
	fs.StringVar(&f.listenTLS, "listen-tls", envOr(env, "TES_LISTEN_TLS", ":9443"), "TLS 1.3 suite address for enrolled devices, empty for none (env TES_LISTEN_TLS)")
	fs.BoolVar(&f.legacy, "legacy", envOr(env, "TES_LEGACY", "true") != "false", "serve TES/1 (DES/RSA) on --listen for the original clients; --legacy=false turns it off (env TES_LEGACY)")
	fs.StringVar(&f.logFormat, "log-format", envOr(env, "TES_LOG_FORMAT", "text"), "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", envOr(env, "TES_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	fs.IntVar(&f.maxConns, "max-conns", 20000, "most open TES/1 connections")
	fs.IntVar(&f.maxPerIP, "max-conns-per-ip", 2000, "most open TES/1 connections from one IP address")
	fs.IntVar(&f.maxHandshake, "max-handshakes", 0, "most SESSION (RSA) decryptions at once (default 2 x CPUs)")
	fs.DurationVar(&f.handshakeTimeout, "handshake-timeout", 15*time.Second, "time from connect to a successful LOGIN")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 5*time.Minute, "time a logged-in connection may stay silent")
	fs.BoolVar(&f.replaceIdentity, "replace-identity", false, "accept this data directory's TES/1 key and TLS CA although the store records others (only after a key was lost for good: clients must re-pin, devices re-enrol)")
	fs.DurationVar(&f.loginCacheTTL, "login-cache-ttl", 10*time.Minute, "how long a verified password lets the same user sign in again without the argon2id check (reconnecting units); 0 checks every sign-in in full")
	fs.BoolVar(&f.httpSecure, "http-secure", false, "the dashboard is reached over HTTPS (a TLS proxy in front): mark cookies Secure, send HSTS")
	fs.StringVar(&f.metricsAllow, "metrics-allow", "127.0.0.0/8,::1/128", "networks (CIDR, comma-separated) that may read /metrics")
	fs.IntVar(&f.threshold, "points-threshold", 0, "driver points at or over which the records page highlights a driver (default 100)")
	fs.Uint64Var(&f.gcHeadroom, "gc-headroom", 64, "MiB the heap may grow past its live data before the garbage collector runs (raises GOGC while the live heap is small; 0, or GOGC or GOMEMLIMIT in the environment, leaves Go's default)")
	return f
}

func (f *officerFlags) config(env *Env) (officer.Config, error) {
	log, err := newLogger(env.Stderr, f.logFormat, f.logLevel)
	if err != nil {
		return officer.Config{}, err
	}
	var allow []netip.Prefix
	for _, c := range strings.Split(f.metricsAllow, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return officer.Config{}, fmt.Errorf("--metrics-allow %q: %v (use CIDRs like 10.0.0.0/8)", c, err)
		}
		allow = append(allow, p)
	}
	if f.gcHeadroom > 1<<20 {
		return officer.Config{}, fmt.Errorf("--gc-headroom %d is in MiB: more than 1 TiB is not a headroom (64 is the default, 0 leaves Go's collector alone)", f.gcHeadroom)
	}
	listen := f.listen
	if !f.legacy {
		listen = "" // TES/1 off: --listen is not used
	}
	if listen == "" && f.http == "" && f.listenTLS == "" {
		return officer.Config{}, fmt.Errorf("--listen (or --legacy=false), --listen-tls and --http are all empty: nothing to serve")
	}
	return officer.Config{
		Store: *f.store, Listen: listen, ListenTLS: f.listenTLS, HTTP: f.http, Log: log, Out: env.Stdout,
		MaxConns: f.maxConns, MaxConnsPerIP: f.maxPerIP, MaxHandshakes: f.maxHandshake,
		HandshakeTimeout: f.handshakeTimeout, IdleTimeout: f.idleTimeout, MetricsAllow: allow,
		LoginCacheTTL: f.loginCacheTTL, ReplaceIdentity: f.replaceIdentity,
		UI: func(s *officer.Server) (http.Handler, error) {
			ui, err := officerui.New(officerui.Config{Store: s.Store, Review: s.Review, Auth: s.Auth, Status: s.Status,
				Log: s.Log().With("component", "dashboard"), Secure: f.httpSecure, Threshold: f.threshold,
				Evidence: s.Evidence()})
			if err != nil {
				return nil, err
			}
			return ui.Handler(), nil
		},
	}, nil
}

func runOfficer(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "officer", "[--data DIR] [--listen ADDR] [--http ADDR] [--db URL]")
	f := addOfficerFlags(fs, env)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Sprintf("unexpected argument %q (see --help)", fs.Arg(0))}
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	// Before Open: the servers size their handshake limits from GOMAXPROCS.
	cores := runtime.GOMAXPROCS(0)
	if n := officerProcs(cores, f.store.DB, env.Getenv); n != cores {
		runtime.GOMAXPROCS(n)
		cfg.Log.Info("scheduler: two processors on one core, so that the SQLite writer's file syncs do not stop the server (GOMAXPROCS in the environment overrides)",
			"cores", cores, "GOMAXPROCS", n)
	}
	srv, err := officer.Open(ctx, cfg)
	if err != nil {
		return err
	}
	stop, err := startCPUProfile(env)
	if err != nil {
		return err
	}
	defer stop()
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	go gctune.Run(gcCtx, gctune.Config{Headroom: f.gcHeadroom << 20, Getenv: env.Getenv, Log: cfg.Log})
	return srv.Run(ctx)
}

// officerProcs is the GOMAXPROCS tes officer runs with on cores cores
// (the affinity or cgroup limit Go found) and the store db: two on a
// single core with SQLite, unless the environment sets GOMAXPROCS;
// otherwise Go's default.
//
// The SQLite store fdatasyncs its WAL after every commit, and that fsync
// (0.3 ms and more on a virtual disk) is a system call that keeps its
// goroutine's processor (P) for as long as it lasts: Go hands a P stuck in
// a system call to other goroutines only once its monitor thread has seen
// it there twice, and that thread's sleep between looks grows from 20 µs
// to 10 ms while it finds nothing to do. With one P that stops the whole
// server for every sync, with work queued: an officer alone on one core showed
// 10% iowait on it in a sessions run and reached 64–66% of the RSA-OAEP
// bound; with a second P the core stayed busy and it reached 74–80%.
// With two cores or more the other Ps go on working, and one P more than
// cores made reports slower instead (window 16 on two cores, alternated:
// 17,843–20,770 against 21,207–21,885 reports/s), as the operating system
// then shares the cores out between the single writer and the
// connections. PostgreSQL is reached over sockets, which free the P.
func officerProcs(cores int, db string, getenv func(string) string) int {
	if cores != 1 || getenv("GOMAXPROCS") != "" || postgres.IsURL(db) {
		return cores
	}
	return 2
}

// startCPUProfile writes a CPU profile of the whole run to the file
// TES_CPUPROFILE names, when it is set (for performance work on tes officer
// and tes bench: go tool pprof FILE). The returned func ends it.
func startCPUProfile(env *Env) (stop func(), err error) {
	path := env.Getenv("TES_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
