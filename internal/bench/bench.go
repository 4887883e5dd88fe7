// Package bench is the load generator behind `tes bench`: it drives a
// running officer server with C connections and reports throughput, latency
// percentiles, errors by kind, its own CPU use and, read from the server's
// /metrics, the server's CPU per operation.
//
// It is built not to be the bottleneck: in TES/1 the client chooses the DES
// session key and signs each report with RSA (about 1 ms), so every DATA
// message is encrypted and signed before the clock starts; the timed loop
// only writes prepared bytes and reads replies.
//
// Modes (legacy suite): reports (C connections x N reports), sessions
// (connect + handshake + login, with the RSA-OAEP decrypt rate of this
// machine measured first as the bound to compare with) and idle (hold C
// authenticated idle connections; see idle.go).
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
	Mode        string // "reports", "sessions" or "idle" (legacy only)
	Conns       int    // concurrent connections (workers); idle: connections to hold
	PerConn     int    // reports per connection, or sessions per worker
	Window      int    // reports: messages sent before waiting for replies; <= 1 is request-reply
	Duration    time.Duration
	MetricsURL  string    // the server's /metrics, for its CPU per operation (idle: its RSS); "" to skip
	Progress    io.Writer // a terminal for the progress bar; nil for none

	// Calibrate (legacy sessions): before the clock starts, measure this
	// machine's RSA-OAEP-2048 decrypt rate on every core, the bound a TES/1
	// server's session rate cannot exceed, and report the run against it.
	Calibrate bool

	// Idle mode.
	Probe           int // reports the probe client sends, one at a time, before and with the C held; default 1000
	PerSource       int // most connections per source address (the server's --max-conns-per-ip); default 2000
	OpenConcurrency int // connections being opened at once; default 64
}

// Result is what a run measured.
type Result struct {
	Suite      string           `json:"suite"`
	Mode       string           `json:"mode"`
	Conns      int              `json:"connections"`
	Window     int              `json:"window,omitempty"`
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

	// Sessions mode with Config.Calibrate: the RSA-OAEP decrypt rate this
	// machine reached on BoundCores cores, measured before and after the run
	// (on a shared host one calibration can fall in a slow second), the
	// higher of the two as the bound, and OpsPerSec as a fraction of it.
	// Zero when not calibrated.
	BoundPerSec   float64 `json:"bound_per_second,omitempty"`
	BoundBefore   float64 `json:"bound_before_per_second,omitempty"`
	BoundAfter    float64 `json:"bound_after_per_second,omitempty"`
	BoundName     string  `json:"bound,omitempty"` // "RSA-OAEP-2048 decrypt, 2 cores"
	BoundCores    int     `json:"bound_cores,omitempty"`
	BoundFraction float64 `json:"bound_fraction,omitempty"` // OpsPerSec / BoundPerSec

	// Idle mode: the held connections, the server's RSS and the probe's
	// latencies. In this mode Ops counts the connections opened (handshake +
	// login), Elapsed is the time to open them all and the percentiles above
	// are those of opening one.
	Idle *IdleResult `json:"idle,omitempty"`
}

// Cores is n cores in words: "1 core", "2 cores".
func Cores(n int) string {
	if n == 1 {
		return "1 core"
	}
	return strconv.Itoa(n) + " cores"
}

// Ratio is a/b, or 0 when b is 0: the run's rate as a fraction of its
// bound, a loaded latency over the idle one.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ServerCPUPerOp is the server's CPU time per operation, 0 when unknown.
func (r *Result) ServerCPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Ops)
}

// BoundOpCPU is, for a calibrated sessions run, the CPU one bound
// operation (an RSA-OAEP decrypt) takes on one core: BoundCores /
// BoundPerSec. 0 when not calibrated.
func (r *Result) BoundOpCPU() time.Duration {
	if r.BoundPerSec <= 0 {
		return 0
	}
	return time.Duration(float64(r.BoundCores) / r.BoundPerSec * float64(time.Second))
}

// SessionCeiling reads a calibrated sessions run the way that does not
// depend on where the bench ran: the server's CPU per session as a
// multiple of one decrypt, and the fraction of the bound a run can reach
// at most when the bench's own CPU per session is spent on the server's
// cores (decrypt / (server + bench)). Zeros when the run was not
// calibrated or the server's CPU is unknown.
func (r *Result) SessionCeiling() (serverX, ceiling float64) {
	d, s := r.BoundOpCPU(), r.ServerCPUPerOp()
	if d <= 0 || s <= 0 {
		return 0, 0
	}
	return Ratio(float64(s), float64(d)), Ratio(float64(d), float64(s+r.BenchCPUPerOp()))
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
	if cfg.Conns <= 0 || cfg.Mode != "idle" && cfg.PerConn <= 0 && cfg.Duration <= 0 {
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
	case "idle":
		return runIdle(ctx, cfg, key)
	}
	return nil, fmt.Errorf("bench: mode %q: use reports, sessions or idle", cfg.Mode)
}

// worker is one connection's state and its measurements.
type worker struct {
	c    *tes1.Client
	msgs [][]byte
	lat  []time.Duration
	errs map[string]int64
}

// pipeline sends msgs with up to window unanswered, in chunks so that the
// deadline and the progress bar are checked along the way, and records each
// reply's latency and kind.
func (w *worker) pipeline(ctx context.Context, msgs [][]byte, window int, deadline time.Time, done *atomic.Int64,
	send func(context.Context, []tes1.Exchange, int) (int, error)) {
	xs := make([]tes1.Exchange, 0, pipelineChunk)
	for len(msgs) > 0 {
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		k := min(len(msgs), pipelineChunk)
		xs = xs[:0]
		for _, m := range msgs[:k] {
			xs = append(xs, tes1.Exchange{Msg: m})
		}
		msgs = msgs[k:]
		n, err := send(ctx, xs, window)
		for _, x := range xs[:n] {
			w.lat = append(w.lat, x.Latency)
			if x.Status != tes1.StatusOK || x.Text != tes1.ReplyQueued {
				w.fail(x.Status + " " + x.Text)
				continue
			}
			done.Add(1)
		}
		if err != nil {
			w.fail("transport: " + err.Error())
			return
		}
	}
}

// pipelineChunk is how many messages a pipelining worker hands to
// tes1.Pipeline at a time.
const pipelineChunk = 512

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
	for _, w := range ws {
		w.msgs = make([][]byte, n)
	}
	err := onEveryCore(len(ws), n, func(i, j int) error {
		w := ws[i]
		r := &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("B%03dN%07d", i, j), Speed: 50 + (i*7+j)%120}
		p, s, err := sealConcurrent(w.c, r)
		if err != nil {
			return err
		}
		w.msgs[j] = tes1.AppendMessage(nil, tes1.TypeData, p, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: prepare reports: %w", err)
	}
	prepTime := time.Since(prep)

	res := &Result{Suite: cfg.Suite, Mode: cfg.Mode, Conns: cfg.Conns, Window: max(1, cfg.Window), PrepTime: prepTime}
	clock := startClock(cfg.MetricsURL)
	deadline := clock.deadline(cfg.Duration)
	var done atomic.Int64
	stopProgress := progress(cfg.Progress, &done, int64(cfg.Conns*n), clock.start, cfg.Duration)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.lat = make([]time.Duration, 0, len(w.msgs))
			if cfg.Window > 1 {
				w.pipeline(ctx, w.msgs, cfg.Window, deadline, &done, w.c.Pipeline)
				return
			}
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
	clock.stop(res, ws, done.Load(), stopProgress)
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
	calibrate := func(when string) (float64, error) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "calibrating %s the run: RSA-OAEP decrypts on %s for %s...\n", when, Cores(runtime.GOMAXPROCS(0)), calibrateFor)
		}
		rate, _, err := CalibrateOAEP(ctx, key, runtime.GOMAXPROCS(0), calibrateFor, calibrateMax)
		if err != nil {
			return 0, fmt.Errorf("bench: calibrate: %w", err)
		}
		return rate, nil
	}
	if cfg.Calibrate {
		rate, err := calibrate("before")
		if err != nil {
			return nil, err
		}
		cores := runtime.GOMAXPROCS(0)
		res.BoundBefore, res.BoundCores = rate, cores
		res.BoundName = fmt.Sprintf("RSA-OAEP-%d decrypt, %s", key.Size()*8, Cores(cores))
	}
	// One sign-in before the clock: the server checks a user's password with
	// argon2id once and then (for --login-cache-ttl) trusts the same
	// password again, so what is measured is a unit reconnecting, not the
	// first sign-in of the day (which costs about 25 ms more, once).
	c, err := tes1.Dial(ctx, cfg.Addr, tes1.ClientConfig{Fingerprint: cfg.Fingerprint, ClientKey: key, Timeout: 60 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bench: first connection: %w", err)
	}
	err = c.Login(ctx, cfg.User, cfg.Password)
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: first sign-in: %w", err)
	}
	// As for reports, the client's own RSA work (the OAEP encryption of
	// each session key) is done before the clock starts, on every core:
	// the clock times what the server does per session.
	prep := time.Now()
	n := cfg.PerConn
	if n <= 0 {
		// With only a duration: prepare up to sessionPrepareMax in all,
		// then make them as they go.
		n = max(1, sessionPrepareMax/max(1, cfg.Conns))
	}
	prepared := make([][]*tes1.PreparedSession, cfg.Conns)
	for i := range prepared {
		prepared[i] = make([]*tes1.PreparedSession, n)
	}
	err = onEveryCore(cfg.Conns, n, func(i, j int) (err error) {
		prepared[i][j], err = tes1.PrepareSession(rand.Reader, c.ServerKeyPEM(), key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: prepare sessions: %w", err)
	}
	res.PrepTime = time.Since(prep)
	ws := make([]*worker, cfg.Conns)
	clock := startClock(cfg.MetricsURL)
	deadline := clock.deadline(cfg.Duration)
	var done atomic.Int64
	total := int64(cfg.Conns * cfg.PerConn)
	stopProgress := progress(cfg.Progress, &done, total, clock.start, cfg.Duration)
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
				ccfg := tes1.ClientConfig{Fingerprint: cfg.Fingerprint, ClientKey: key, Timeout: 60 * time.Second}
				if j < len(prepared[i]) {
					ccfg.Session = prepared[i][j]
				}
				t0 := time.Now()
				c, err := tes1.Dial(ctx, cfg.Addr, ccfg)
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
	clock.stop(res, ws, done.Load(), stopProgress)
	if cfg.Calibrate {
		var err error
		if res.BoundAfter, err = calibrate("after"); err != nil {
			return nil, err
		}
		res.BoundPerSec = max(res.BoundBefore, res.BoundAfter)
		res.BoundFraction = Ratio(res.OpsPerSec, res.BoundPerSec)
	}
	return res, nil
}

// onEveryCore calls fn(i, j) for every i < rows and j < cols on
// GOMAXPROCS goroutines (the bench's work before its clock) and returns
// the first error; after one, the calls not yet started are skipped.
// Calls in flight together have different i where rows allow: a
// connection seals one message at a time, so the cores work on different
// connections.
func onEveryCore(rows, cols int, fn func(i, j int) error) error {
	var (
		next   atomic.Int64
		failed atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	total := int64(rows) * int64(cols)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				if err := fn(int(k%int64(rows)), int(k/int64(rows))); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	return nil
}

// sessionPrepareMax bounds the SESSION requests a sessions run with only a
// duration prepares before its clock: 20,000 is about a second of RSA-OAEP
// encryption on two cores.
var sessionPrepareMax = 20_000

// The calibration runs for about calibrateFor, and at most calibrateMax
// decrypts.
var calibrateFor = time.Second // a variable for the tests

const calibrateMax = 200_000

// CalibrateOAEP measures how many TES/1 session-key decrypts (RSA-OAEP-SHA1
// with key, through legacy.DecryptKey as the server does for SESSION) this
// machine does per second with workers goroutines in parallel. It stops
// after limit or maxOps decrypts, whichever comes first, and returns the
// rate and the number of decrypts it timed.
func CalibrateOAEP(ctx context.Context, key *rsa.PrivateKey, workers int, limit time.Duration, maxOps int) (perSec float64, n int64, err error) {
	workers, maxOps = max(workers, 1), max(maxOps, 1)
	cts := make([][]byte, 2*workers)
	desKey := make([]byte, legacy.DESKeySize)
	for i := range cts {
		rand.Read(desKey)
		if cts[i], err = legacy.EncryptKey(rand.Reader, &key.PublicKey, desKey); err != nil {
			return 0, 0, err
		}
	}
	if _, err := legacy.DecryptKey(key, cts[0]); err != nil { // warm up
		return 0, 0, err
	}
	var claimed, done atomic.Int64
	var failed atomic.Pointer[error]
	start := time.Now()
	deadline := start.Add(limit)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil && time.Now().Before(deadline); i += workers {
				if claimed.Add(1) > int64(maxOps) {
					return
				}
				k, err := legacy.DecryptKey(key, cts[i%len(cts)])
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				clear(k)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := failed.Load(); p != nil {
		return 0, 0, *p
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	n = done.Load()
	return Ratio(float64(n), elapsed.Seconds()), n, nil
}

// runClock times one run: wall time, this process's CPU and, read from the
// server's /metrics, the server's CPU.
type runClock struct {
	start         time.Time
	cpu0, server0 time.Duration
	serverOK      bool
	metricsURL    string
}

// deadline is when a run limited to d ends; zero (none) when d is 0.
func (c *runClock) deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return c.start.Add(d)
}

// startClock reads the server's CPU (when metricsURL is set) and starts the clock.
func startClock(metricsURL string) *runClock {
	c := &runClock{metricsURL: metricsURL}
	var err error
	c.server0, err = scrapeCPU(metricsURL)
	c.serverOK = err == nil
	c.cpu0, c.start = cpuTime(), time.Now()
	return c
}

// stop ends the run: it sets res's elapsed time and CPU figures, stops the
// progress bar and merges the workers' measurements.
func (c *runClock) stop(res *Result, ws []*worker, ops int64, stopProgress func()) {
	res.Elapsed = time.Since(c.start)
	res.BenchCPU = cpuTime() - c.cpu0
	stopProgress()
	finish(res, ws, ops)
	if c.serverOK {
		if c1, err := scrapeCPU(c.metricsURL); err == nil {
			res.ServerCPU = c1 - c.server0
		}
	}
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
	f, err := scrapeMetric(url, "process_cpu_seconds_total")
	return time.Duration(f * float64(time.Second)), err
}

// scrapeMetric reads the value of an unlabelled metric (a gauge or counter
// such as process_resident_memory_bytes) from a Prometheus endpoint.
func scrapeMetric(url, name string) (float64, error) {
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
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s", url, name)
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
