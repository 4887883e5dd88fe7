package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base, headroom uint64
		want           int
	}{
		{0, 64 * mib, MaxPercent},
		{1 * mib, 64 * mib, MaxPercent}, // 6400% capped
		{8 * mib, 64 * mib, 800},
		{16 * mib, 64 * mib, 400},
		{20 * mib, 64 * mib, 320},
		{64 * mib, 64 * mib, 100},
		{100 * mib, 64 * mib, 100}, // never below Go's default
		{1 << 40, 64 * mib, 100},
		{16 * mib, 0, 100},
	} {
		if got := Percent(c.base, c.headroom); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", c.base/mib, c.headroom/mib, got, c.want)
		}
	}
}

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestRun: with a small live heap the tuner raises GOGC after a
// collection, and puts back the value it found when its context ends.
func TestRun(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Config{Headroom: 1 << 30, Getenv: func(string) string { return "" }, Interval: time.Millisecond})
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for gogc() == 100 {
		if time.Now().After(deadline) {
			t.Fatal("GOGC still 100 after collections with a 1 GiB headroom")
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if got := gogc(); got <= 100 || got > MaxPercent {
		t.Errorf("GOGC = %d, want in (100, %d]", got, MaxPercent)
	}
	cancel()
	<-done
	if got := gogc(); got != 100 {
		t.Errorf("GOGC = %d after the tuner stopped, want 100 back", got)
	}
}

// TestRunLeavesTheOperatorsSetting: GOGC or GOMEMLIMIT in the environment,
// or no headroom, and Run returns at once without touching the collector.
func TestRunLeavesTheOperatorsSetting(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	for _, c := range []struct {
		name     string
		headroom uint64
		env      map[string]string
	}{
		{"GOGC", 1 << 30, map[string]string{"GOGC": "150"}},
		{"GOMEMLIMIT", 1 << 30, map[string]string{"GOMEMLIMIT": "1GiB"}},
		{"no headroom", 0, nil},
	} {
		done := make(chan struct{})
		go func() {
			Run(context.Background(), Config{Headroom: c.headroom, Getenv: func(k string) string { return c.env[k] }, Interval: time.Millisecond})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Run did not return", c.name)
		}
		runtime.GC()
		if got := gogc(); got != 150 {
			t.Errorf("%s: GOGC = %d, want the 150 set before", c.name, got)
		}
	}
}
