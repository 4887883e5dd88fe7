// Package bench is the load generator behind `tes bench`: it drives a
// running officer server with C connections and reports throughput, latency
// percentiles, errors by kind, its own CPU use and, read from the server's
// /metrics, the server's CPU per operation.
//
// It is built not to be the bottleneck: in TES/1 the client chooses the DES
// session key and signs each report with RSA (about 1 ms), so every DATA
// message is encrypted and signed before the clock starts; the timed loop
// only writes prepared bytes and reads replies.
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/tes1"
)

// Config says what to run.
type Config struct {
	Addr        string // the server's protocol address
	Fingerprint string // the server key to expect (TES/1); required
	User        string
	Password    string
	Suite       string // "legacy" (TES/1) or "tls"
	DeviceDir   string // tls: the enrolled device to connect as (tes report --join enrols one)
	Mode        string // "reports" or "sessions"
	Conns       int    // concurrent connections (workers)
	PerConn     int    // reports per connection, or sessions per worker
	Duration    time.Duration
	MetricsURL  string    // the server's /metrics, for its CPU per operation; "" to skip
	Progress    io.Writer // a terminal for the progress bar; nil for none
}

// Result is what a run measured.
type Result struct {
	Suite      string           `json:"suite"`
	Mode       string           `json:"mode"`
	Conns      int              `json:"connections"`
	Ops        int64            `json:"ops"`
	Errors     map[string]int64 `json:"errors"`
	Elapsed    time.Duration    `json:"elapsed_ns"`
	OpsPerSec  float64          `json:"ops_per_second"`
	P50        time.Duration    `json:"p50_ns"`
	P95        time.Duration    `json:"p95_ns"`
	P99        time.Duration    `json:"p99_ns"`
	Max        time.Duration    `json:"max_ns"`
	BenchCPU   time.Duration    `json:"bench_cpu_ns"`
	ServerCPU  time.Duration    `json:"server_cpu_ns"` // 0 when not read
	PrepTime   time.Duration    `json:"prep_ns"`
	BenchCores float64          `json:"bench_cores"` // bench CPU / elapsed
}

// ServerCPUPerOp is the server's CPU time per operation, 0 when unknown.
func (r *Result) ServerCPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Ops)
}

// BenchCPUPerOp is this process's CPU time per operation.
func (r *Result) BenchCPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.BenchCPU / time.Duration(r.Ops)
}

// Run executes one benchmark.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Conns <= 0 || cfg.PerConn <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("bench: need connections > 0 and a count or a duration")
	}
	if cfg.Suite == "" {
		cfg.Suite = "legacy"
	}
	switch cfg.Suite {
	case "tls":
		return runTLS(ctx, cfg)
	case "legacy":
	default:
		return nil, fmt.Errorf("bench: suite %q: use legacy or tls", cfg.Suite)
	}
	if cfg.Fingerprint == "" {
		return nil, errors.New("bench: the server's key fingerprint is required (see tes status)")
	}
	key, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case "reports", "":
		cfg.Mode = "reports"
		return runReports(ctx, cfg, key)
	case "sessions":
		return runSessions(ctx, cfg, key)
	}
	return nil, fmt.Errorf("bench: mode %q: use reports or sessions", cfg.Mode)
}

// worker is one connection's state and its measurements.
type worker struct {
	c    *tes1.Client
	msgs [][]byte
	lat  []time.Duration
	errs map[string]int64
}

func (w *worker) fail(kind string) {
	if w.errs == nil {
		w.errs = map[string]int64{}
	}
	w.errs[kind]++
}

const okQueued = `{"type": "OK", "payload": "Message Queued for Processing"}`

func runReports(ctx context.Context, cfg Config, key *rsa.PrivateKey) (*Result, error) {
	n := cfg.PerConn
	if n <= 0 {
		n = 2000 // with only a duration: prepare this many per connection
	}
	ws := make([]*worker, cfg.Conns)
	prep := time.Now()
	for i := range ws {
		c, err := tes1.Dial(ctx, cfg.Addr, tes1.ClientConfig{Fingerprint: cfg.Fingerprint, ClientKey: key, Timeout: 60 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		if err := c.Login(ctx, cfg.User, cfg.Password); err != nil {
			c.Close()
			return nil, fmt.Errorf("connection %d: login: %w", i, err)
		}
		ws[i] = &worker{c: c}
	}
	defer func() {
		for _, w := range ws {
			w.c.Close()
		}
	}()
	// Encrypt and sign everything before the clock starts, on every core.
	var wg sync.WaitGroup
	var jobs atomic.Int64
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, w := range ws {
		w.msgs = make([][]byte, n)
		for j := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				r := &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("B%03dN%07d", i, j), Speed: 50 + (i*7+j)%120}
				p, s, err := sealConcurrent(w.c, r)
				if err != nil {
					panic(err)
				}
				w.msgs[j] = tes1.AppendMessage(nil, tes1.TypeData, p, s)
				jobs.Add(1)
			}()
		}
	}
	wg.Wait()
	prepTime := time.Since(prep)

	res := &Result{Suite: cfg.Suite, Mode: cfg.Mode, Conns: cfg.Conns, PrepTime: prepTime}
	serverCPU0, serverErr := scrapeCPU(cfg.MetricsURL)
	cpu0, start := cpuTime(), time.Now()
	deadline := time.Time{}
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var done atomic.Int64
	stopProgress := progress(cfg.Progress, &done, int64(cfg.Conns*n), start, cfg.Duration)
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.lat = make([]time.Duration, 0, len(w.msgs))
			conn := w.c.Conn()
			fr := tes1.NewFrameReader(conn, 0)
			for _, m := range w.msgs {
				if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				conn.SetDeadline(t0.Add(60 * time.Second))
				if _, err := conn.Write(m); err != nil {
					w.fail("write: " + err.Error())
					return
				}
				f, err := fr.Next()
				if err != nil {
					w.fail("read: " + err.Error())
					return
				}
				w.lat = append(w.lat, time.Since(t0))
				if string(f) != okQueued {
					w.fail(replyKind(f))
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.BenchCPU = cpuTime() - cpu0
	stopProgress()
	finish(res, ws, done.Load())
	if serverErr == nil {
		if c1, err := scrapeCPU(cfg.MetricsURL); err == nil {
			res.ServerCPU = c1 - serverCPU0
		}
	}
	return res, nil
}

// sealMu serialises the client's SessionCipher use per connection:
// SealReport reuses a buffer, so calls on one client must not overlap.
var sealMu sync.Map

func sealConcurrent(c *tes1.Client, r *tes.Report) (string, string, error) {
	m, _ := sealMu.LoadOrStore(c, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	return c.SealReport(r)
}

func runSessions(ctx context.Context, cfg Config, key *rsa.PrivateKey) (*Result, error) {
	res := &Result{Suite: cfg.Suite, Mode: cfg.Mode, Conns: cfg.Conns}
	ws := make([]*worker, cfg.Conns)
	serverCPU0, serverErr := scrapeCPU(cfg.MetricsURL)
	cpu0, start := cpuTime(), time.Now()
	deadline := time.Time{}
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var done atomic.Int64
	total := int64(cfg.Conns * cfg.PerConn)
	stopProgress := progress(cfg.Progress, &done, total, start, cfg.Duration)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; cfg.PerConn <= 0 || j < cfg.PerConn; j++ {
				if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				c, err := tes1.Dial(ctx, cfg.Addr, tes1.ClientConfig{Fingerprint: cfg.Fingerprint, ClientKey: key, Timeout: 60 * time.Second})
				if err != nil {
					w.fail(errKind(err))
					continue
				}
				err = c.Login(ctx, cfg.User, cfg.Password)
				c.Close()
				if err != nil {
					w.fail(errKind(err))
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.BenchCPU = cpuTime() - cpu0
	stopProgress()
	finish(res, ws, done.Load())
	if serverErr == nil {
		if c1, err := scrapeCPU(cfg.MetricsURL); err == nil {
			res.ServerCPU = c1 - serverCPU0
		}
	}
	return res, nil
}

// finish merges the workers' measurements into res.
func finish(res *Result, ws []*worker, ops int64) {
	var lat []time.Duration
	res.Errors = map[string]int64{}
	for _, w := range ws {
		lat = append(lat, w.lat...)
		for k, v := range w.errs {
			res.Errors[k] += v
		}
	}
	res.Ops = ops
	if res.Elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / res.Elapsed.Seconds()
		res.BenchCores = res.BenchCPU.Seconds() / res.Elapsed.Seconds()
	}
	res.P50, res.P95, res.P99, res.Max = Percentiles(lat)
}

// Percentiles returns the 50th, 95th and 99th percentile (nearest rank) and
// the maximum of d; d is sorted in place.
func Percentiles(d []time.Duration) (p50, p95, p99, maxd time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.999999999) - 1 // ceil(p*n) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return rank(0.50), rank(0.95), rank(0.99), d[len(d)-1]
}

func replyKind(frame []byte) string {
	m, err := tes1.ParseMessage(frame)
	if err != nil {
		return "bad reply"
	}
	p, _ := m.PayloadString()
	return m.Type + " " + p
}

func errKind(err error) string {
	var re *tes1.ReplyError
	if errors.As(err, &re) {
		return "ERROR " + re.Text
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scrapeCPU reads process_cpu_seconds_total from a Prometheus endpoint.
func scrapeCPU(url string) (time.Duration, error) {
	if url == "" {
		return 0, errors.New("no metrics URL")
	}
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(f * float64(time.Second)), nil
		}
	}
	return 0, fmt.Errorf("%s has no process_cpu_seconds_total", url)
}

// progress draws a bar on w every 200 ms until the returned func is called.
func progress(w io.Writer, done *atomic.Int64, total int64, start time.Time, limit time.Duration) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := done.Load()
				frac := 0.0
				if total > 0 {
					frac = float64(n) / float64(total)
				}
				if limit > 0 {
					frac = max(frac, time.Since(start).Seconds()/limit.Seconds())
				}
				frac = min(frac, 1)
				bar := strings.Repeat("=", int(frac*30)) + strings.Repeat(" ", 30-int(frac*30))
				rate := float64(n) / time.Since(start).Seconds()
				fmt.Fprintf(w, "\r[%s] %3.0f%%  %d done  %.0f/s", bar, frac*100, n, rate)
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}
