package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// runTLS drives the TLS suite as the enrolled device in cfg.DeviceDir. In
// reports mode each connection's reports are signed (Ed25519) before the
// clock starts; in sessions mode each operation is a full mutual-TLS
// handshake, device check included.
func runTLS(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.DeviceDir == "" {
		return nil, errors.New("bench: the TLS suite needs an enrolled device (--device DIR; enrol with tes report --join TOKEN)")
	}
	dev, err := tlssuite.LoadDevice(cfg.DeviceDir)
	if err != nil {
		return nil, err
	}
	opt := tlssuite.Options{Addr: cfg.Addr, Timeout: 60 * time.Second}
	res := &Result{Suite: cfg.Suite, Mode: cfg.Mode, Conns: cfg.Conns}
	if cfg.Mode == "reports" || cfg.Mode == "" {
		res.Window = max(1, cfg.Window)
	}
	ws := make([]*tlsWorker, cfg.Conns)
	n := cfg.PerConn
	if n <= 0 {
		n = 2000
	}
	if cfg.Mode == "" {
		cfg.Mode, res.Mode = "reports", "reports"
	}
	prep := time.Now()
	for i := range ws {
		ws[i] = &tlsWorker{}
		if cfg.Mode != "reports" {
			continue
		}
		c, err := tlssuite.DialWith(ctx, dev, opt)
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		ws[i].c = c
		for j := range n {
			r := &tes.Report{Plate: fmt.Sprintf("T%03dN%07d", i, j), Speed: 50 + (i*7+j)%120}
			p, s, err := c.SealReport(r)
			if err != nil {
				return nil, err
			}
			ws[i].msgs = append(ws[i].msgs, [2]string{p, s})
			if cfg.Window > 1 {
				ws[i].raw = append(ws[i].raw, tes1.AppendMessage(nil, tes1.TypeData, p, s))
			}
		}
	}
	defer func() {
		for _, w := range ws {
			if w.c != nil {
				w.c.Close()
			}
		}
	}()
	res.PrepTime = time.Since(prep)
	if cfg.Mode != "reports" && cfg.Mode != "sessions" {
		return nil, fmt.Errorf("bench: mode %q: use reports or sessions", cfg.Mode)
	}

	clock := startClock(cfg.MetricsURL)
	deadline := clock.deadline(cfg.Duration)
	var done atomic.Int64
	stopProgress := progress(cfg.Progress, &done, int64(cfg.Conns*n), clock.start, cfg.Duration)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Mode == "reports" && cfg.Window > 1 {
				w.pipeline(ctx, w.raw, cfg.Window, deadline, &done, w.c.Pipeline)
				return
			}
			for j := 0; j < n; j++ {
				if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				if cfg.Mode == "sessions" {
					c, err := tlssuite.DialWith(ctx, dev, opt)
					if err != nil {
						w.fail(errKind(err))
						continue
					}
					c.Close()
				} else {
					status, text, err := w.c.Request(ctx, tes1.TypeData, w.msgs[j][0], w.msgs[j][1])
					if err != nil {
						w.fail("transport: " + err.Error())
						return
					}
					if status != tes1.StatusOK {
						w.lat = append(w.lat, time.Since(t0))
						w.fail(status + " " + text)
						continue
					}
				}
				w.lat = append(w.lat, time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	plain := make([]*worker, len(ws))
	for i, w := range ws {
		plain[i] = &w.worker
	}
	clock.stop(res, plain, done.Load(), stopProgress)
	return res, nil
}

type tlsWorker struct {
	worker
	c    *tlssuite.Client
	msgs [][2]string
	raw  [][]byte // the same messages whole, for a pipelining run
}
