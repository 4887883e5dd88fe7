package officerui_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/officerui"
	"github.com/tes-traffic/tes/internal/review"
)

// TestBrowserReportFromCLI: a report sent with `tes report` to a running
// `tes officer` process appears in the queue, and approving it in the
// browser applies the rule's points.
//
// The dashboard is served in this test process over the same data
// directory (SQLite allows several processes on one file), because the
// officer server mounts the dashboard through a hook that cmd/tes fills in;
// the TES/1 path, the CLI and the store are the real ones.
func TestBrowserReportFromCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test")
	}
	dir := t.TempDir()
	o := e2e.StartOfficer(t, dir)
	pwEnv := []string{"TES_PASSWORD=" + testPassword}
	for _, u := range [][2]string{{"unit7", "police"}, {"olga", "officer"}} {
		if out, errOut, code := e2e.Run(t, "", pwEnv, "user", "add", u[0], "--role", u[1], "--data", dir); code != 0 {
			t.Fatalf("tes user add %s: exit %d\n%s%s", u[0], code, out, errOut)
		}
	}
	out, errOut, code := e2e.Run(t, "", append(pwEnv, "TES_PINS="+filepath.Join(dir, "known_servers")),
		"report", "--server", o.TES1Addr, "--user", "unit7", "--plate", "cli 42", "--speed", "97",
		"--speed-limit", "60", "--location", "Quay Street, eastbound")
	if code != 0 {
		t.Fatalf("tes report: exit %d\n%s%s\nofficer log:\n%s", code, out, errOut, o.Stderr())
	}

	ctx := context.Background()
	store, err := officer.OpenStore(ctx, officer.StoreConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	ui, err := officerui.New(officerui.Config{Store: store, Review: review.New(store, tes.DefaultRules(), log), Auth: auth.New(store, log), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui.Handler())
	t.Cleanup(srv.Close)

	b := newBrowser(t, srv.URL)
	b.nav("/login")
	b.login("olga", testPassword)
	b.wantText("#queue-table tbody tr:first-child", "CLI 42", "97 km/h", "Quay Street", "unit7", "20")
	b.clickAndLoad("#queue-table tbody tr:first-child a.button")
	b.wantText("main", "TES/1", "Verified", "SHA256:", "Approve and add 20 points")
	b.clickAndLoad("#approve")
	b.wantText("#outcome", "Approved by olga", "20 points were added")
	d, err := store.Driver(ctx, "CLI 42")
	if err != nil || d.Points != 20 {
		t.Fatalf("record of CLI 42: %+v, %v; want 20 points", d, err)
	}
	// The CLI sees the decision too.
	out, errOut, code = e2e.Run(t, "", nil, "violations", "--data", dir, "--status", "approved", "--json")
	if code != 0 || !strings.Contains(out, "CLI 42") {
		t.Errorf("tes violations --status approved: exit %d\n%s%s", code, out, errOut)
	}
}
