package bench_test

import (
	"context"
	"testing"

	"github.com/tes-traffic/tes/internal/bench"
	"github.com/tes-traffic/tes/internal/officer"
)

// TestIdleMode holds 50 authenticated connections against a server that
// allows 20 per IP address, so they must come from three loopback source
// addresses, and checks that the figures agree with each other and with
// the server's counters.
func TestIdleMode(t *testing.T) {
	ctx := context.Background()
	srv, cfg := startOfficer(t, officer.Config{MaxConnsPerIP: 20})
	cfg.Mode, cfg.Conns, cfg.Probe, cfg.PerSource, cfg.OpenConcurrency = "idle", 50, 10, 20, 8
	logins0 := srv.TES1.Stats.Logins.Load()

	res, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ir := res.Idle
	if ir == nil {
		t.Fatal("no idle result")
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if ir.Target != 50 || ir.Opened != 50 || ir.Held != 50 || ir.Dropped != 0 || ir.HeldAtRSS != 50 || res.Ops != 50 {
		t.Fatalf("held: %+v (ops %d); want all 50", ir, res.Ops)
	}
	if ir.Sources != 3 {
		t.Fatalf("%d source addresses for 50 connections at 20 each; want 3", ir.Sources)
	}
	if got := srv.TES1.Stats.Logins.Load() - logins0; got != 52 {
		t.Fatalf("server counted %d logins; want 50 held + 2 probes", got)
	}
	if got := srv.TES1.Stats.Accepted.Load(); got != 20 {
		t.Fatalf("server acknowledged %d probe reports; want 2 x 10", got)
	}
	if ir.OpenTime <= 0 || ir.OpenTime != res.Elapsed || !(res.P50 > 0 && res.P50 <= res.P99 && res.P99 <= res.Max) {
		t.Fatalf("open figures: %v elapsed %v, p50 %v p99 %v max %v", ir.OpenTime, res.Elapsed, res.P50, res.P99, res.Max)
	}
	if ir.ProbeReports != 10 || ir.LoadedOK != 10 {
		t.Fatalf("probe: %d reports, %d acknowledged loaded; want 10", ir.ProbeReports, ir.LoadedOK)
	}
	if !(ir.IdleP50 > 0 && ir.IdleP50 <= ir.IdleP99 && ir.IdleP99 <= ir.IdleMax) ||
		!(ir.LoadedP50 > 0 && ir.LoadedP50 <= ir.LoadedP99 && ir.LoadedP99 <= ir.LoadedMax) {
		t.Fatalf("probe latencies out of order: %+v", ir)
	}
	if ir.P50Ratio != float64(ir.LoadedP50)/float64(ir.IdleP50) || ir.P99Ratio != float64(ir.LoadedP99)/float64(ir.IdleP99) {
		t.Fatalf("ratios %v %v, latencies %+v", ir.P50Ratio, ir.P99Ratio, ir)
	}
	if !ir.RSSRead || ir.RSSBefore <= 0 || ir.RSSAfter <= 0 {
		t.Fatalf("server RSS not read from %s: %+v", cfg.MetricsURL, ir)
	}
	if ir.RSSPerConn != float64(ir.RSSAfter-ir.RSSBefore)/50 {
		t.Fatalf("RSS per connection %v, from %d -> %d", ir.RSSPerConn, ir.RSSBefore, ir.RSSAfter)
	}

	// Without a metrics URL the RSS is not read, and says so.
	cfg.MetricsURL, cfg.Conns = "", 3
	if res, err = bench.Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if ir := res.Idle; ir.RSSRead || ir.RSSBefore != 0 || ir.RSSAfter != 0 || ir.RSSPerConn != 0 || ir.Held != 3 {
		t.Fatalf("without metrics: %+v", ir)
	}
}

// TestIdleModeCountsRefusals: connections the server refuses are errors by
// kind, not held connections; a probe that cannot log in fails the run.
func TestIdleModeCountsRefusals(t *testing.T) {
	ctx := context.Background()
	_, cfg := startOfficer(t, officer.Config{MaxConnsPerIP: 3})
	// 6 from one source address against a limit of 3.
	cfg.Mode, cfg.Conns, cfg.Probe, cfg.PerSource = "idle", 6, 2, 10
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ir := res.Idle; ir.Held != 3 || ir.Opened != 3 || res.Errors["ERROR Server Busy, Retry Later"] != 3 || ir.Sources != 1 {
		t.Fatalf("held %d opened %d from %d sources, errors %v; want 3 held and 3 busy", ir.Held, ir.Opened, ir.Sources, res.Errors)
	}

	cfg.Password = "wrong-password"
	if _, err := bench.Run(ctx, cfg); err == nil {
		t.Fatal("a probe that cannot log in should fail the run")
	}
}
