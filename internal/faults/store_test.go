package faults_test

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/ingest"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/tes1"
)

// failingStore is a real SQLite store whose commits fail while down is set,
// as they would on a full disk, and whose fsyncs fail while syncDown is.
type failingStore struct {
	*sqlite.DB
	down     atomic.Bool
	syncDown atomic.Bool // the commit succeeds, the fsync after it fails
}

// The batcher takes SQLite's two-step path; failingStore must override it.
var _ ingest.Deferred = (*sqlite.DB)(nil)

// IngestDeferred is the path internal/ingest takes with SQLite; it fails
// the same way, at the commit, or (with syncDown) at the fsync after it.
func (f *failingStore) IngestDeferred(ctx context.Context, items []*tes.IngestItem) (func() error, error) {
	if f.down.Load() {
		return nil, fmt.Errorf("sqlite: ingest: %w", syscall.ENOSPC)
	}
	durable, err := f.DB.IngestDeferred(ctx, items)
	if err != nil {
		return nil, err
	}
	return func() error {
		if f.syncDown.Load() {
			return fmt.Errorf("sqlite: sync: %w", syscall.EIO)
		}
		return durable()
	}, nil
}

func (f *failingStore) Ingest(ctx context.Context, items []*tes.IngestItem) error {
	if f.down.Load() {
		return fmt.Errorf("sqlite: ingest: %w", syscall.ENOSPC)
	}
	return f.DB.Ingest(ctx, items)
}

// TestStoreCannotCommit: while the store cannot commit, a report gets
// ERROR, never OK, and nothing is stored; when it comes back the server
// recovers by itself and the client's resend (same report_id) is stored once.
func TestStoreCannotCommit(t *testing.T) {
	ctx := context.Background()
	master := make([]byte, 32)
	crand.Read(master)
	keys, _ := atrest.New(master)
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := &failingStore{DB: db}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	as := auth.New(db, log)
	as.CreateUser(ctx, "t", "police1", tes.RolePolice, "police-password", false)
	b := ingest.New(store, log, 0, nil)
	defer b.Close()
	key, _ := legacy.GenerateRSAKey(crand.Reader)
	srv, err := tes1.NewServer(tes1.Config{Key: key, Auth: as, Ingest: b, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)

	c, err := tes1.Dial(ctx, ln.Addr().String(), tes1.ClientConfig{Fingerprint: srv.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "police1", "police-password"); err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	r := &tes.Report{ReportID: tes.NewReportID(), Plate: "FULL1", Speed: 90}
	for i := 0; i < 3; i++ {
		if err := c.Send(ctx, r); !tes1.IsReply(err, tes1.ReplyUnavailable) {
			t.Fatalf("report while the store is down: %v, want ERROR %q", err, tes1.ReplyUnavailable)
		}
	}
	if page, _, _ := db.Violations(ctx, tes.ViolationFilter{}); len(page) != 0 {
		t.Fatalf("%d rows stored while the store was down", len(page))
	}
	store.down.Store(false)
	if err := c.Send(ctx, r); err != nil {
		t.Fatalf("after the store came back: %v", err)
	}
	if err := c.Send(ctx, r); err != nil { // a resend after a lost OK
		t.Fatal(err)
	}
	if page, _, _ := db.Violations(ctx, tes.ViolationFilter{}); len(page) != 1 {
		t.Fatalf("%d rows after recovery, want 1", len(page))
	}

	// The commit goes through but the fsync after it fails: ERROR, never
	// OK, though the row is in the database (a real failed fsync is final:
	// the store refuses every later write until tes restarts; here the
	// fake recovers so the resend can be checked). The client's resend,
	// with the same report_id, is then acknowledged and stored once.
	store.syncDown.Store(true)
	r2 := &tes.Report{ReportID: tes.NewReportID(), Plate: "SYNC1", Speed: 90}
	if err := c.Send(ctx, r2); !tes1.IsReply(err, tes1.ReplyUnavailable) {
		t.Fatalf("report whose fsync failed: %v, want ERROR %q", err, tes1.ReplyUnavailable)
	}
	store.syncDown.Store(false)
	if err := c.Send(ctx, r2); err != nil {
		t.Fatalf("resend after the failed fsync: %v", err)
	}
	if page, _, _ := db.Violations(ctx, tes.ViolationFilter{}); len(page) != 2 {
		t.Fatalf("%d rows after the resend, want 2", len(page))
	}
}

// TestGracefulShutdownProcess: SIGTERM while 8 clients send; the process
// exits 0 and every acknowledged report is stored.
func TestGracefulShutdownProcess(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	o := e2e.StartOfficer(t, data, "--http", "")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("police-password\n"), 0o600)
	e2e.Run(t, "", nil, "user", "add", "police1", "--role", "police", "--data", data, "--password-file", pw)
	ck, _ := legacy.GenerateRSAKey(crand.Reader)
	var acked sync.Map
	var n atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		c, err := tes1.Dial(context.Background(), o.TES1Addr, tes1.ClientConfig{Fingerprint: o.Fingerprint, ClientKey: ck})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(context.Background(), "police1", "police-password"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for j := 0; ; j++ {
				r := &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("G%dN%d", i, j), Speed: 80}
				err := c.Send(context.Background(), r)
				var re *tes1.ReplyError
				if errors.As(err, &re) && re.Text != tes1.ReplyShuttingDown {
					t.Errorf("refused: %v", err)
				}
				if err != nil {
					return
				}
				acked.Store(r.ReportID, true)
				n.Add(1)
			}
		}()
	}
	// SIGTERM once reports are being acknowledged (not after a fixed time,
	// which a loaded machine can spend before the first one).
	for deadline := time.Now().Add(time.Minute); n.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no report acknowledged in a minute")
		}
	}
	time.Sleep(200 * time.Millisecond)
	o.Stop() // SIGTERM; fails the test unless the exit is clean
	wg.Wait()
	store, err := officer.OpenStore(context.Background(), officer.StoreConfig{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := map[string]bool{}
	f := tes.ViolationFilter{Limit: 1000}
	for {
		page, next, err := store.Violations(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			stored[v.ReportID] = true
		}
		if next == nil {
			break
		}
		f.After = next
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if !stored[k.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 || n.Load() == 0 {
		t.Fatalf("%d of %d acknowledged reports missing after SIGTERM", missing, n.Load())
	}
	t.Logf("%d reports acknowledged before SIGTERM, all stored", n.Load())
}
