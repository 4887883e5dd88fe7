// Package gctune lets Go's garbage collector use a bounded amount of extra
// memory while the live heap is small.
//
// With Go's default (GOGC=100) a collection starts once the heap has grown
// by as much as it held live after the last one. A busy officer holds
// little live data (tens of MiB with 32 report connections) but allocates
// quickly (each report's message, its row for the store, the database
// driver's buffers), so it collects many times a second: in a CPU profile
// of `tes bench --window 16` the collector took 5–9 µs of the 48–53 µs TES
// spends per report. Run raises GOGC so that the heap may grow by a fixed
// headroom (64 MiB by default) before the next collection, and lowers it
// back to 100 as the live heap approaches that headroom: the memory this
// costs is at most the headroom, whatever the load, and a large live heap
// (10,000 idle connections) is collected exactly as Go would.
//
// An operator's own GOGC or GOMEMLIMIT always wins: the tuner then does
// nothing.
package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// MaxPercent bounds the GOGC the tuner sets, for a nearly empty heap.
const MaxPercent = 1000

// Percent is the GOGC that lets a heap whose collector-scanned base (live
// heap, goroutine stacks and globals: what GOGC multiplies) is base bytes
// grow by headroom bytes before the next collection, between Go's default
// of 100 and MaxPercent.
func Percent(base, headroom uint64) int {
	if base == 0 {
		return MaxPercent
	}
	p := headroom * 100 / base
	switch {
	case p < 100:
		return 100
	case p > MaxPercent:
		return MaxPercent
	}
	return int(p)
}

// Config is how a Tuner runs.
type Config struct {
	Headroom uint64                  // bytes; 0 leaves the collector alone
	Getenv   func(key string) string // the environment, for GOGC and GOMEMLIMIT
	Log      *slog.Logger
	Interval time.Duration // how often to look for a finished collection; default 100ms
}

// Run adjusts GOGC after every collection until ctx ends, then restores the
// setting it found. It returns at once, changing nothing, when the
// headroom is 0 or the environment sets GOGC or GOMEMLIMIT.
func Run(ctx context.Context, cfg Config) {
	if cfg.Headroom == 0 {
		return
	}
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if cfg.Getenv != nil && cfg.Getenv(k) != "" {
			if cfg.Log != nil {
				cfg.Log.Info("garbage collector left to the environment", "env", k)
			}
			return
		}
	}
	interval := cfg.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}
	current := debug.SetGCPercent(100)
	initial := current
	debug.SetGCPercent(current)
	defer debug.SetGCPercent(initial)

	t := time.NewTicker(interval)
	defer t.Stop()
	var cycles uint64
	for {
		metrics.Read(samples)
		if n := samples[0].Value.Uint64(); n != cycles {
			cycles = n
			base := samples[1].Value.Uint64() + samples[2].Value.Uint64() + samples[3].Value.Uint64()
			// Only a change of a tenth or more is worth telling the runtime.
			if p := Percent(base, cfg.Headroom); p*10 < current*9 || p*10 > current*11 {
				debug.SetGCPercent(p)
				if cfg.Log != nil {
					cfg.Log.Debug("GOGC set", "percent", p, "live_bytes", base)
				}
				current = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
