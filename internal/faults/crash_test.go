package faults_test

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/postgres/pgtest"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tes1"
)

// TestCrashDurability runs `tes officer` as a process, drives 8 connections
// of reports, kills it with SIGKILL at random points 20 times and restarts
// it. Clients resend an unacknowledged report with the same report_id after
// reconnecting, as tes report does. At the end every acknowledged report is
// present exactly once and SQLite's integrity check is ok.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips 20 kill/restart cycles")
	}
	crashRun(t, "")
}

// TestCrashDurabilityPostgres is the same against PostgreSQL: the server
// is killed, the database is not, and what was acknowledged must be there.
func TestCrashDurabilityPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips 20 kill/restart cycles")
	}
	crashRun(t, pgtest.NewDatabase(t))
}

func crashRun(t *testing.T, db string) {
	data := filepath.Join(t.TempDir(), "data")
	var dbArgs []string
	if db != "" {
		dbArgs = []string{"--db", db}
	}
	o := e2e.StartOfficer(t, data, append([]string{"--http", ""}, dbArgs...)...)
	addr, fp := o.TES1Addr, o.Fingerprint
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("police-password\n"), 0o600)
	if _, e, code := e2e.Run(t, "", nil, append([]string{"user", "add", "police1", "--role", "police", "--data", data, "--password-file", pw}, dbArgs...)...); code != 0 {
		t.Fatal(e)
	}

	clientKey, err := legacy.GenerateRSAKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked = map[string]int{} // report_id -> times acknowledged
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl *tes1.Client
			var pending *tes.Report
			for n := 0; ctx.Err() == nil; {
				if cl == nil {
					var err error
					cl, err = tes1.Dial(ctx, addr, tes1.ClientConfig{Fingerprint: fp, ClientKey: clientKey, Timeout: 5 * time.Second})
					if err == nil {
						if err = cl.Login(ctx, "police1", "police-password"); err != nil {
							cl.Close()
							cl = nil
						}
					}
					if err != nil {
						time.Sleep(50 * time.Millisecond) // the server is restarting
						continue
					}
				}
				if pending == nil {
					pending = &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("K%dN%d", c, n), Speed: 90}
					n++
				}
				err := cl.Send(ctx, pending)
				var re *tes1.ReplyError
				switch {
				case err == nil:
					mu.Lock()
					acked[pending.ReportID]++
					mu.Unlock()
					pending = nil
				case errors.As(err, &re):
					t.Errorf("report refused: %v", err)
					return
				default: // connection lost: reconnect and resend the same report_id
					cl.Close()
					cl = nil
				}
			}
			if cl != nil {
				cl.Close()
			}
		}()
	}
	for i := range 20 {
		time.Sleep(time.Duration(300+rand.IntN(600)) * time.Millisecond)
		o.Kill()
		o = e2e.StartOfficer(t, data, append([]string{"--http", "", "--listen", addr}, dbArgs...)...)
		if o.Fingerprint != fp {
			t.Fatalf("restart %d: key changed", i)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	o.Stop()

	store, err := officer.OpenStore(context.Background(), officer.StoreConfig{DataDir: data, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if lite, ok := store.(*sqlite.DB); ok {
		if err := lite.IntegrityCheck(context.Background()); err != nil {
			t.Fatalf("integrity check after 20 crashes: %v", err)
		}
	}
	// The audit chain survived the crashes too.
	if out, e, code := e2e.Run(t, "", nil, append([]string{"audit", "verify", "--data", data}, dbArgs...)...); code != 0 {
		t.Fatalf("tes audit verify after 20 crashes: exit %d\n%s%s", code, out, e)
	}
	stored := map[string]int{}
	f := tes.ViolationFilter{Limit: 1000}
	for {
		page, next, err := store.Violations(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			stored[v.ReportID]++
		}
		if next == nil {
			break
		}
		f.After = next
	}
	if len(acked) < 100 {
		t.Fatalf("only %d reports acknowledged: the load did not run", len(acked))
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged report %s stored %d times", id, stored[id])
		}
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("report %s stored %d times", id, n)
		}
	}
	t.Logf("%d reports acknowledged across 20 SIGKILLs, each stored once; %d stored in all (a report committed just before a kill is stored but was never acknowledged)", len(acked), len(stored))
}
