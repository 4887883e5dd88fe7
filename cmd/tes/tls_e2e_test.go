package main_test

import (
	"bytes"
	"database/sql"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tes-traffic/tes/internal/e2e"
	_ "modernc.org/sqlite"
)

// tlsSetup starts an officer with the TLS suite and adds police1; it
// returns the officer, its data directory and an environment for clients
// with their own device directory and pins file.
func tlsSetup(t *testing.T, args ...string) (*e2e.Officer, string, []string) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	o := e2e.StartOfficer(t, data, args...)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("police-password-1\n"), 0o600)
	if _, e, code := e2e.Run(t, "", nil, "user", "add", "police1", "--role", "police", "--data", data, "--password-file", pw); code != 0 {
		t.Fatalf("user add: %d %s", code, e)
	}
	env := []string{"TES_DEVICE_DIR=" + filepath.Join(t.TempDir(), "device"), "TES_PINS=" + filepath.Join(t.TempDir(), "pins"),
		"TES_PASSWORD=police-password-1"}
	return o, data, env
}

var reToken = regexp.MustCompile(`tes-join\.\S+`)

// mustDeviceAdd runs `tes device add` and returns the device ID and token.
func mustDeviceAdd(t *testing.T, data, addr string) (id, token string) {
	t.Helper()
	out, errOut, code := e2e.Run(t, "", nil, "device", "add", "--user", "police1", "--data", data, "--addr", addr)
	if code != 0 {
		t.Fatalf("device add: exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`Device ([0-9a-f]{16}) for user police1`).FindStringSubmatch(out)
	token = reToken.FindString(out)
	if m == nil || token == "" || !strings.HasSuffix(token, "@"+addr) {
		t.Fatalf("device add printed no device ID and token for %s:\n%s", addr, out)
	}
	return m[1], token
}

// TestTLSEndToEnd: enrol with `tes report --join`, report over the TLS
// suite, see the report stored with evidence, export it, verify the file in
// a separate process with no database, and see one changed byte fail
// naming the field.
func TestTLSEndToEnd(t *testing.T) {
	o, data, env := tlsSetup(t)
	if o.TLSAddr == "" || !strings.HasPrefix(o.CAHash, "sha256:") {
		t.Fatalf("officer did not announce the TLS suite: %q %q", o.TLSAddr, o.CAHash)
	}
	devID, token := mustDeviceAdd(t, data, o.TLSAddr)
	if !strings.Contains(token, strings.TrimPrefix(o.CAHash, "sha256:")) {
		t.Fatalf("token %s does not carry the CA hash %s", token, o.CAHash)
	}

	// Enrol and report; no user name, no password.
	noPassword := []string{env[0], env[1]}
	out, errOut, code := e2e.Run(t, "", noPassword, "report", "--join", token, "--plate", "34abc123", "--speed", "120",
		"--speed-limit", "90", "--location", "E5 km 12")
	if code != 0 || !strings.Contains(out, "ok 34ABC123 120 km/h") || !strings.Contains(out, "signed by device "+devID) {
		t.Fatalf("report --join: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "Enrolled as device "+devID+" of user police1") {
		t.Fatalf("report --join did not say it enrolled: %s", errOut)
	}
	// The same token again: refused.
	other := []string{"TES_DEVICE_DIR=" + filepath.Join(t.TempDir(), "device2")}
	if _, errOut, code := e2e.Run(t, "", other, "report", "--join", token, "--plate", "X1", "--speed", "99"); code == 0 || !strings.Contains(errOut, "Join Token Already Used") {
		t.Fatalf("reused token: exit %d: %s", code, errOut)
	}
	// An enrolled client prefers the TLS suite even when given the TES/1
	// address; --tls says so explicitly.
	out, errOut, code = e2e.Run(t, "", noPassword, "report", "--server", o.TES1Addr, "--plate", "AB123", "--speed", "85")
	if code != 0 || !strings.Contains(errOut, "Reporting over the TLS suite") {
		t.Fatalf("report to an enrolled host: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := e2e.Run(t, "", noPassword, "report", "--tls", "--plate", "AB124", "--speed", "86"); code != 0 {
		t.Fatalf("report --tls: exit %d: %s", code, errOut)
	}

	vs := mustViolations(t, data)
	if len(vs) != 3 {
		t.Fatalf("%d violations, want 3", len(vs))
	}
	var first violationOut
	for _, v := range vs {
		if v.Plate == "34ABC123" {
			first = v
		}
		if v.ReportedBy != "police1" || !v.SigVerified {
			t.Fatalf("violation %+v", v)
		}
	}
	raw, _, _ := e2e.Run(t, "", nil, "violations", "--data", data, "--json")
	if strings.Count(raw, `"suite":"tls"`) != 3 {
		t.Fatalf("not every report came over the TLS suite: %s", raw)
	}

	// Export, stop the officer and move the data away: verify has nothing
	// but the file.
	file := filepath.Join(t.TempDir(), "evidence.json")
	id := strconv.FormatInt(first.ID, 10)
	if out, errOut, code := e2e.Run(t, "", nil, "evidence", "export", id, "--data", data, "--out", file); code != 0 {
		t.Fatalf("evidence export: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := e2e.Run(t, "", nil, "device", "revoke", devID, "--data", data); code != 0 {
		t.Fatalf("device revoke: %s", errOut)
	}
	if _, errOut, code := e2e.Run(t, "", noPassword, "report", "--tls", "--plate", "AB125", "--speed", "87"); code == 0 || !strings.Contains(errOut, "refused this device") {
		t.Fatalf("report from a revoked device: exit %d: %s", code, errOut)
	}
	// The TLS suite's counters and latencies on /metrics, as TES/1's are;
	// a refusal is labelled by its reply text, without the device's ID.
	mustMetrics(t, o, `tes_reports_accepted_total{suite="tls"} 3`, `tes_sessions_total{result="ok",suite="tls"} 3`,
		`tes_sessions_total{result="failed",suite="tls"}`, `tes_handshake_seconds_count{suite="tls"} 3`,
		`tes_ingest_seconds_count{suite="tls"} 3`, `tes_requests_refused_total{reason="Device Revoked",suite="tls"}`,
		`tes_requests_refused_total{reason="Join Token Already Used",suite="tls"} 1`, `tes_connections_total{suite="tls"}`)
	o.Stop() // refusals reach the audit log asynchronously; Stop writes them all
	out, _, _ = e2e.Run(t, "", nil, "status", "--data", data, "--events", "100")
	for _, action := range []string{"device.added", "device.enrolled", "device.revoked", "report.accepted", "report.refused", "key.created", "settings.changed", "device.enroll_refused"} {
		if !strings.Contains(out, action) {
			t.Errorf("the audit log has no %s event:\n%s", action, out)
		}
	}
	if out, errOut, code := e2e.Run(t, "", nil, "audit", "verify", "--data", data); code != 0 {
		t.Errorf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.Rename(data, data+".moved"); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = e2e.Run(t, "", nil, "evidence", "verify", "--file", file, "--ca-hash", o.CAHash)
	if code != 0 || !strings.Contains(out, "VERIFIED") {
		t.Fatalf("evidence verify: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"no database, no server", "Device " + devID + " of user police1", "plate=34ABC123", "speed=120 km/h", "Not proved"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify does not say %q:\n%s", want, out)
		}
	}

	// One changed byte, anywhere we pick, fails and names its field.
	good, _ := os.ReadFile(file)
	for _, tc := range []struct{ marker, field string }{
		{`"plate": "34ABC1`, "violation.plate"},
		{`"speed": 1`, "violation.speed"},
		{`"status": "PEN`, "violation.status"},
		{`"signature": "`, "evidence.signature"},
	} {
		i := bytes.Index(good, []byte(tc.marker)) + len(tc.marker)
		bad := bytes.Clone(good)
		bad[i] ^= 0x01
		path := filepath.Join(t.TempDir(), "flipped.json")
		os.WriteFile(path, bad, 0o600)
		out, _, code := e2e.Run(t, "", nil, "evidence", "verify", "--file", path)
		if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "Field: "+tc.field+"\n") {
			t.Errorf("byte %d (%q) flipped: exit %d, want 1 naming %s:\n%s", i, good[i], code, tc.field, out)
		}
	}
}

// proxy is a man-in-the-middle between a client and one officer port: it
// forwards, or strips the connection, and counts what it accepted.
type proxy struct {
	ln       net.Listener
	target   string
	strip    atomic.Bool
	accepted atomic.Int64
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			if p.strip.Load() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				io.Copy(c, s)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// TestDowngradeRefused: a man-in-the-middle that strips or blocks the TLS
// port makes an enrolled client refuse; it does not fall back to TES/1
// (which it reaches through a second, counting proxy) unless told to with
// --allow-legacy, and then says so.
func TestDowngradeRefused(t *testing.T) {
	o, data, env := tlsSetup(t)
	tlsMITM := newProxy(t, o.TLSAddr)
	tes1MITM := newProxy(t, o.TES1Addr)
	_, token := mustDeviceAdd(t, data, tlsMITM.addr())
	if _, errOut, code := e2e.Run(t, "", env, "report", "--join", token, "--plate", "AB1", "--speed", "90"); code != 0 {
		t.Fatalf("enrol through the proxy: exit %d: %s", code, errOut)
	}
	base := len(mustViolations(t, data))

	for _, attack := range []string{"strip", "block"} {
		if attack == "strip" {
			tlsMITM.strip.Store(true)
		} else {
			tlsMITM.ln.Close() // connection refused
		}
		_, errOut, code := e2e.Run(t, "", env, "report", "--server", tes1MITM.addr(), "--user", "police1", "--plate", "AB2", "--speed", "91")
		if code == 0 || !strings.Contains(errOut, "does not fall back to TES/1") || !strings.Contains(errOut, "--allow-legacy") {
			t.Fatalf("%s: exit %d, want a refusal to fall back: %s", attack, code, errOut)
		}
		if n := tes1MITM.accepted.Load(); n != 0 {
			t.Fatalf("%s: the client opened %d TES/1 connection(s)", attack, n)
		}
		if n := len(mustViolations(t, data)); n != base {
			t.Fatalf("%s: %d violations, want %d", attack, n, base)
		}
	}

	// Explicitly allowed: TES/1, loudly.
	out, errOut, code := e2e.Run(t, "", env, "report", "--server", tes1MITM.addr(), "--user", "police1", "--allow-legacy", "--plate", "AB3", "--speed", "92")
	if code != 0 || !strings.Contains(errOut, "WARNING") || !strings.Contains(errOut, "falling back to TES/1") {
		t.Fatalf("--allow-legacy: exit %d\n%s\n%s", code, out, errOut)
	}
	if tes1MITM.accepted.Load() == 0 || len(mustViolations(t, data)) != base+1 {
		t.Fatal("--allow-legacy did not report over TES/1")
	}
}

// TestLegacyOff: --legacy=false serves the TLS suite only.
func TestLegacyOff(t *testing.T) {
	o, data, env := tlsSetup(t, "--legacy=false")
	if o.TES1Addr != "" {
		t.Fatalf("TES/1 listens on %s with --legacy=false", o.TES1Addr)
	}
	_, token := mustDeviceAdd(t, data, o.TLSAddr)
	if _, errOut, code := e2e.Run(t, "", env, "report", "--join", token, "--plate", "AB1", "--speed", "90"); code != 0 {
		t.Fatalf("report over TLS with TES/1 off: exit %d: %s", code, errOut)
	}
	o.Stop()
	out, _, _ := e2e.Run(t, "", nil, "status", "--data", data, "--events", "50")
	if !strings.Contains(out, "settings.changed") || !strings.Contains(out, "tes1=off") {
		t.Errorf("no settings.changed event with tes1=off:\n%s", out)
	}
}

// TestAuditVerifyTampering edits, deletes, reorders and inserts rows of the
// audit table in the database file, as an attacker with the file would
// (dropping the append-only triggers first); `tes audit verify` names the
// first bad entry every time.
func TestAuditVerifyTampering(t *testing.T) {
	o, data, env := tlsSetup(t)
	_, token := mustDeviceAdd(t, data, o.TLSAddr)
	if _, errOut, code := e2e.Run(t, "", env, "report", "--join", token, "--plate", "AB1", "--speed", "90"); code != 0 {
		t.Fatalf("report: %s", errOut)
	}
	o.Stop() // signs the final checkpoint
	out, errOut, code := e2e.Run(t, "", nil, "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(out, "OK: the audit log verifies") || !strings.Contains(out, "signed checkpoint") {
		t.Fatalf("untouched log: exit %d\n%s%s", code, out, errOut)
	}
	n := regexp.MustCompile(`(\d+) entries, seq 1 to`).FindStringSubmatch(out)
	if n == nil {
		t.Fatalf("no entry count in %q", out)
	}
	if total, _ := strconv.Atoi(n[1]); total < 8 {
		t.Fatalf("only %d audit entries", total)
	}

	drop := []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`}
	tests := []struct {
		name  string
		sql   []string
		seq   string
		kind  string
		extra string
	}{
		{"edit", []string{`UPDATE audit SET actor = 'someone else' WHERE seq = 4`}, "4", "edited", ""},
		{"delete", []string{`DELETE FROM audit WHERE seq = 4`}, "4", "deleted", ""},
		{"reorder", []string{`UPDATE audit SET seq = -4 WHERE seq = 4`, `UPDATE audit SET seq = 4 WHERE seq = 5`, `UPDATE audit SET seq = 5 WHERE seq = -4`}, "4", "reordered", "holds the entry written as seq 5"},
		{"insert", []string{`UPDATE audit SET seq = seq + 1000 WHERE seq >= 4`, `UPDATE audit SET seq = seq - 999 WHERE seq >= 1000`,
			`INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash)
			 SELECT 4, at, 'mallory', 'violation.approved', 'violation:1', '', hash, randomblob(32) FROM audit WHERE seq = 3`}, "4", "inserted", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			copyDir := mustCopyDir(t, data)
			raw, err := sql.Open("sqlite", filepath.Join(copyDir, "tes.db"))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range append(drop, tc.sql...) {
				if _, err := raw.Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			raw.Close()
			out, errOut, code := e2e.Run(t, "", nil, "audit", "verify", "--data", copyDir)
			if code != 1 || !strings.Contains(out, "First bad entry: seq "+tc.seq+"\n") || !strings.Contains(out, "What: "+tc.kind+"\n") ||
				!strings.Contains(out, tc.extra) {
				t.Fatalf("exit %d, want 1 with seq %s %s:\n%s%s", code, tc.seq, tc.kind, out, errOut)
			}
		})
	}
}

// mustCopyDir copies a stopped officer's data directory.
func mustCopyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// CopyFS does not keep modes; the officer's files are private.
	err := filepath.WalkDir(dst, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(path, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestOutboxOverTLS: tes report --outbox with an enrolled device queues
// first and delivers over the TLS suite; when the TLS port is gone the
// reports stay queued (exit 75) and nothing goes over TES/1.
func TestOutboxOverTLS(t *testing.T) {
	o, data, env := tlsSetup(t)
	_, token := mustDeviceAdd(t, data, o.TLSAddr)
	outboxDir := filepath.Join(t.TempDir(), "outbox")
	noPassword := []string{env[0], env[1]}
	out, errOut, code := e2e.Run(t, "", noPassword, "report", "--join", token, "--server", o.TES1Addr, "--outbox", outboxDir,
		"--plate", "OB1", "--speed", "120")
	if code != 0 {
		t.Fatalf("report --join --outbox: exit %d\n%s\n%s", code, out, errOut)
	}
	vs := mustViolations(t, data)
	if len(vs) != 1 || vs[0].Plate != "OB1" {
		t.Fatalf("stored %+v", vs)
	}
	// Restart the officer without the TLS suite; TES/1 stays open.
	o.Stop()
	o2 := e2e.StartOfficer(t, data, "--listen", o.TES1Addr, "--listen-tls", "")
	_, errOut, code = e2e.Run(t, "", noPassword, "report", "--server", o2.TES1Addr, "--outbox", outboxDir, "--plate", "OB2", "--speed", "99")
	if code != 75 {
		t.Fatalf("TLS port gone: exit %d (want 75, queued)\n%s", code, errOut)
	}
	if strings.Contains(o2.Stderr(), "user logged in") {
		t.Fatal("the outbox fell back to TES/1 without --allow-legacy")
	}
	if n := len(mustViolations(t, data)); n != 1 {
		t.Fatalf("%d violations stored, want 1", n)
	}
}
