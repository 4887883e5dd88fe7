// Package officer assembles the officer server: the store, the server's
// keys, the TES/1 listener, the group-commit ingest path and the HTTP side
// (health, dashboard). cmd/tes parses flags into a Config; end-to-end tests
// start the real binary.
package officer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/identity"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/metrics"
	"github.com/tes-traffic/tes/internal/review"
	"github.com/tes-traffic/tes/internal/tes1"
)

// InitialAdminPasswordFile holds the generated admin password (0600) until
// the admin changes it.
const InitialAdminPasswordFile = "initial-admin-password"

// RuntimeFile records the running server's addresses for `tes status`.
const RuntimeFile = "officer.json"

// Config configures the officer server.
type Config struct {
	Store  StoreConfig
	Listen string // TES/1 address; "" disables TES/1
	HTTP   string // dashboard and health address; "" disables HTTP
	Log    *slog.Logger
	Out    io.Writer // where the listening addresses and first-start notes are printed

	MaxConns         int
	MaxConnsPerIP    int
	MaxHandshakes    int
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	MaxBatch         int
	// ReplaceIdentity accepts this node's TES/1 key and TLS CA as the
	// store's even when the store recorded others (a key lost and made
	// anew); without it such a node refuses to start.
	ReplaceIdentity bool
	// LoginCacheTTL is how long a verified password lets the same user sign
	// in again without argon2id (internal/auth.Service.CacheVerified); 0
	// checks every sign-in in full.
	LoginCacheTTL time.Duration
	Rules         tes.Rules

	// ListenTLS is the TLS suite's address; "" disables the TLS suite.
	ListenTLS string
	// CheckpointInterval is how often the audit chain's head is signed
	// when it moved; default 1 minute (internal/audit).
	CheckpointInterval time.Duration

	// UI, when set, builds the dashboard handler mounted at "/".
	UI func(*Server) (http.Handler, error)

	// MetricsAllow lists the networks that may read /metrics; empty means
	// loopback only.
	MetricsAllow []netip.Prefix
}

// maxLoginCache bounds the verified-password cache: one entry per user.
const maxLoginCache = 100_000

// Server is a running officer server.
type Server struct {
	cfg     Config
	Store   tes.Store
	Auth    *auth.Service
	Review  *review.Service
	TES1    *tes1.Server
	batcher *ingest.Batcher
	started time.Time
	Metrics *metrics.Metrics

	tes1Ln net.Listener
	httpLn net.Listener
	modern *modern // the TLS suite, CA, signing key, checkpoints (tls.go)
	http   *http.Server

	audit       chan *tes.Event
	auditMu     sync.RWMutex // guards auditClosed against a late appendAudit
	auditClosed bool
	wg          sync.WaitGroup
}

// Open opens the store and keys, creates the first admin when the store is
// empty, and binds the listeners. Serving starts with Run.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if len(cfg.Rules.Bands) == 0 {
		cfg.Rules = tes.DefaultRules()
	}
	cfg.Store.Create = true
	s := &Server{cfg: cfg, started: time.Now(), audit: make(chan *tes.Event, 4096)}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if s.Store, err = OpenStore(ctx, cfg.Store); err != nil {
		return nil, err
	}
	s.Auth = auth.New(s.Store, cfg.Log)
	s.Auth.CacheVerified(cfg.LoginCacheTTL, maxLoginCache)
	s.Review = review.New(s.Store, cfg.Rules, cfg.Log)
	if err := s.firstAdmin(ctx); err != nil {
		return nil, err
	}

	key, created, err := identity.LoadOrCreateRSA(filepath.Join(cfg.Store.DataDir, identity.TES1KeyFile))
	if err != nil {
		return nil, err
	}
	s.Metrics = metrics.New()
	s.batcher = ingest.New(s.Store, cfg.Log, cfg.MaxBatch, s.Metrics)
	s.Metrics.AddQueue(s.batcher.QueueLength)
	s.TES1, err = tes1.NewServer(tes1.Config{
		Key: key, Auth: s.Auth, Ingest: s.batcher, Log: cfg.Log.With("suite", "tes1"),
		OnRefuse:      s.onRefuse,
		Statuses:      statusStore(s.Store),
		Observe:       s.Metrics.Observe("tes1"),
		MaxConns:      cfg.MaxConns,
		MaxConnsPerIP: cfg.MaxConnsPerIP,
		MaxHandshakes: cfg.MaxHandshakes, HandshakeTimeout: cfg.HandshakeTimeout, IdleTimeout: cfg.IdleTimeout,
	})
	if err != nil {
		return nil, err
	}
	s.Metrics.AddSuite("tes1", &s.TES1.Stats)
	if err := s.claimIdentity(ctx, "tes1_key_fingerprint", s.TES1.Fingerprint(), identity.TES1KeyFile,
		"clients that pinned the recorded key would refuse this node"); err != nil {
		return nil, err
	}
	if created {
		s.appendAudit(&tes.Event{Actor: "system", Action: "key.created", Subject: "key:tes1", Detail: "fingerprint=" + s.TES1.Fingerprint()})
	}
	if cfg.Listen != "" {
		if s.tes1Ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen for TES/1 on %s: %w (is another tes officer running? pick another --listen)", cfg.Listen, err)
		}
	}
	if err := s.openTLS(ctx); err != nil {
		return nil, err
	}
	if cfg.HTTP != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTP); err != nil {
			return nil, fmt.Errorf("listen for HTTP on %s: %w (pick another --http)", cfg.HTTP, err)
		}
		h, err := s.handler()
		if err != nil {
			return nil, err
		}
		s.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn)}
	}
	return s, nil
}

// claimIdentity checks that this node's key (its fingerprint value, kept in
// file) is the one the store recorded, recording it on first start: every
// node of one deployment must serve the same keys, and a key replaced by
// accident would break every client that trusts the old one.
func (s *Server) claimIdentity(ctx context.Context, name, value, file, consequence string) error {
	stored, err := s.Store.ClaimMeta(ctx, name, []byte(value), s.cfg.ReplaceIdentity)
	if err != nil {
		return fmt.Errorf("record %s: %w", name, err)
	}
	if string(stored) == value {
		if s.cfg.ReplaceIdentity {
			s.appendAudit(&tes.Event{Actor: "system", Action: "key.accepted", Subject: "key:" + name, Detail: "value=" + value})
		}
		return nil
	}
	return fmt.Errorf("this node's %s is %s (from %s), but the store records %s: %s. "+
		"Copy %s from a node that serves the recorded one (docs/deploy-multinode.md); "+
		"only if that key is lost for good, start once with --replace-identity", name, value,
		filepath.Join(s.cfg.Store.DataDir, file), stored, consequence, file)
}

func (s *Server) firstAdmin(ctx context.Context) error {
	path := filepath.Join(s.cfg.Store.DataDir, InitialAdminPasswordFile)
	pw, err := s.Auth.EnsureAdmin(ctx)
	if err != nil {
		return err
	}
	if pw == "" {
		// Once the generated password has been changed, its file only
		// misleads: remove it.
		if u, err := s.Store.User(ctx, "admin"); err == nil && !u.MustChangePass {
			if os.Remove(path) == nil {
				s.cfg.Log.Info("removed the initial admin password file: the password was changed", "path", path)
			}
		}
		return nil
	}
	if err := identity.WriteSecret(path, []byte(pw+"\n")); err != nil {
		return fmt.Errorf("write initial admin password: %w", err)
	}
	fmt.Fprintf(s.cfg.Out, "Created user admin with password %s\n(also in %s; you must change it at first sign-in)\n", pw, path)
	return nil
}

// TES1Addr is the bound TES/1 address (nil when disabled).
func (s *Server) TES1Addr() net.Addr {
	if s.tes1Ln == nil {
		return nil
	}
	return s.tes1Ln.Addr()
}

// HTTPAddr is the bound HTTP address (nil when disabled).
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Log is the server's logger.
func (s *Server) Log() *slog.Logger { return s.cfg.Log }

// StartedAt is when the server was opened.
func (s *Server) StartedAt() time.Time { return s.started }

// Status returns the live facts the status page and `tes status` show.
func (s *Server) Status() tes.ServerStatus {
	st := &s.TES1.Stats
	var refused int64
	for _, n := range st.Refused() {
		refused += n
	}
	status := tes.ServerStatus{
		StartedAt:    s.started,
		Fingerprints: []tes.KeyFingerprint{{Suite: "TES/1 (RSA-2048)", Fingerprint: s.TES1.Fingerprint()}},
		Connections:  int(st.Conns.Load()),
		ReportsTotal: st.Accepted.Load(),
		RefusedTotal: refused,
		PerMinute:    st.PerMinute(time.Now(), 60),
	}
	s.addTLSStatus(&status)
	return status
}

// Run serves until ctx is cancelled, then shuts down gracefully: stop
// accepting, finish in-flight requests, commit, close.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	if s.tes1Ln != nil {
		fmt.Fprintf(s.cfg.Out, "TES/1 listening on %s (key %s)\n", s.tes1Ln.Addr(), s.TES1.Fingerprint())
		go func() { errc <- s.TES1.Serve(s.tes1Ln) }()
	}
	s.runTLS(errc)
	if s.http != nil {
		fmt.Fprintf(s.cfg.Out, "Dashboard on http://%s/\n", s.httpLn.Addr())
		go func() {
			if err := s.http.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	s.wg.Add(1)
	go s.auditLoop()
	s.writeRuntime()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.cfg.Log.Error("listener failed", "err", err)
	case <-diskFailed(s.Store):
		err = errors.New("the database could not be written to disk (the log has the error), so it refuses every write; " +
			"tes stops so that a restart recovers it from what is on disk")
		s.cfg.Log.Error("store failed", "err", err)
	}
	s.cfg.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if s.http != nil {
		s.http.Shutdown(sctx)
	}
	if err := s.TES1.Shutdown(sctx); err != nil {
		s.cfg.Log.Warn("connections did not finish in time", "err", err)
	}
	s.shutdownTLS(sctx)
	s.closeAll()
	return err
}

// diskFailed is closed when the store can no longer make a write durable
// (SQLite after a failed fsync); for a store without such a state it is
// nil, which never delivers.
func diskFailed(st tes.Store) <-chan struct{} {
	if f, ok := st.(interface{ DiskFailed() <-chan struct{} }); ok {
		return f.DiskFailed()
	}
	return nil
}

func (s *Server) closeAll() {
	if s.batcher != nil {
		s.batcher.Close()
		s.batcher = nil
	}
	s.auditMu.Lock()
	if !s.auditClosed {
		s.auditClosed = true
		close(s.audit)
	}
	s.auditMu.Unlock()
	s.wg.Wait()
	if s.Store != nil {
		s.closeTLS() // the final audit checkpoint, after the last event
	}
	if s.tes1Ln != nil {
		s.tes1Ln.Close()
	}
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.Store != nil {
		s.Store.Close()
		s.Store = nil
	}
	os.Remove(filepath.Join(s.cfg.Store.DataDir, RuntimeFile))
}

// Close releases everything; use it when Run was never called.
func (s *Server) Close() error {
	s.closeAll()
	return nil
}

// onRefuse records a refused request in the audit log without blocking the
// connection; under a flood the excess is counted in the log, not queued.
func (s *Server) onRefuse(user, remote, reason string) {
	if user == "" {
		user = "anonymous"
	}
	s.appendAudit(&tes.Event{Actor: user, Action: "report.refused", Subject: "remote:" + remote, Detail: "reason=" + reason})
}

func (s *Server) appendAudit(e *tes.Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	// A connection that outlived a timed-out shutdown may still refuse a
	// request after the queue closed: log it rather than send on a closed
	// channel.
	s.auditMu.RLock()
	defer s.auditMu.RUnlock()
	if s.auditClosed {
		s.cfg.Log.Warn("server closed; event not added to the audit chain", "action", e.Action, "subject", e.Subject)
		return
	}
	select {
	case s.audit <- e:
	default:
		s.cfg.Log.Warn("audit queue full; event dropped from the chain", "action", e.Action, "subject", e.Subject)
	}
}

func (s *Server) auditLoop() {
	defer s.wg.Done()
	var batch []*tes.Event
	for e := range s.audit {
		batch = append(batch[:0], e)
	more:
		for len(batch) < 256 {
			select {
			case e, ok := <-s.audit:
				if !ok {
					break more
				}
				batch = append(batch, e)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Store.AppendEvents(ctx, batch...); err != nil {
			s.cfg.Log.Error("audit append failed", "events", len(batch), "err", err)
		}
		cancel()
	}
}

// Runtime is what RuntimeFile holds.
type Runtime struct {
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	TES1      string    `json:"tes1,omitempty"`
	HTTP      string    `json:"http,omitempty"`
	TLS       string    `json:"tls,omitempty"`
}

func (s *Server) writeRuntime() {
	rt := Runtime{PID: os.Getpid(), StartedAt: s.started}
	if a := s.TES1Addr(); a != nil {
		rt.TES1 = a.String()
	}
	if a := s.HTTPAddr(); a != nil {
		rt.HTTP = a.String()
	}
	if a := s.TLSAddr(); a != nil {
		rt.TLS = a.String()
	}
	b, _ := json.MarshalIndent(rt, "", "  ")
	path := filepath.Join(s.cfg.Store.DataDir, RuntimeFile)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		s.cfg.Log.Warn("cannot write runtime file", "path", path, "err", err)
	}
}

func statusStore(st tes.Store) tes.ReportStatusStore {
	if rs, ok := st.(tes.ReportStatusStore); ok {
		return rs
	}
	return nil
}
