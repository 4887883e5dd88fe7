package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/tes-traffic/tes/internal/bench"
)

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "bench", "--server HOST:PORT (--fingerprint SHA256:... --user NAME | --suite tls [--device DIR]) [--mode reports|sessions] [-c N] [-n N | --duration D]")
	cfg := bench.Config{}
	fs.StringVar(&cfg.Addr, "server", envOr(env, "TES_SERVER", "127.0.0.1:9999"), "officer server's protocol address")
	fs.StringVar(&cfg.Fingerprint, "fingerprint", "", "the server's key fingerprint (tes status prints it)")
	fs.StringVar(&cfg.User, "user", env.Getenv("TES_USER"), "a police or admin account")
	fs.StringVar(&cfg.Suite, "suite", "legacy", "protocol suite: legacy (TES/1; --server is the TES/1 address) or tls (--server is the TLS suite's address)")
	fs.StringVar(&cfg.DeviceDir, "device", defaultDeviceDir(env), "tls: the enrolled device to connect as (enrol with tes report --join TOKEN)")
	fs.StringVar(&cfg.Mode, "mode", "reports", "reports (C connections x N reports) or sessions (connect + handshake + login)")
	fs.IntVar(&cfg.Conns, "c", 32, "concurrent connections")
	fs.IntVar(&cfg.PerConn, "n", 500, "reports (or sessions) per connection; 0 with --duration")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (and after -n, whichever comes first)")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", "the server's /metrics URL, to report its CPU per operation (e.g. http://127.0.0.1:5001/metrics)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pw := addPasswordFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Suite != "tls" {
		if cfg.Fingerprint == "" || cfg.User == "" {
			return exitError{2, "--fingerprint and --user are required for the legacy suite"}
		}
		if cfg.Password, err = pw.read(env, "Password for "+cfg.User+": "); err != nil {
			return err
		}
	}
	if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !*asJSON {
		cfg.Progress = env.Stderr
	}
	if !*asJSON {
		fmt.Fprintf(env.Stderr, "preparing %s bench: %d connections...\n", cfg.Mode, cfg.Conns)
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := env.Stdout
	unit := "reports"
	if res.Mode == "sessions" {
		unit = "sessions"
	}
	fmt.Fprintf(w, "%s %s, %d connections: %d %s in %s = %.0f %s/s\n", res.Suite, res.Mode, res.Conns, res.Ops, unit,
		res.Elapsed.Round(time.Millisecond), res.OpsPerSec, unit)
	fmt.Fprintf(w, "latency p50 %s  p95 %s  p99 %s  max %s\n", r(res.P50), r(res.P95), r(res.P99), r(res.Max))
	if res.ServerCPU > 0 {
		fmt.Fprintf(w, "server CPU %s per %s (read from %s)\n", r(res.ServerCPUPerOp()), unit[:len(unit)-1], cfg.MetricsURL)
	}
	fmt.Fprintf(w, "bench CPU %s per %s (%.2f cores; preparation before the clock took %s)\n", r(res.BenchCPUPerOp()),
		unit[:len(unit)-1], res.BenchCores, res.PrepTime.Round(time.Millisecond))
	if len(res.Errors) > 0 {
		fmt.Fprintln(w, "errors:")
		for k, v := range res.Errors {
			fmt.Fprintf(w, "  %6d  %s\n", v, k)
		}
		return exitError{1, ""}
	}
	return nil
}

func r(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(100 * time.Nanosecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
