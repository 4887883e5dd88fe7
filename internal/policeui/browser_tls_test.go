package policeui_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/browsertest"
	"github.com/tes-traffic/tes/internal/outbox"
)

// TestBrowserEnrolledDevice is an enrolled police client in a real
// Chromium: sign-in over the TLS suite, the status panel naming the suite,
// device and CA, a report acknowledged and then shown approved; then the
// TLS port goes dark and the page says the next report waits rather than
// going over TES/1.
func TestBrowserEnrolledDevice(t *testing.T) {
	ctx := context.Background()
	dir, data := t.TempDir(), t.TempDir()
	srv := mustStartTLSOfficer(t, dir, "127.0.0.1:0", "127.0.0.1:0")
	addr := srv.addr
	dev := mustEnrollDevice(t, srv, filepath.Join(data, "device"))
	c, _ := mustStartDeviceClient(t, data, addr, dev, false)
	b := newBrowser(t, c.url)

	b.nav("/login")
	b.wantText("#device-note", "enrolled as device "+dev.ID+" of police1", "TLS 1.3", "never falls back to TES/1")
	b.login(addr, "police1", policeAccounts["police1"])
	if b.url().Path != "/report" {
		t.Fatalf("after sign-in: %s\n%s", b.url(), b.text("main"))
	}
	b.wantText(".status-panel", "Online", "TLS suite as device "+dev.ID, "TLS 1.3, device "+dev.ID+", Ed25519",
		"Ed25519 device signature", "Server certificate", dev.CAHash)

	id := b.report("34abc123", "120", "90", "E5 km 12")
	b.waitState(id, outbox.StateAcknowledged)
	stored := byReport(srv.violations(t), id)
	if len(stored) != 1 || stored[0].Suite != tes.SuiteTLS || stored[0].Evidence.DeviceID != dev.ID {
		t.Fatalf("stored %+v: want one violation over tls from device %s", stored, dev.ID)
	}
	if _, err := srv.srv.Review.Approve(ctx, &tes.User{Name: "officer1", Role: tes.RoleOfficer}, stored[0].ID); err != nil {
		t.Fatal(err)
	}
	b.waitState(id, outbox.StateApproved)
	browsertest.SaveScreenshot(t, b.ctx, "police-tls.png")

	srv.stop()
	srv = mustStartTLSOfficer(t, dir, addr, "127.0.0.1:0")
	queued := b.report("DARK1", "99", "", "")
	b.waitJS("the no-downgrade state", `document.getElementById('conn-state').className.includes('conn-no-downgrade')`)
	b.waitState(queued, outbox.StateQueued)
	b.wantText(".status-panel", "TLS suite unreachable", "not falling back to TES/1 (the legacy suite)", "--allow-legacy")
	b.waitJS("the reason on the queued report", `(document.querySelector('tr[data-report="`+queued+`"]') || {textContent: ''}).textContent.includes('not falling back to TES/1')`)
	b.wantText(`tr[data-report="`+queued+`"]`, "Queued on this device")
	browsertest.SaveScreenshot(t, b.ctx, "police-tls-no-downgrade.png")
	if n := srv.srv.TES1.Stats.ConnsTotal.Load(); n != 0 {
		t.Fatalf("%d TES/1 connections while the TLS suite was down", n)
	}
}
