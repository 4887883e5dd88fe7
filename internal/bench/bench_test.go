package bench_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/bench"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 ms, unsorted
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p50, p95, p99, mx := bench.Percentiles(d)
	if p50 != 50*time.Millisecond || p95 != 95*time.Millisecond || p99 != 99*time.Millisecond || mx != 100*time.Millisecond {
		t.Fatalf("percentiles of 1..100 ms = %v %v %v %v", p50, p95, p99, mx)
	}
	if a, b, c, m := bench.Percentiles([]time.Duration{7}); a != 7 || b != 7 || c != 7 || m != 7 {
		t.Fatal("one sample")
	}
	if a, _, _, m := bench.Percentiles(nil); a != 0 || m != 0 {
		t.Fatal("no samples")
	}
}

// TestRunCountsWhatTheServerCounts: the figures the bench claims agree with
// the server's own counters and store.
// startOfficer runs an in-process officer server with TES/1 and /metrics on
// loopback and a police account "bench", and returns it with a bench
// config for it. The server stops when the test ends.
func startOfficer(t *testing.T, oc officer.Config) (*officer.Server, bench.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	oc.Store = officer.StoreConfig{DataDir: t.TempDir()}
	oc.Listen, oc.HTTP = "127.0.0.1:0", "127.0.0.1:0"
	oc.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := officer.Open(ctx, oc)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := srv.Auth.CreateUser(ctx, "t", "bench", tes.RolePolice, "bench-password", false); err != nil {
		t.Fatal(err)
	}
	return srv, bench.Config{Addr: srv.TES1Addr().String(), Fingerprint: srv.TES1.Fingerprint(), User: "bench", Password: "bench-password",
		MetricsURL: "http://" + srv.HTTPAddr().String() + "/metrics"}
}

func TestRunCountsWhatTheServerCounts(t *testing.T) {
	ctx := context.Background()
	srv, cfg := startOfficer(t, officer.Config{})
	cfg.Conns, cfg.PerConn = 4, 50

	res, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 200 || len(res.Errors) != 0 {
		t.Fatalf("reports: %d ops, errors %v; want 200 and none", res.Ops, res.Errors)
	}
	if got := srv.TES1.Stats.Accepted.Load(); got != 200 {
		t.Fatalf("the server acknowledged %d, the bench claims %d", got, res.Ops)
	}
	counts, _ := srv.Store.CountByStatus(ctx)
	if counts[tes.StatusPending] != 200 {
		t.Fatalf("store holds %d", counts[tes.StatusPending])
	}
	if !(res.P50 > 0 && res.P50 <= res.P95 && res.P95 <= res.P99 && res.P99 <= res.Max) || res.OpsPerSec <= 0 {
		t.Fatalf("latency figures out of order: %+v", res)
	}
	if res.ServerCPU <= 0 || res.BenchCPU <= 0 {
		t.Fatalf("CPU not measured: server %v bench %v", res.ServerCPU, res.BenchCPU)
	}

	sessions0 := srv.TES1.Stats.Sessions.Load()
	cfg.Mode, cfg.Conns, cfg.PerConn = "sessions", 2, 10
	res, err = bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The server also counts the one sign-in made before the clock.
	if res.Ops != 20 || srv.TES1.Stats.Sessions.Load()-sessions0 != 21 {
		t.Fatalf("sessions: bench %d, server %d; want 20 timed + 1 before the clock", res.Ops, srv.TES1.Stats.Sessions.Load()-sessions0)
	}

	if res.BoundPerSec != 0 || res.BoundFraction != 0 {
		t.Fatalf("not calibrated, yet a bound: %+v", res)
	}

	// Calibrated: the bound is the higher of the calibrations before and
	// after the run, and the run is given as a fraction of it.
	restoreCal := bench.SetCalibrateFor(50 * time.Millisecond)
	cfg.Calibrate = true
	res, err = bench.Run(ctx, cfg)
	cfg.Calibrate = false
	restoreCal()
	if err != nil {
		t.Fatal(err)
	}
	if res.BoundBefore <= 0 || res.BoundAfter <= 0 || res.BoundPerSec != max(res.BoundBefore, res.BoundAfter) ||
		res.BoundCores < 1 || !strings.HasPrefix(res.BoundName, "RSA-OAEP-2048 decrypt") {
		t.Fatalf("calibrated bound: %+v", res)
	}
	if want := res.OpsPerSec / res.BoundPerSec; res.BoundFraction != want {
		t.Fatalf("fraction %v, want %v", res.BoundFraction, want)
	}

	// Bounded by time only: the prepared sessions run out (4 for 2
	// connections here) and the rest are made as they go; every timed
	// session is counted by the server too.
	restore := bench.SetSessionPrepareMax(4)
	sessions0 = srv.TES1.Stats.Sessions.Load()
	cfg.PerConn, cfg.Duration = 0, 500*time.Millisecond
	res, err = bench.Run(ctx, cfg)
	restore()
	cfg.Duration = 0
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops <= 4 || srv.TES1.Stats.Sessions.Load()-sessions0 != res.Ops+1 || len(res.Errors) != 0 {
		t.Fatalf("sessions by time: bench %d (errors %v), server %d; want more than the 4 prepared, and 1 more on the server",
			res.Ops, res.Errors, srv.TES1.Stats.Sessions.Load()-sessions0)
	}

	// A wrong password stops the run at its first sign-in, before the clock.
	cfg.Password = "wrong-password"
	cfg.PerConn = 1
	if _, err = bench.Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "first sign-in") || !tes1.IsReply(err, tes1.ReplyBadLogin) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestRatio: the run against its bound (and loaded over idle latency) is
// a plain quotient, and 0 without a bound.
func TestRatio(t *testing.T) {
	if got := bench.Ratio(1850, 2410); math.Abs(got-0.76763485) > 1e-6 {
		t.Fatalf("Ratio(1850, 2410) = %v", got)
	}
	if got := bench.Ratio(5, 0); got != 0 {
		t.Fatalf("Ratio(5, 0) = %v, want 0", got)
	}
}

// TestSessionCeiling: a calibrated sessions run read against one decrypt.
func TestSessionCeiling(t *testing.T) {
	res := &bench.Result{Ops: 1000, ServerCPU: 1500 * time.Millisecond, BenchCPU: 250 * time.Millisecond,
		BoundPerSec: 2000, BoundCores: 2}
	if got := res.BoundOpCPU(); got != time.Millisecond {
		t.Fatalf("BoundOpCPU = %v, want 1ms", got)
	}
	serverX, ceiling := res.SessionCeiling()
	if math.Abs(serverX-1.5) > 1e-9 || math.Abs(ceiling-1/1.75) > 1e-9 {
		t.Fatalf("SessionCeiling = %v, %v; want 1.5, %v", serverX, ceiling, 1/1.75)
	}
	res.BoundPerSec = 0
	if a, b := res.SessionCeiling(); a != 0 || b != 0 || res.BoundOpCPU() != 0 {
		t.Fatalf("not calibrated: %v %v %v", a, b, res.BoundOpCPU())
	}
	res.BoundPerSec, res.ServerCPU = 2000, 0
	if a, b := res.SessionCeiling(); a != 0 || b != 0 {
		t.Fatalf("no server CPU: %v %v", a, b)
	}
}

// TestCalibrateOAEP: the calibration stops at its count bound and reports
// a rate for the decrypts it did (no timing assertion).
func TestCalibrateOAEP(t *testing.T) {
	key, err := legacy.GenerateRSAKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rate, n, err := bench.CalibrateOAEP(context.Background(), key, 2, time.Minute, 6)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 || rate <= 0 {
		t.Fatalf("calibration: %d decrypts at %v/s; want 6 and a rate", n, rate)
	}
}

// TestTLSSuite: the bench drives the TLS suite as an enrolled device, and
// its counts match the server's.
func TestTLSSuite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	srv, err := officer.Open(ctx, officer.Config{Store: officer.StoreConfig{DataDir: dir},
		ListenTLS: "127.0.0.1:0", HTTP: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv.Auth.CreateUser(ctx, "t", "unit7", tes.RolePolice, "unit-password-7", false)
	root, err := ca.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := &enroll.Service{Devices: srv.Store.(tes.DeviceStore), Users: srv.Store, CA: root}
	tok, err := svc.Create(ctx, "unit7", "test", time.Hour, srv.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	devDir := t.TempDir()
	if _, err := tlssuite.Enroll(ctx, tok.String(), devDir); err != nil {
		t.Fatal(err)
	}
	cfg := bench.Config{Suite: "tls", Addr: srv.TLSAddr().String(), DeviceDir: devDir, Conns: 3, PerConn: 40,
		MetricsURL: "http://" + srv.HTTPAddr().String() + "/metrics"}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := srv.Store.CountByStatus(ctx)
	if res.Ops != 120 || len(res.Errors) != 0 || counts[tes.StatusPending] != 120 {
		t.Fatalf("tls reports: bench %d ops (errors %v), store %d", res.Ops, res.Errors, counts[tes.StatusPending])
	}
	before := srv.TLS().Stats.Sessions.Load()
	cfg.Mode, cfg.PerConn = "sessions", 5
	if res, err = bench.Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if res.Ops != 15 || srv.TLS().Stats.Sessions.Load()-before != 15 {
		t.Fatalf("tls sessions: bench %d, server %d; want 15", res.Ops, srv.TLS().Stats.Sessions.Load()-before)
	}
}
