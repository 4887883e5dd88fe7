// Package metrics exposes the officer server's Prometheus metrics on
// /metrics: for each protocol suite (label suite="tes1" or "tls"), reports
// accepted and duplicate, requests refused by reason, sessions and logins
// by result, open, total and refused connections, handshake and ingest
// latency; then commit batch sizes and latency, the ingest queue, and the
// process's CPU and memory.
//
// Counters that the protocol servers already keep (tes1.Stats, which the
// TLS suite keeps too) are read at scrape time by a collector, so the hot
// path pays nothing for them; the histograms are observed on the hot path
// (one atomic add each).
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tes-traffic/tes/internal/tes1"
)

// Metrics is one server's registry.
type Metrics struct {
	reg *prometheus.Registry

	handshake   *prometheus.HistogramVec
	ingest      *prometheus.HistogramVec
	commitBatch prometheus.Histogram
	commitTime  prometheus.Histogram
	commitFails prometheus.Counter
	suites      *suitesCollector
}

// latency buckets from 50 µs to 10 s.
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 10, 18)

// New builds the registry with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.handshake = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tes_handshake_seconds", Help: "Time to establish a session (TES/1: SESSION processing incl. RSA-OAEP; TLS: the mTLS handshake).",
		Buckets: latencyBuckets}, []string{"suite"})
	m.ingest = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tes_ingest_seconds", Help: "Time from a report's arrival to its acknowledgement (verify, decrypt, durable commit).",
		Buckets: latencyBuckets}, []string{"suite"})
	m.commitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tes_commit_batch_size", Help: "Items per group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)})
	m.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tes_commit_seconds", Help: "Duration of one group commit, from its start to the end of the fsync that makes it durable.", Buckets: latencyBuckets})
	m.commitFails = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tes_commit_failures_total", Help: "Group commits that failed; their reports were answered ERROR."})
	m.suites = &suitesCollector{}
	m.reg.MustRegister(m.handshake, m.ingest, m.commitBatch, m.commitTime, m.commitFails, m.suites,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Committed implements ingest.Observer.
func (m *Metrics) Committed(batch int, d time.Duration, err error) {
	m.commitBatch.Observe(float64(batch))
	m.commitTime.Observe(d.Seconds())
	if err != nil {
		m.commitFails.Inc()
	}
}

// Handshake records a session set-up time.
func (m *Metrics) Handshake(suite string, d time.Duration) {
	m.handshake.WithLabelValues(suite).Observe(d.Seconds())
}

// Ingested records a report's time to acknowledgement.
func (m *Metrics) Ingested(suite string, d time.Duration) {
	m.ingest.WithLabelValues(suite).Observe(d.Seconds())
}

// Observe returns the latency hooks for a protocol server of suite ("tes1",
// "tls").
func (m *Metrics) Observe(suite string) tes1.Observer {
	return suiteObserver{handshake: m.handshake.WithLabelValues(suite), ingest: m.ingest.WithLabelValues(suite)}
}

type suiteObserver struct{ handshake, ingest prometheus.Observer }

func (o suiteObserver) Session(d time.Duration) { o.handshake.Observe(d.Seconds()) }
func (o suiteObserver) Report(d time.Duration)  { o.ingest.Observe(d.Seconds()) }

// AddQueue exports the ingest queue length.
func (m *Metrics) AddQueue(length func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tes_ingest_queue_length", Help: "Items waiting for the next group commit."}, func() float64 { return float64(length()) }))
}

// AddSuite exports a protocol server's counters under suite ("tes1",
// "tls"), read at scrape time.
func (m *Metrics) AddSuite(suite string, s *tes1.Stats) {
	m.suites.mu.Lock()
	defer m.suites.mu.Unlock()
	m.suites.list = append(m.suites.list, suiteStats{suite, s})
}

var (
	descConns    = prometheus.NewDesc("tes_connections_open", "Open protocol connections.", []string{"suite"}, nil)
	descConnsTot = prometheus.NewDesc("tes_connections_total", "Accepted protocol connections.", []string{"suite"}, nil)
	descConnsRef = prometheus.NewDesc("tes_connections_refused_total", "Connections refused at a connection limit.", []string{"suite"}, nil)
	descSessions = prometheus.NewDesc("tes_sessions_total", "Sessions by suite and result.", []string{"suite", "result"}, nil)
	descLogins   = prometheus.NewDesc("tes_logins_total", "LOGIN attempts by result.", []string{"suite", "result"}, nil)
	descAccepted = prometheus.NewDesc("tes_reports_accepted_total", "Reports acknowledged (durably stored, or already stored under the same report_id).", []string{"suite"}, nil)
	descDups     = prometheus.NewDesc("tes_reports_duplicate_total", "Reports acknowledged again for a report_id already stored.", []string{"suite"}, nil)
	descRefused  = prometheus.NewDesc("tes_requests_refused_total", "Requests refused, by the reply's reason.", []string{"suite", "reason"}, nil)
)

// suitesCollector reads the protocol servers' counters, one label value
// per suite.
type suitesCollector struct {
	mu   sync.Mutex
	list []suiteStats
}

type suiteStats struct {
	suite string
	s     *tes1.Stats
}

func (c *suitesCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descConnsTot, descConnsRef, descSessions, descLogins, descAccepted, descDups, descRefused} {
		ch <- d
	}
}

func (c *suitesCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	list := c.list
	c.mu.Unlock()
	for _, st := range list {
		st.collect(ch)
	}
}

func (st suiteStats) collect(ch chan<- prometheus.Metric) {
	s := st.s
	g := func(d *prometheus.Desc, t prometheus.ValueType, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, float64(v), append([]string{st.suite}, labels...)...)
	}
	g(descConns, prometheus.GaugeValue, s.Conns.Load())
	g(descConnsTot, prometheus.CounterValue, s.ConnsTotal.Load())
	g(descConnsRef, prometheus.CounterValue, s.ConnsRefused.Load())
	g(descSessions, prometheus.CounterValue, s.Sessions.Load(), "ok")
	g(descSessions, prometheus.CounterValue, s.SessionsFailed.Load(), "failed")
	g(descLogins, prometheus.CounterValue, s.Logins.Load(), "ok")
	g(descLogins, prometheus.CounterValue, s.LoginsFailed.Load(), "failed")
	g(descAccepted, prometheus.CounterValue, s.Accepted.Load())
	g(descDups, prometheus.CounterValue, s.Duplicates.Load())
	for reason, n := range s.Refused() {
		g(descRefused, prometheus.CounterValue, n, reason)
	}
}
