package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/tes-traffic/tes/internal/bench"
)

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "bench", "--server HOST:PORT (--fingerprint SHA256:... --user NAME | --suite tls [--device DIR]) [--mode reports|sessions|idle] [-c N] [-n N | --duration D] [--probe N]")
	cfg := bench.Config{}
	fs.StringVar(&cfg.Addr, "server", envOr(env, "TES_SERVER", "127.0.0.1:9999"), "officer server's protocol address")
	fs.StringVar(&cfg.Fingerprint, "fingerprint", "", "the server's key fingerprint (tes status prints it)")
	fs.StringVar(&cfg.User, "user", env.Getenv("TES_USER"), "a police or admin account")
	fs.StringVar(&cfg.Suite, "suite", "legacy", "protocol suite: legacy (TES/1; --server is the TES/1 address) or tls (--server is the TLS suite's address)")
	fs.StringVar(&cfg.DeviceDir, "device", defaultDeviceDir(env), "tls: the enrolled device to connect as (enrol with tes report --join TOKEN)")
	fs.StringVar(&cfg.Mode, "mode", "reports", "reports (C connections x N reports), sessions (connect + handshake + login; legacy: measured against this machine's RSA-OAEP decrypt rate, see --calibrate) "+
		"or idle (legacy: the idle-connections goal. Reads the server's RSS from --metrics, times --probe reports sent one at a time by a new client, "+
		"opens -c authenticated connections (64 at a time; against a loopback server spread over source addresses 127.0.0.x, --per-source each) and holds them silent, "+
		"then reads the RSS and runs the probe again: reports connections held, RSS per connection and the probe's p50/p99 loaded vs idle. "+
		"Connections silent past the server's --idle-timeout are closed by it and counted as dropped)")
	fs.IntVar(&cfg.Conns, "c", 32, "concurrent connections (idle: connections to hold, e.g. 10000)")
	fs.IntVar(&cfg.PerConn, "n", 500, "reports (or sessions) per connection; 0 with --duration")
	fs.IntVar(&cfg.Window, "window", 1, "reports: messages each connection sends before waiting for replies (1: request-reply, as the original client; up to 64)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (and after -n, whichever comes first)")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", "the server's /metrics URL, to report its CPU per operation and (idle) its RSS (e.g. http://127.0.0.1:5001/metrics)")
	fs.BoolVar(&cfg.Calibrate, "calibrate", true, "legacy sessions: measure this machine's RSA-OAEP-2048 decrypt rate on all cores before and after the run (about 1 s each), take the higher as the bound a TES/1 session rate cannot pass, and report the run as a fraction of it")
	fs.IntVar(&cfg.Probe, "probe", 1000, "idle: reports the probe client sends, one at a time, on the idle server and again with the connections held")
	fs.IntVar(&cfg.PerSource, "per-source", 2000, "idle: most connections from one source address (match the server's --max-conns-per-ip)")
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
	stop, err := startCPUProfile(env)
	if err != nil {
		return err
	}
	res, err := bench.Run(ctx, cfg)
	stop()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := env.Stdout
	if res.Idle != nil {
		printIdle(w, res)
		return printErrors(w, res)
	}
	unit := "reports"
	if res.Mode == "sessions" {
		unit = "sessions"
	}
	conns := fmt.Sprintf("%d connections", res.Conns)
	if res.Window > 1 {
		conns += fmt.Sprintf(", window %d", res.Window)
	}
	fmt.Fprintf(w, "%s %s, %s: %d %s in %s = %.0f %s/s\n", res.Suite, res.Mode, conns, res.Ops, unit,
		res.Elapsed.Round(time.Millisecond), res.OpsPerSec, unit)
	fmt.Fprintf(w, "latency p50 %s  p95 %s  p99 %s  max %s\n", r(res.P50), r(res.P95), r(res.P99), r(res.Max))
	if res.ServerCPU > 0 {
		fmt.Fprintf(w, "server CPU %s per %s (read from %s)\n", r(res.ServerCPUPerOp()), unit[:len(unit)-1], cfg.MetricsURL)
	}
	fmt.Fprintf(w, "bench CPU %s per %s (%.2f cores; preparation before the clock took %s)\n", r(res.BenchCPUPerOp()),
		unit[:len(unit)-1], res.BenchCores, res.PrepTime.Round(time.Millisecond))
	if res.BoundPerSec > 0 {
		op, _, _ := strings.Cut(res.BoundName, ",")
		fmt.Fprintf(w, "bound: %s %s/s on %s (the higher of %s before and %s after the run); this run %s %s/s = %.0f%% of it\n",
			op, commas(res.BoundPerSec), bench.Cores(res.BoundCores), commas(res.BoundBefore), commas(res.BoundAfter),
			commas(res.OpsPerSec), unit, res.BoundFraction*100)
		if serverX, ceiling := res.SessionCeiling(); serverX > 0 {
			fmt.Fprintf(w, "server CPU per session = %.2fx one decrypt (%s a core): a server on cores of its own can reach at most %.0f%% of the bound; with the bench's CPU on the same cores, %.0f%%\n",
				serverX, r(res.BoundOpCPU()), 100/serverX, ceiling*100)
		}
	}
	return printErrors(w, res)
}

func printErrors(w io.Writer, res *bench.Result) error {
	if len(res.Errors) == 0 {
		return nil
	}
	fmt.Fprintln(w, "errors:")
	for _, k := range slices.Sorted(maps.Keys(res.Errors)) {
		fmt.Fprintf(w, "  %6d  %s\n", res.Errors[k], k)
	}
	return exitError{1, ""}
}

// The goal idle mode measures: 10,000 authenticated idle connections held
// with at most 512 MiB of server RSS, a new client's report latency within
// 2x of the idle server's.
const (
	goalIdleConns = 10000
	goalRSS       = 512 << 20
	goalRatio     = 2.0
)

func printIdle(w io.Writer, res *bench.Result) {
	ir := res.Idle
	n := func(i int) string { return commas(float64(i)) }
	fmt.Fprintf(w, "%s idle: %s of %s authenticated connections held (%s dropped by the server) from %d source address(es)\n",
		res.Suite, n(ir.Held), n(ir.Target), n(ir.Dropped), ir.Sources)
	fmt.Fprintf(w, "opening %s took %s (%.0f/s); handshake + login p50 %s  p99 %s  max %s\n", n(ir.Opened),
		ir.OpenTime.Round(time.Millisecond), res.OpsPerSec, r(res.P50), r(res.P99), r(res.Max))
	atGoal := ir.HeldAtRSS >= goalIdleConns
	if ir.RSSRead {
		var note string
		switch {
		case ir.RSSAfter < ir.RSSBefore:
			note = "RSS fell: the server returned memory from earlier work; start it afresh for a clean figure"
		case atGoal:
			note = fmt.Sprintf("goal <= %s with %s held: %s", mib(goalRSS), n(goalIdleConns), verdict(ir.RSSAfter <= goalRSS))
		default:
			note = fmt.Sprintf("goal <= %s with %s held; at this rate that would be about %s", mib(goalRSS), n(goalIdleConns),
				mib(ir.RSSBefore+int64(ir.RSSPerConn*goalIdleConns)))
		}
		fmt.Fprintf(w, "server RSS %s idle, %s with %s held = %s per connection (%s)\n",
			mib(ir.RSSBefore), mib(ir.RSSAfter), n(ir.HeldAtRSS), kib(ir.RSSPerConn), note)
	} else {
		fmt.Fprintln(w, "server RSS not read (give --metrics http://HOST:PORT/metrics)")
	}
	fmt.Fprintf(w, "probe, %d reports one at a time: idle p50 %s  p99 %s; with %s held p50 %s  p99 %s (%d acknowledged)\n",
		ir.ProbeReports, r(ir.IdleP50), r(ir.IdleP99), n(ir.HeldAtRSS), r(ir.LoadedP50), r(ir.LoadedP99), ir.LoadedOK)
	note := fmt.Sprintf("goal <= %.0fx with %s held", goalRatio, n(goalIdleConns))
	if atGoal {
		note += ": " + verdict(ir.P50Ratio > 0 && ir.P99Ratio > 0 && ir.P50Ratio <= goalRatio && ir.P99Ratio <= goalRatio)
	}
	fmt.Fprintf(w, "loaded/idle: p50 %.2fx  p99 %.2fx (%s)\n", ir.P50Ratio, ir.P99Ratio, note)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }

// commas formats f rounded to an integer with thousands separators.
func commas(f float64) string {
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
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
