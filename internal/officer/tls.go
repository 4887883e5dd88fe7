package officer

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/audit"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/identity"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// SettingsFile records the settings of the last start, so that a change is
// logged as a "settings.changed" audit event.
const SettingsFile = "officer-settings.json"

// modern is the officer's TLS-suite side: the CA, the signing key, the TLS
// listener, audit checkpoints and evidence export.
type modern struct {
	ca       *ca.CA
	signer   *ca.Signer
	server   *tlssuite.Server // nil when the TLS suite is off
	ln       net.Listener
	cp       *audit.Checkpointer // nil when the store keeps no checkpoints
	exporter *evidence.Exporter
	stopCP   context.CancelFunc
	cpDone   sync.WaitGroup
}

// openTLS loads or creates the CA and the signing key, and when
// cfg.ListenTLS is set, the server certificate and the listener. Every key
// created or rotated is logged in the audit chain.
func (s *Server) openTLS(ctx context.Context) error {
	dir := s.cfg.Store.DataDir
	m := &modern{}
	s.modern = m
	var created bool
	var err error
	if m.ca, created, err = ca.LoadOrCreate(dir); err != nil {
		return fmt.Errorf("TLS suite CA: %w", err)
	}
	if err := s.claimIdentity(ctx, "tls_ca_hash", m.ca.Hash(), ca.CAFile,
		"enrolled devices and join tokens trust only the recorded CA"); err != nil {
		return err
	}
	if created {
		s.appendAudit(&tes.Event{Actor: "system", Action: "key.created", Subject: "key:tls-ca", Detail: "ca_hash=" + m.ca.Hash()})
	}
	var change ca.KeyChange
	if m.signer, change, err = m.ca.LoadOrIssueSigner(dir); err != nil {
		return fmt.Errorf("officer signing key: %w", err)
	}
	if change == ca.KeyCreated {
		s.appendAudit(&tes.Event{Actor: "system", Action: "key.created", Subject: "key:signing", Detail: "fingerprint=" + m.signer.Fingerprint()})
	}
	m.exporter = &evidence.Exporter{Violations: s.Store, CA: m.ca.Cert, Signer: m.signer}
	if cs, ok := s.Store.(tes.CheckpointStore); ok {
		m.cp = &audit.Checkpointer{Store: cs, Signer: m.signer, Interval: s.cfg.CheckpointInterval, Log: s.cfg.Log.With("component", "audit")}
	} else {
		s.cfg.Log.Warn("this store keeps no audit checkpoints: the chain is hashed but not signed")
	}
	s.recordSettings()

	if s.cfg.ListenTLS == "" {
		return nil
	}
	devices, ok := s.Store.(tes.DeviceStore)
	if !ok {
		return fmt.Errorf("this store does not keep devices, which the TLS suite needs: run without --listen-tls")
	}
	cert, change, err := m.ca.LoadOrIssueServer(dir)
	if err != nil {
		return fmt.Errorf("TLS server certificate: %w", err)
	}
	switch change {
	case ca.KeyCreated:
		s.appendAudit(&tes.Event{Actor: "system", Action: "key.created", Subject: "key:tls-server", Detail: "fingerprint=" + ca.Fingerprint(cert.Leaf.RawSubjectPublicKeyInfo)})
	case ca.KeyRotated:
		s.appendAudit(&tes.Event{Actor: "system", Action: "key.rotated", Subject: "key:tls-server", Detail: "fingerprint=" + ca.Fingerprint(cert.Leaf.RawSubjectPublicKeyInfo)})
	}
	m.server, err = tlssuite.NewServer(tlssuite.Config{
		CA: m.ca, ServerCert: cert, Devices: devices, Users: s.Store, Ingest: s.batcher,
		Log: s.cfg.Log.With("suite", "tls"), OnRefuse: s.onRefuse, Audit: s.appendAudit,
		Statuses: statusStore(s.Store), Auth: s.Auth, MaxConns: s.cfg.MaxConns, MaxConnsPerIP: s.cfg.MaxConnsPerIP,
		IdleTimeout: s.cfg.IdleTimeout, Observe: s.Metrics.Observe("tls"),
	})
	if err != nil {
		return err
	}
	s.Metrics.AddSuite("tls", &m.server.Stats.Stats)
	if m.ln, err = net.Listen("tcp", s.cfg.ListenTLS); err != nil {
		return fmt.Errorf("listen for the TLS suite on %s: %w (pick another --listen-tls)", s.cfg.ListenTLS, err)
	}
	return nil
}

// recordSettings appends "settings.changed" when the policy settings differ
// from the last start's (and at the first start).
func (s *Server) recordSettings() {
	off := func(a string) string {
		if a == "" {
			return "off"
		}
		return a
	}
	cur := map[string]string{"tes1": off(s.cfg.Listen), "tls": off(s.cfg.ListenTLS), "http": off(s.cfg.HTTP)}
	path := filepath.Join(s.cfg.Store.DataDir, SettingsFile)
	var last map[string]string
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &last)
	}
	detail, changed := "", false
	for _, k := range []string{"tes1", "tls", "http"} {
		if last[k] != cur[k] {
			changed = true
		}
		detail += fmt.Sprintf("%s=%s ", k, cur[k])
	}
	if !changed {
		return
	}
	s.appendAudit(&tes.Event{Actor: "system", Action: "settings.changed", Subject: "officer", Detail: detail[:len(detail)-1]})
	b, _ := json.Marshal(cur)
	os.Remove(path)
	if err := identity.WriteSecret(path, b); err != nil {
		s.cfg.Log.Warn("cannot record the settings", "path", path, "err", err)
	}
}

// runTLS starts the TLS listener and the checkpointer.
func (s *Server) runTLS(errc chan<- error) {
	m := s.modern
	if m == nil {
		return
	}
	if m.server != nil {
		fmt.Fprintf(s.cfg.Out, "TLS suite listening on %s (CA %s)\n", m.ln.Addr(), m.ca.Hash())
		go func() { errc <- m.server.Serve(m.ln) }()
	}
	if m.cp != nil {
		ctx, cancel := context.WithCancel(context.Background())
		m.stopCP = cancel
		m.cpDone.Add(1)
		go func() { defer m.cpDone.Done(); m.cp.Run(ctx) }()
	}
}

// shutdownTLS stops the TLS listener and lets its connections finish.
func (s *Server) shutdownTLS(ctx context.Context) {
	if m := s.modern; m != nil && m.server != nil {
		if err := m.server.Shutdown(ctx); err != nil {
			s.cfg.Log.Warn("TLS connections did not finish in time", "err", err)
		}
	}
}

// closeTLS runs after the last audit event was written and before the
// store closes: it signs the final checkpoint.
func (s *Server) closeTLS() {
	m := s.modern
	if m == nil {
		return
	}
	if m.stopCP != nil {
		m.stopCP()
		m.cpDone.Wait()
		m.stopCP = nil
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.cp.Final(ctx)
		cancel()
	}
	if m.ln != nil {
		m.ln.Close()
	}
}

// TLSAddr is the bound TLS-suite address (nil when disabled).
func (s *Server) TLSAddr() net.Addr {
	if s.modern == nil || s.modern.ln == nil {
		return nil
	}
	return s.modern.ln.Addr()
}

// TLS is the TLS-suite server (nil when disabled).
func (s *Server) TLS() *tlssuite.Server {
	if s.modern == nil {
		return nil
	}
	return s.modern.server
}

// CAHash is the hash of the officer's CA, which join tokens carry.
func (s *Server) CAHash() string { return s.modern.ca.Hash() }

// Evidence exports sealed evidence files (`tes evidence export`, and the
// dashboard's export link).
func (s *Server) Evidence() *evidence.Exporter { return s.modern.exporter }

// addTLSStatus adds the TLS suite's facts to st.
func (s *Server) addTLSStatus(st *tes.ServerStatus) {
	m := s.modern
	if m == nil {
		return
	}
	st.Fingerprints = append(st.Fingerprints, tes.KeyFingerprint{Suite: "TLS 1.3 CA (Ed25519)", Fingerprint: m.ca.Hash()})
	if m.server != nil {
		ts := &m.server.Stats
		st.Connections += int(ts.Conns.Load())
		st.ReportsTotal += ts.Accepted.Load()
		for _, n := range ts.Refused() {
			st.RefusedTotal += n
		}
		for i, n := range ts.PerMinute(time.Now(), len(st.PerMinute)) {
			st.PerMinute[i] += n
		}
	}
}
