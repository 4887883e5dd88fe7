package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tes-traffic/tes/internal/e2e"
)

type violationOut struct {
	ID            int64  `json:"id"`
	Plate         string `json:"plate"`
	Speed         int    `json:"speed"`
	Status        string `json:"status"`
	Points        int    `json:"points"`
	PointsApplied int    `json:"points_applied"`
	ReceivedAt    string `json:"received_at"`
	ReportedBy    string `json:"reported_by"`
	Location      string `json:"location"`
	SpeedLimit    int    `json:"speed_limit"`
	SigVerified   bool   `json:"signature_verified"`
}

func mustViolations(t *testing.T, data string, args ...string) []violationOut {
	t.Helper()
	out, errOut, code := e2e.Run(t, "", nil, append([]string{"violations", "--data", data, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("tes violations: exit %d: %s", code, errOut)
	}
	var vs []violationOut
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("tes violations --json is not a JSON array: %v\n%s", err, out)
	}
	return vs
}

// TestEndToEnd runs the real binary: officer server, users, reports (one
// and CSV), listing, approving twice, and a restart.
func TestEndToEnd(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	pinsFile := filepath.Join(t.TempDir(), "known_servers")
	o := e2e.StartOfficer(t, data)

	// First start: a generated admin password, printed and kept 0600.
	if o.AdminPassword == "" {
		t.Fatal("first start did not print the generated admin password")
	}
	st, err := os.Stat(filepath.Join(data, "initial-admin-password"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("initial-admin-password: %v, mode %v", err, st.Mode().Perm())
	}
	for _, f := range []string{"tes1-server-key.pem", "store.key", "tes.db"} {
		if st, err := os.Stat(filepath.Join(data, f)); err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: %v (mode %v): must exist and be private", f, err, st.Mode().Perm())
		}
	}

	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("police-password-1\n"), 0o600)
	if _, e, code := e2e.Run(t, "", nil, "user", "add", "police1", "--role", "police", "--data", data, "--password-file", pwFile); code != 0 {
		t.Fatalf("user add: %d %s", code, e)
	}
	env := []string{"TES_PASSWORD=police-password-1", "TES_PINS=" + pinsFile}

	// One report.
	out, errOut, code := e2e.Run(t, "", env, "report", "--server", o.TES1Addr, "--user", "police1",
		"--plate", "34abc123", "--speed", "120", "--speed-limit", "90", "--location", "E5 km 12")
	if code != 0 || !strings.Contains(out, "ok 34ABC123 120 km/h") {
		t.Fatalf("report: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "Pinned the key of "+o.TES1Addr+": "+o.Fingerprint) {
		t.Fatalf("first report did not say it pinned the key: %s", errOut)
	}
	pinned, _ := os.ReadFile(pinsFile)
	if !strings.Contains(string(pinned), o.TES1Addr+" "+o.Fingerprint) {
		t.Fatalf("pins file: %s", pinned)
	}

	// Many over one session from CSV (with a header), one from stdin.
	csvFile := filepath.Join(t.TempDir(), "r.csv")
	os.WriteFile(csvFile, []byte("plate,speed,speed_limit,location\nAB123,85,70,Ring road\nTR06,55,50,\nxy999,45,50,School\n"), 0o600)
	out, errOut, code = e2e.Run(t, "", env, "report", "--server", o.TES1Addr, "--user", "police1", "--csv", csvFile)
	if code != 0 || !strings.Contains(out, "all 3 reports acknowledged") {
		t.Fatalf("report --csv: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = e2e.Run(t, "TR06,105\n", env, "report", "--server", o.TES1Addr, "--user", "police1", "--csv", "-")
	if code != 0 || !strings.Contains(out, "ok line 1: TR06 105 km/h") {
		t.Fatalf("report --csv -: exit %d\n%s\n%s", code, out, errOut)
	}
	// A camera backlog sent pipelined: 16 unanswered at a time, each
	// acknowledged after its commit, stored once.
	var backlog strings.Builder
	for i := range 100 {
		fmt.Fprintf(&backlog, "PX%03d,%d\n", i, 60+i)
	}
	out, errOut, code = e2e.Run(t, backlog.String(), env, "report", "--server", o.TES1Addr, "--user", "police1", "--csv", "-", "--window", "16")
	if code != 0 || !strings.Contains(out, "all 100 reports acknowledged") || strings.Count(out, "\nok ") != 99 {
		t.Fatalf("report --csv --window 16: exit %d\n%s\n%s", code, out, errOut)
	}
	// A bad row stops the run before anything is sent, naming the line.
	os.WriteFile(csvFile, []byte("plate,speed\nGOOD1,80\nBAD!,80\n"), 0o600)
	_, errOut, code = e2e.Run(t, "", env, "report", "--server", o.TES1Addr, "--user", "police1", "--csv", csvFile)
	if code != 2 || !strings.Contains(errOut, "CSV line 3: Invalid plate") {
		t.Fatalf("bad CSV: exit %d: %s", code, errOut)
	}
	// Wrong password: not acknowledged, exit 1, says why.
	_, errOut, code = e2e.Run(t, "", []string{"TES_PASSWORD=wrong-password", "TES_PINS=" + pinsFile}, "report",
		"--server", o.TES1Addr, "--user", "police1", "--plate", "X1", "--speed", "90")
	if code != 1 || !strings.Contains(errOut, "Invalid Credentials") || !strings.Contains(errOut, "NOT acknowledged") {
		t.Fatalf("wrong password: exit %d: %s", code, errOut)
	}

	vs := mustViolations(t, data)
	if len(vs) != 105 {
		t.Fatalf("stored %d violations, want 105", len(vs))
	}
	byPlate := map[string]violationOut{}
	for _, v := range vs {
		if v.Status != "PENDING" || v.ReportedBy != "police1" || !v.SigVerified || v.ReceivedAt == "" {
			t.Fatalf("violation %+v", v)
		}
		byPlate[v.Plate+"/"+strconv.Itoa(v.Speed)] = v
	}
	first := byPlate["34ABC123/120"]
	if first.Points != 50 || first.SpeedLimit != 90 || first.Location != "E5 km 12" {
		t.Fatalf("34ABC123: %+v", first)
	}
	if p := byPlate["AB123/85"].Points; p != 20 {
		t.Fatalf("85 km/h gives %d points, want 20", p)
	}
	if p := byPlate["XY999/45"].Points; p != 0 {
		t.Fatalf("45 km/h gives %d points, want 0", p)
	}

	// Approve twice: points once, the second says who decided.
	id := strconv.FormatInt(first.ID, 10)
	out, errOut, code = e2e.Run(t, "", []string{"USER=alice"}, "approve", id, "--data", data)
	if code != 0 || !strings.Contains(out, "50 points; 34ABC123 now has 50 points") {
		t.Fatalf("approve: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = e2e.Run(t, "", []string{"USER=bob"}, "approve", id, "--data", data)
	if code != 3 || !regexp.MustCompile(`already approved by cli:alice at \d{4}-`).MatchString(errOut) {
		t.Fatalf("second approve: exit %d\n%s%s", code, out, errOut)
	}
	// Reject with a reason; a second reject is refused the same way.
	rid := strconv.FormatInt(byPlate["XY999/45"].ID, 10)
	if out, errOut, code = e2e.Run(t, "", nil, "reject", rid, "--reason", "plate_unreadable", "--data", data); code != 0 {
		t.Fatalf("reject: exit %d %s %s", code, out, errOut)
	}
	approved := mustViolations(t, data, "--status", "approved")
	if len(approved) != 1 || approved[0].PointsApplied != 50 {
		t.Fatalf("approved: %+v", approved)
	}
	if rej := mustViolations(t, data, "--status", "rejected"); len(rej) != 1 || rej[0].Plate != "XY999" {
		t.Fatalf("rejected: %+v", rej)
	}

	// Status shows the key and the events.
	out, _, code = e2e.Run(t, "", nil, "status", "--data", data)
	if code != 0 || !strings.Contains(out, o.Fingerprint) || !strings.Contains(out, "violation.approved") ||
		!strings.Contains(out, "3 pending, 1 approved, 1 rejected") || !strings.Contains(out, "Server: running") ||
		!strings.Contains(out, "TLS suite CA: sha256:") || !strings.Contains(out, "TLS suite on 127.0.0.1:") {
		t.Fatalf("status:\n%s", out)
	}

	// Prometheus metrics on the HTTP port (loopback may read them).
	mustMetrics(t, o, `tes_reports_accepted_total{suite="tes1"} 105`, `tes_logins_total{result="failed",suite="tes1"} 1`,
		`tes_commit_batch_size_count`, `tes_ingest_seconds_bucket{suite="tes1"`, `tes_handshake_seconds_count{suite="tes1"}`,
		`process_cpu_seconds_total`, `process_resident_memory_bytes`, `tes_connections_open{suite="tes1"} 0`,
		`tes_connections_open{suite="tls"} 0`)
	// The dashboard is served: unauthenticated requests go to the login page.
	resp, err := http.Get("http://" + o.HTTPAddr + "/dashboard")
	if err != nil || resp.Request.URL.Path != "/login" || resp.StatusCode != 200 {
		t.Fatalf("GET /dashboard without a session: %v %v", resp.Request.URL, err)
	}
	resp.Body.Close()

	// Restart: same key, no new admin, data and pins still good.
	o.Stop()
	o2 := e2e.StartOfficer(t, data)
	if o2.Fingerprint != o.Fingerprint {
		t.Fatalf("key changed across restart: %s -> %s", o.Fingerprint, o2.Fingerprint)
	}
	if o2.AdminPassword != "" {
		t.Fatal("a restart created another admin")
	}
	if _, err := os.Stat(filepath.Join(data, "initial-admin-password")); err != nil {
		t.Fatal("the initial password file went away before the password was changed")
	}
	// Once the admin changed the generated password, the next start removes its file.
	o2.Stop()
	os.WriteFile(pwFile, []byte("admin-new-password\n"), 0o600)
	if _, e, code := e2e.Run(t, "", nil, "user", "passwd", "admin", "--data", data, "--password-file", pwFile); code != 0 {
		t.Fatal(e)
	}
	o2 = e2e.StartOfficer(t, data)
	if _, err := os.Stat(filepath.Join(data, "initial-admin-password")); err == nil {
		t.Fatal("the initial password file outlived the password")
	}
	out, errOut, code = e2e.Run(t, "", env, "report", "--server", o2.TES1Addr, "--user", "police1", "--plate", "AFTER1", "--speed", "70")
	if code != 0 || strings.Contains(errOut, "CHANGED") {
		t.Fatalf("report after restart: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(mustViolations(t, data)); n != 106 {
		t.Fatalf("after restart: %d violations, want 106", n)
	}
	if a := mustViolations(t, data, "--status", "approved"); len(a) != 1 || a[0].PointsApplied != 50 {
		t.Fatalf("approved after restart: %+v", a)
	}
}

// TestChangedServerKey: a client that pinned one server refuses another
// key at the same address, before sending any credential.
func TestChangedServerKey(t *testing.T) {
	pinsFile := filepath.Join(t.TempDir(), "known_servers")
	o1 := e2e.StartOfficer(t, filepath.Join(t.TempDir(), "a"))
	addr := o1.TES1Addr
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("police-password-1\n"), 0o600)
	e2e.Run(t, "", nil, "user", "add", "police1", "--role", "police", "--data", o1.DataDir, "--password-file", pw)
	env := []string{"TES_PASSWORD=police-password-1", "TES_PINS=" + pinsFile}
	if _, e, code := e2e.Run(t, "", env, "report", "--server", addr, "--user", "police1", "--plate", "K1", "--speed", "90"); code != 0 {
		t.Fatalf("first report: %s", e)
	}
	o1.Stop()
	// Another server (another key) on the same address.
	o2 := e2e.StartOfficer(t, filepath.Join(t.TempDir(), "b"), "--listen", addr)
	_, errOut, code := e2e.Run(t, "", env, "report", "--server", addr, "--user", "police1", "--plate", "K2", "--speed", "90")
	if code != 1 || !strings.Contains(errOut, "CHANGED") || !strings.Contains(errOut, o1.Fingerprint) || !strings.Contains(errOut, o2.Fingerprint) {
		t.Fatalf("changed key: exit %d: %s", code, errOut)
	}
	if strings.Contains(o2.Stderr(), "login refused") || strings.Contains(o2.Stderr(), "user logged in") {
		t.Fatalf("the client sent credentials to the changed server:\n%s", o2.Stderr())
	}
	out, _, code := e2e.Run(t, "", env, "pins", "list")
	if code != 0 || !strings.Contains(out, o1.Fingerprint) {
		t.Fatalf("pins list: %s", out)
	}
	if _, _, code := e2e.Run(t, "", env, "pins", "forget", addr); code != 0 {
		t.Fatal("pins forget failed")
	}
}

// TestIdentityRecorded: the store records the TES/1 key and the TLS CA a
// data directory serves; a node whose key differs (a key file lost and made
// anew, or not copied to a second node) refuses to start and says which
// file to copy, unless told to replace the recorded identity.
func TestIdentityRecorded(t *testing.T) {
	data := t.TempDir()
	o := e2e.StartOfficer(t, data)
	fp := o.Fingerprint
	o.Stop()

	if err := os.Remove(filepath.Join(data, "tes1-server-key.pem")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e2e.Run(t, "", nil, "officer", "--data", data, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0")
	if code == 0 || !strings.Contains(errOut, "tes1_key_fingerprint") || !strings.Contains(errOut, fp) ||
		!strings.Contains(errOut, "Copy tes1-server-key.pem") || !strings.Contains(errOut, "--replace-identity") {
		t.Fatalf("a node with a new TES/1 key started or did not say why: exit %d\n%s", code, errOut)
	}

	o = e2e.StartOfficer(t, data, "--replace-identity")
	if o.Fingerprint == fp {
		t.Fatal("the key was not made anew")
	}
	o.Stop()
	// Replaced once, recorded from then on: a plain start works.
	o = e2e.StartOfficer(t, data)
	o.Stop()
}

// mustMetrics reads the officer's /metrics and fails t for each wanted line
// (or line prefix) it lacks.
func mustMetrics(t *testing.T, o *e2e.Officer, want ...string) {
	t.Helper()
	resp, err := http.Get("http://" + o.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
}
