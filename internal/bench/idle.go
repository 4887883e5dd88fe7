package bench

// Idle mode measures the goal "10,000 concurrent authenticated idle
// connections held with at most 512 MiB of server RSS, while a new
// client's report latency stays within 2x of the idle-server figure":
//
//  1. Read the server's RSS from /metrics; a probe client connects, logs in
//     and sends Probe reports one at a time (sealed before the clock),
//     recording each round trip: the idle-server figure.
//  2. Open C connections (handshake + LOGIN), OpenConcurrency at a time,
//     and keep them open and silent. Against a loopback server they are
//     spread over source addresses 127.0.0.x, at most PerSource each, so
//     the server's per-IP limit does not refuse them.
//  3. With all C held, read the RSS again and run the same probe on a new
//     connection. Then close everything.
//
// Both the held connections and the probe are tes1.Dial clients (the held
// ones with ClientConfig.LocalAddr set to their source address).

import (
	"context"
	"crypto/rsa"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/tes1"
)

// IdleResult is what idle mode measured.
type IdleResult struct {
	Target  int `json:"target"`           // C
	Opened  int `json:"opened"`           // connections that completed handshake + LOGIN
	Held    int `json:"held"`             // still open after the loaded probe
	Dropped int `json:"dropped"`          // opened, then closed by the server before the end
	Sources int `json:"source_addresses"` // source addresses the connections came from

	OpenTime time.Duration `json:"open_ns"` // to open all C (bounded concurrency)

	// The server's process_resident_memory_bytes before anything (idle) and
	// with the connections held, and (after - before) / HeldAtRSS. Zero, and
	// RSSRead false, without a metrics URL.
	RSSRead    bool    `json:"server_rss_read"`
	RSSBefore  int64   `json:"server_rss_before_bytes"`
	RSSAfter   int64   `json:"server_rss_after_bytes"`
	HeldAtRSS  int     `json:"held_at_rss"`
	RSSPerConn float64 `json:"server_rss_per_connection_bytes"`

	// The probe: ProbeReports reports, one at a time, on an idle server and
	// with the connections held; Loaded / Idle of p50 and p99.
	ProbeReports int           `json:"probe_reports"`
	IdleP50      time.Duration `json:"idle_p50_ns"`
	IdleP99      time.Duration `json:"idle_p99_ns"`
	IdleMax      time.Duration `json:"idle_max_ns"`
	LoadedP50    time.Duration `json:"loaded_p50_ns"`
	LoadedP99    time.Duration `json:"loaded_p99_ns"`
	LoadedMax    time.Duration `json:"loaded_max_ns"`
	LoadedOK     int           `json:"loaded_probe_ok"` // loaded-probe reports acknowledged
	P50Ratio     float64       `json:"p50_ratio"`
	P99Ratio     float64       `json:"p99_ratio"`
}

const (
	defaultProbe           = 1000
	defaultPerSource       = 2000 // the officer's --max-conns-per-ip default
	defaultOpenConcurrency = 64
	fdMargin               = 64 // descriptors besides the held connections (probe, metrics, stdio, ...)
)

func runIdle(ctx context.Context, cfg Config, key *rsa.PrivateKey) (*Result, error) {
	if cfg.Probe <= 0 {
		cfg.Probe = defaultProbe
	}
	if cfg.PerSource <= 0 {
		cfg.PerSource = defaultPerSource
	}
	if cfg.OpenConcurrency <= 0 {
		cfg.OpenConcurrency = defaultOpenConcurrency
	}
	if soft, hard, err := fileLimit(); err == nil && uint64(cfg.Conns+fdMargin) > soft {
		return nil, fmt.Errorf("bench: holding %d connections needs about %d open files, but this process may open %d (hard limit %d); raise it with ulimit -n (and the server's too)",
			cfg.Conns, cfg.Conns+fdMargin, soft, hard)
	}
	say := func(format string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format, a...)
		}
	}
	ir := &IdleResult{Target: cfg.Conns, ProbeReports: cfg.Probe}
	res := &Result{Suite: cfg.Suite, Mode: cfg.Mode, Conns: cfg.Conns, Errors: map[string]int64{}, Idle: ir}

	// Phase 1: the idle server.
	rss0, rssErr := scrapeMetric(cfg.MetricsURL, "process_resident_memory_bytes")
	say("probe on the idle server: %d reports...\n", cfg.Probe)
	lat, probeIP, err := probe(ctx, cfg, key, res.Errors, "idle probe: ")
	if err != nil {
		return nil, fmt.Errorf("bench: probe on the idle server: %w", err)
	}
	ir.IdleP50, _, ir.IdleP99, ir.IdleMax = Percentiles(lat)

	// Phase 2: open and hold C.
	srcs, err := sourceAddrs(cfg.Addr, probeIP, cfg.Conns, cfg.PerSource)
	if err != nil {
		return nil, err
	}
	ir.Sources = len(srcs)
	say("opening %d authenticated connections (%d at a time)...\n", cfg.Conns, cfg.OpenConcurrency)
	h := &holder{}
	defer h.closeAll()
	ws := make([]*worker, min(cfg.OpenConcurrency, cfg.Conns))
	var next, done atomic.Int64
	clock := startClock("") // the server's CPU is not what this mode measures
	stopProgress := progress(cfg.Progress, &done, int64(cfg.Conns), clock.start, 0)
	var wg sync.WaitGroup
	for k := range ws {
		w := &worker{}
		ws[k] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns {
					return
				}
				t0 := time.Now()
				c, err := tes1.Dial(ctx, cfg.Addr, tes1.ClientConfig{Fingerprint: cfg.Fingerprint, ClientKey: key,
					Timeout: 60 * time.Second, LocalAddr: srcs[min(i/cfg.PerSource, len(srcs)-1)]})
				if err == nil {
					if err = c.Login(ctx, cfg.User, cfg.Password); err != nil {
						c.Close()
					}
				}
				if err != nil {
					w.fail(errKind(err))
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
				h.hold(c.Conn())
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	clock.stop(res, ws, done.Load(), stopProgress)
	ir.Opened, ir.OpenTime = int(done.Load()), res.Elapsed
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Phase 3: the same probe with the connections held.
	ir.HeldAtRSS = h.open()
	if rssErr == nil {
		if rss1, err := scrapeMetric(cfg.MetricsURL, "process_resident_memory_bytes"); err == nil {
			ir.RSSRead, ir.RSSBefore, ir.RSSAfter = true, int64(rss0), int64(rss1)
			ir.RSSPerConn = Ratio(float64(ir.RSSAfter-ir.RSSBefore), float64(ir.HeldAtRSS))
		}
	}
	say("probe with %d connections held: %d reports...\n", ir.HeldAtRSS, cfg.Probe)
	lat, _, err = probe(ctx, cfg, key, res.Errors, "loaded probe: ")
	if err != nil {
		res.Errors["loaded probe: "+errKind(err)]++
	}
	ir.LoadedOK = len(lat)
	ir.LoadedP50, _, ir.LoadedP99, ir.LoadedMax = Percentiles(lat)
	ir.P50Ratio = Ratio(float64(ir.LoadedP50), float64(ir.IdleP50))
	ir.P99Ratio = Ratio(float64(ir.LoadedP99), float64(ir.IdleP99))
	ir.Held = h.open()
	ir.Dropped = ir.Opened - ir.Held
	h.closeAll()
	for k, v := range h.dropKinds {
		res.Errors[k] += v
	}
	return res, nil
}

// probe connects as a new client, logs in and sends cfg.Probe reports one
// at a time, each sealed and signed before the clock, and returns the round
// trip of every acknowledged report and the connection's source IP. A
// refused report is counted in errs (under prefix + the reply) and not
// timed; a transport failure ends the probe with an error.
func probe(ctx context.Context, cfg Config, key *rsa.PrivateKey, errs map[string]int64, prefix string) ([]time.Duration, net.IP, error) {
	c, err := tes1.Dial(ctx, cfg.Addr, tes1.ClientConfig{Fingerprint: cfg.Fingerprint, ClientKey: key, Timeout: 60 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	if err := c.Login(ctx, cfg.User, cfg.Password); err != nil {
		return nil, nil, fmt.Errorf("login: %w", err)
	}
	var ip net.IP
	if a, ok := c.Conn().LocalAddr().(*net.TCPAddr); ok {
		ip = a.IP
	}
	msgs := make([][]byte, cfg.Probe)
	for j := range msgs {
		r := &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("P%07d", j), Speed: 50 + j%120}
		p, s, err := c.SealReport(r)
		if err != nil {
			return nil, ip, err
		}
		msgs[j] = tes1.AppendMessage(nil, tes1.TypeData, p, s)
	}
	lat := make([]time.Duration, 0, len(msgs))
	conn := c.Conn()
	fr := tes1.NewFrameReader(conn, 0)
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return lat, ip, err
		}
		t0 := time.Now()
		conn.SetDeadline(t0.Add(60 * time.Second))
		if _, err := conn.Write(m); err != nil {
			return lat, ip, fmt.Errorf("write: %w", err)
		}
		f, err := fr.Next()
		if err != nil {
			return lat, ip, fmt.Errorf("read: %w", err)
		}
		d := time.Since(t0)
		if string(f) != okQueued {
			errs[prefix+replyKind(f)]++
			continue
		}
		lat = append(lat, d)
	}
	return lat, ip, nil
}

// sourceAddrs chooses the local addresses to open n connections from. For a
// server on an IPv4 loopback address it returns ceil(n/perSource) addresses
// of 127.0.0.0/8 (Linux routes all of it to lo), skipping avoid (the probe's
// address, so that the probe is never refused at the per-IP limit);
// otherwise the single entry nil: the kernel's choice.
func sourceAddrs(addr string, avoid net.IP, n, perSource int) ([]*net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ip4 := ta.IP.To4()
	if ip4 == nil || !ip4.IsLoopback() {
		return []*net.TCPAddr{nil}, nil
	}
	need := (n + perSource - 1) / perSource
	var out []*net.TCPAddr
	for b := 1; b < 255 && len(out) < need; b++ {
		ip := net.IPv4(127, 0, 0, byte(b))
		if ip.Equal(avoid) {
			continue
		}
		out = append(out, &net.TCPAddr{IP: ip})
	}
	if len(out) < need {
		return nil, fmt.Errorf("bench: %d connections at %d per source address need %d loopback addresses; raise --per-source", n, perSource, need)
	}
	return out, nil
}

// fileLimit returns this process's RLIMIT_NOFILE. Go (since 1.19) raises
// the soft limit to the hard one at start-up (to hard-1, so that it can
// tell a later prlimit apart); should that not have happened, it is
// raised here.
func fileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur+1 < lim.Max {
		up := lim
		up.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			lim = up
		}
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}

// holder keeps the idle connections, each with a goroutine blocked in Read
// that notices the server closing it.
type holder struct {
	mu        sync.Mutex
	conns     []net.Conn
	dropped   int
	dropKinds map[string]int64
	closing   bool
	readers   sync.WaitGroup
}

func (h *holder) hold(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		c.Close()
		return
	}
	h.conns = append(h.conns, c)
	h.readers.Add(1)
	go func() {
		defer h.readers.Done()
		var b [1]byte
		_, err := c.Read(b[:])
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closing {
			return
		}
		kind := "dropped: the server sent data to an idle connection"
		if err != nil {
			kind = "dropped: " + errKind(err)
		}
		if h.dropKinds == nil {
			h.dropKinds = map[string]int64{}
		}
		h.dropKinds[kind]++
		h.dropped++
		c.Close()
	}()
}

// open is the number of held connections the server has not closed.
func (h *holder) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns) - h.dropped
}

func (h *holder) closeAll() {
	h.mu.Lock()
	h.closing = true
	conns := h.conns
	h.conns = nil
	h.dropped = 0
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	h.readers.Wait()
}
